"""`shoal build` flags and what the user sees: option parsing, errors with line
numbers and exit status 1, the TTY progress marking cache hits, --output archives."""

from __future__ import annotations

import json
import subprocess

import click
import pytest
from click.testing import CliRunner

from shoal.cli.build import build, parse_build_args, parse_output, parse_secrets
from shoal.cli.main import cli
from shoal.images import ImageNotFound, ImageStore

from tests.builder.conftest import teardown_env, make_env, write_context


@pytest.fixture(scope="module")
def state(tmp_path_factory):
    env = make_env(tmp_path_factory.mktemp("build-cli"))
    env.store.bootstrap_busybox("busybox")
    try:
        yield env.root
    finally:
        env.runtime = type(env.runtime)(env.root / "build" / "containers", cgroup_parent="shoal-build")
        teardown_env(env)


def shoal(state, *args):
    if "build" not in cli.commands:
        cli.add_command(build)  # the lead registers shoal.cli.build in main.py
    return CliRunner().invoke(cli, ["--state-dir", str(state), *args])


def test_option_parsing(monkeypatch):
    monkeypatch.setenv("FROM_ENV", "e")
    assert parse_build_args(("A=1", "B=", "FROM_ENV", "UNSET_ONE")) == {"A": "1", "B": "", "FROM_ENV": "e"}
    assert {k: str(v) for k, v in parse_secrets(("id=tok,src=/f",)).items()} == {"tok": "/f"}
    assert parse_output("type=oci,dest=/x.tar") == ("oci-archive", __import__("pathlib").Path("/x.tar"))
    for bad in (lambda: parse_secrets(("tok",)), lambda: parse_output("type=tar,dest=x"),
                lambda: parse_build_args(("=x",))):
        with pytest.raises(click.BadParameter):
            bad()


def test_build_with_output_archive_and_tty_progress(state, tmp_path):
    ctx = write_context(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nRUN echo x > /x\nCMD [\"cat\", \"/x\"]\n"})
    out = tmp_path / "image.tar"
    first = shoal(state, "build", "-t", "localhost/cli:1", "--output", f"type=oci,dest={out}", str(ctx))
    assert first.exit_code == 0, first.output
    inspect = json.loads(subprocess.run(["skopeo", "inspect", f"oci-archive:{out}"], check=True,
                                        capture_output=True, text=True).stdout)
    assert inspect["Layers"] and inspect["Created"] == "1970-01-01T00:00:00Z"
    again = shoal(state, "build", "--progress", "tty", "-t", "localhost/cli:1", str(ctx))
    assert again.exit_code == 0 and "CACHED" in again.output and "1 cached" in again.output
    assert again.output.strip().splitlines()[-1] == first.output.strip().splitlines()[-1]
    quiet = shoal(state, "build", "-q", "-t", "localhost/cli:1", str(ctx))
    assert quiet.output.strip().startswith("sha256:") and len(quiet.output.strip().splitlines()) == 1


def test_errors_are_one_line_with_the_dockerfile_line(state, tmp_path):
    ctx = write_context(tmp_path, {"Dockerfile": "FROM busybox\n\nRUN echo oops >&2; exit 7\n"})
    result = shoal(state, "build", "-t", "localhost/cli-bad:1", str(ctx))
    assert result.exit_code == 1
    assert "Error: Dockerfile:3: RUN:" in result.output and "exited with code 7" in result.output
    assert "oops" in result.output
    with pytest.raises(ImageNotFound):
        ImageStore(state / "images").resolve("localhost/cli-bad:1")
