"""Pod sandboxes on real network namespaces: reachability, namespaces, IPAM, hostPorts."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from shoal.network import AllocationConflictError, PodNetwork, PortMapping, RangeExhaustedError, SandboxError
from shoal.store.allocations import Allocations
from tests.network import pods
from tests.network.conftest import leftovers, make_settings


async def test_two_pods_reach_each_other_by_ip(net, procs):
    a = await net.create_sandbox("default/a", hostname="a")
    b = await net.create_sandbox("default/b", hostname="b")
    assert a.ip != b.ip and a.gateway == b.gateway == net.gateway
    await procs.httpd(b.netns_name, "hello from b")
    assert await pods.wget(f"http://{b.ip}/", netns=a.netns_name) == (0, "hello from b")
    rc, out, _ = await pods.in_netns(a.netns_name, "ip", "route", "show", "default")
    assert f"via {net.gateway}" in out


async def test_sandbox_holds_hostname_and_ipc_namespace(net):
    sb = await net.create_sandbox("default/web-0", hostname="web-0")
    out = subprocess.run(["nsenter", f"--uts={sb.uts_ns_path}", "hostname"], capture_output=True, text=True)
    assert out.stdout.strip() == "web-0"
    ours = subprocess.run(["readlink", "/proc/self/ns/ipc"], capture_output=True, text=True).stdout.strip()
    joined = subprocess.run(["nsenter", f"--ipc={sb.ipc_ns_path}", "readlink", "/proc/self/ns/ipc"],
                            capture_output=True, text=True).stdout.strip()
    assert joined.startswith("ipc:[") and joined != ours


async def test_netns_iptables_are_installed_in_the_pod(net):
    capture = "*nat\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -p tcp -d 192.0.2.9/32 -j REDIRECT --to-ports 15001\nCOMMIT\n"
    sb = await net.create_sandbox("default/a", hostname="a", netns_iptables=capture)
    _, out, _ = await pods.in_netns(sb.netns_name, "iptables-save", "-t", "nat")
    assert "--to-ports 15001" in out


async def test_create_is_idempotent_and_delete_frees_everything(net, settings):
    first = await net.create_sandbox("default/a", hostname="a")
    again = await net.create_sandbox("default/a", hostname="a")
    assert again == first
    assert [s.pod_key for s in await net.list_sandboxes()] == ["default/a"]
    await net.delete_sandbox("default/a")
    await net.delete_sandbox("default/a")  # idempotent
    assert await net.list_sandboxes() == []
    assert not Path(first.netns_path).exists()
    assert not Path(f"/sys/class/net/{first.veth_host}").exists()
    assert not Path(first.uts_ns_path).exists()
    assert net.pod_ips.address_of("default/a") is None


async def test_concurrent_creates_get_distinct_addresses(net, procs):
    made = await asyncio.gather(*(net.create_sandbox(f"default/p{i}", hostname=f"p{i}") for i in range(6)))
    assert len({sb.ip for sb in made}) == 6
    await procs.httpd(made[0].netns_name, "p0")
    for sb in made[1:]:
        assert await pods.wget(f"http://{made[0].ip}/", netns=sb.netns_name) == (0, "p0")


async def test_partial_sandbox_is_rebuilt_with_the_same_ip(net):
    sb = await net.create_sandbox("default/a", hostname="a")
    subprocess.run(["ip", "link", "del", sb.veth_host], check=True)  # e.g. a crash mid-way
    assert [s.pod_key for s in await net.list_sandboxes()] == ["default/a"]
    assert not net.sandbox_is_complete(sb)
    rebuilt = await net.create_sandbox("default/a", hostname="a")
    assert rebuilt.ip == sb.ip
    assert Path(f"/sys/class/net/{rebuilt.veth_host}").exists()


async def test_ipam_survives_a_restart(net, settings, netns_prefix):
    a = await net.create_sandbox("default/a", hostname="a")
    restarted = PodNetwork(settings, Allocations(settings.store_path), netns_prefix=netns_prefix)
    await restarted.setup_host()
    assert await restarted.create_sandbox("default/a", hostname="a") == a  # re-adopted
    try:
        b = await restarted.create_sandbox("default/b", hostname="b")
        assert b.ip != a.ip
    finally:
        await restarted.teardown()  # the one live instance now; the fixture's is stale


async def test_exhausted_pod_cidr_is_a_clear_error(tmp_path, netns_prefix):
    settings = make_settings(tmp_path / "state", pod_prefix_len=30)  # one usable pod address
    allocations = Allocations(settings.store_path)
    net = PodNetwork(settings, allocations, netns_prefix=netns_prefix)
    try:
        await net.setup_host()
        await net.create_sandbox("default/a", hostname="a")
        with pytest.raises(RangeExhaustedError, match=r"pod_cidr 10\.201\.\d+\.0/30 is exhausted"):
            await net.create_sandbox("default/b", hostname="b")
    finally:
        await net.teardown()
        allocations.close()
    assert leftovers(settings, netns_prefix) == []


async def test_bad_hostname_names_the_field(net):
    with pytest.raises(SandboxError, match="hostname"):
        await net.create_sandbox("default/a", hostname="Not_A_Label")


async def test_host_port_answers_on_localhost(net, procs, settings):
    port = settings.node_port_range[1] + 7
    sb = await net.create_sandbox("default/a", hostname="a", port_mappings=[PortMapping(port, 8080)])
    await procs.httpd(sb.netns_name, "via hostPort", port=8080)
    assert await pods.wget(f"http://127.0.0.1:{port}/") == (0, "via hostPort")
    with pytest.raises(AllocationConflictError, match=f"hostPort {port}/TCP is already used by pod default/a"):
        await net.create_sandbox("default/b", hostname="b", port_mappings=[PortMapping(port, 80)])
    await net.delete_sandbox("default/a")
    rc, _ = await pods.wget(f"http://127.0.0.1:{port}/", seconds=2)
    assert rc != 0
    nat = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True).stdout
    ours = [line for line in nat.splitlines() if line.startswith(f"-A {settings.chain_prefix}-HOSTPORTS")]
    assert not [line for line in ours if "DNAT" in line], ours
