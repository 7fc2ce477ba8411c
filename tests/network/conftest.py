"""Fixtures for shoal.network tests: an isolated network instance per test.

Every name and range is unique to the test: bridge `shoalt<hex>`, netns `shoal-nt-<hex>-*`,
pod CIDR a /24 inside 10.201.0.0/16, service CIDR a /24 inside 10.202.0.0/16, chain
prefix `SHOALT<hex>`, NodePorts in a random slice of 24000-28999. The finalizer tears the
instance down and fails the test if anything of it is left in the kernel.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from pathlib import Path

import pytest

from shoal.config import Settings
from shoal.network import PodNetwork
from shoal.store.allocations import Allocations
from tests.network import pods


def make_settings(state_dir: Path, *, pod_prefix_len: int = 24) -> Settings:
    tag = secrets.token_hex(3)
    third = secrets.randbelow(256)
    base = 24000 + secrets.randbelow(50) * 100
    return Settings(
        state_dir=state_dir,
        pod_cidr=f"10.201.{third}.0/{pod_prefix_len}",
        service_cidr=f"10.202.{third}.0/24",
        bridge=f"shoalt{tag[:4]}",
        chain_prefix=f"SHOALT{tag}",
        node_port_range=(base, base + 49),
        dns_port=0,
    )


def leftovers(settings: Settings, netns_prefix: str) -> list[str]:
    """Everything of the instance still in the kernel (empty when teardown was complete)."""
    found: list[str] = []
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    found += [f"netns {line.split()[0]}" for line in netns.splitlines() if line.startswith(netns_prefix)]
    if Path(f"/sys/class/net/{settings.bridge}").exists():
        found.append(f"bridge {settings.bridge}")
    for table in ("nat", "filter"):
        dump = subprocess.run(["iptables-save", "-t", table], capture_output=True, text=True).stdout
        found += [f"{table}: {line}" for line in dump.splitlines() if settings.chain_prefix in line]
    routes = subprocess.run(["ip", "route", "show", "table", "all"], capture_output=True, text=True).stdout
    ranges = (settings.pod_cidr, settings.service_cidr)
    found += [f"route {line}" for line in routes.splitlines() if any(r in line for r in ranges)]
    mounts = subprocess.run(["findmnt", "-rn", "-o", "TARGET"], capture_output=True, text=True).stdout
    found += [f"mount {m}" for m in mounts.splitlines() if m.startswith(str(settings.state_dir))]
    return found


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "state")


@pytest.fixture
def netns_prefix() -> str:
    return f"shoal-nt-{secrets.token_hex(2)}-"


@pytest.fixture
async def net(settings: Settings, netns_prefix: str):
    allocations = Allocations(settings.store_path)
    network = PodNetwork(settings, allocations, netns_prefix=netns_prefix)
    veths: list[str] = []
    try:
        await network.setup_host()
        yield network
    finally:
        for sb in await network.list_sandboxes():
            veths.append(sb.veth_host)
        await network.teardown()
        allocations.close()
        left = leftovers(settings, netns_prefix)
        left += [f"veth {v}" for v in veths if Path(f"/sys/class/net/{v}").exists()]
        assert not left, f"teardown left: {left}"


@pytest.fixture
async def procs():
    """Processes started in pod netns; killed at the end of the test."""
    group = pods.ProcessGroup()
    try:
        yield group
    finally:
        await group.stop()


@pytest.fixture
def netns_files():
    """/etc/netns/<name>/ files written for `ip netns exec`; removed at the end."""
    made: list[Path] = []

    def write(netns: str, name: str, text: str) -> None:
        folder = Path("/etc/netns") / netns
        folder.mkdir(parents=True, exist_ok=True)
        if folder not in made:
            made.append(folder)
        (folder / name).write_text(text)

    yield write
    for folder in made:
        shutil.rmtree(folder, ignore_errors=True)


def pytest_collection_modifyitems(items):
    if shutil.which("busybox") is None:  # pragma: no cover - the Makefile installs it
        skip = pytest.mark.skip(reason="busybox-static is required")
        for item in items:
            if "tests/network/" in item.nodeid and "e2e" in item.nodeid:
                item.add_marker(skip)
