"""Settings: precedence of sources, validation messages, socket paths within limits."""

from __future__ import annotations

from pathlib import Path

import pytest

from shoal.config import Settings


def test_saved_settings_are_the_base_and_env_and_flags_override(tmp_path, monkeypatch):
    for key in ("SHOAL_API_PORT", "SHOAL_BRIDGE", "SHOAL_POD_CIDR", "SHOAL_STATE_DIR"):
        monkeypatch.delenv(key, raising=False)
    Settings(state_dir=tmp_path, api_port=7443, bridge="shoalx").save()
    assert Settings.from_env(state_dir=tmp_path).api_port == 7443
    monkeypatch.setenv("SHOAL_BRIDGE", "shoaly")
    assert Settings.from_env(state_dir=tmp_path).bridge == "shoaly"
    assert Settings.from_env(state_dir=tmp_path, api_port=9443).api_port == 9443


@pytest.mark.parametrize("field, value, needle", [
    ("pod_cidr", "10.42.0.0/33", "pod_cidr"),
    ("service_cidr", "10.42.1.0/24", "overlap"),
    ("bridge", "a-very-long-bridge-name", "15 characters"),
    ("node_port_range", (5, 2), "node_port_range"),
])
def test_bad_settings_name_the_setting(field, value, needle):
    with pytest.raises(ValueError, match=needle):
        Settings(**{field: value}).validate()


def test_unix_socket_paths_stay_within_the_kernel_limit():
    long_dir = Path("/tmp/pytest-of-root/pytest-123/test_demo_tells_the_whole_story_then0/state")
    for state_dir in (Path("/var/lib/shoal"), long_dir):
        socket = Settings(state_dir=state_dir).socket_dir / "xds" / ("x" * 24) / "xds.sock"
        assert len(str(socket)) <= 107, socket
    assert Settings(state_dir=Path("/var/lib/shoal")).socket_dir == Path("/var/lib/shoal/run")
    assert str(Settings(state_dir=long_dir).socket_dir).startswith("/run/shoal/")
