"""A container joins a network namespace made for it (a pod sandbox's) or the host's."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from shoal.runtime import ContainerIntent, Runtime
from tests.runtime.conftest import needs_runc

pytestmark = [needs_runc, pytest.mark.slow]


@pytest.fixture
def netns():
    name = f"shoal-rt-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "add", "shoalrt0", "type", "veth", "peer", "name", "shoalrt1"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


async def test_container_joins_given_netns(runtime: Runtime, busybox_rootfs: Path, netns: str) -> None:
    path = f"/var/run/netns/{netns}"
    cid = await runtime.run(ContainerIntent(id="joiner", rootfs=busybox_rootfs, network=path,
                                            command=["sh", "-c", "cat /proc/net/dev"]))
    await runtime.wait(cid, timeout=30)
    text = "\n".join([line.text async for line in runtime.logs(cid)])
    assert "shoalrt0" in text


async def test_private_netns_has_only_loopback(runtime: Runtime, busybox_rootfs: Path) -> None:
    cid = await runtime.run(ContainerIntent(id="alone", rootfs=busybox_rootfs, command=["sh", "-c", "cat /proc/net/dev"]))
    await runtime.wait(cid, timeout=30)
    names = {line.text.split(":")[0].strip() async for line in runtime.logs(cid) if ":" in line.text}
    assert names == {"lo"}


async def test_host_network_sees_host_interfaces(runtime: Runtime, busybox_rootfs: Path) -> None:
    host_names = {line.split(":")[0].strip() for line in Path("/proc/net/dev").read_text().splitlines() if ":" in line}
    cid = await runtime.run(ContainerIntent(id="hostnet", rootfs=busybox_rootfs, network="host",
                                            command=["sh", "-c", "cat /proc/net/dev; ls /sys/class/net"]))
    assert (await runtime.wait(cid, timeout=30)).exit_code == 0
    names = {line.text.split(":")[0].strip() async for line in runtime.logs(cid) if ":" in line.text}
    # other tests add and remove veths on the host meanwhile: compare the stable part
    assert "lo" in names and (names & host_names) - {"lo"}, (names, host_names)
