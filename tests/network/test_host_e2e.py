"""Host setup and teardown: idempotent, range safety, nothing left behind."""

from __future__ import annotations

import subprocess
from pathlib import Path

from shoal.network import EndpointView, PodNetwork, PortMapping, ServicePort, ServiceProxy, ServiceView
from shoal.store.allocations import Allocations
from tests.network import pods
from tests.network.conftest import leftovers


def sh(cmd: str) -> str:
    return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout


async def test_no_packet_for_the_ranges_can_take_the_default_route(net, settings):
    pod_probe = settings.pod_cidr.replace(".0/24", ".200")
    svc_probe = settings.service_cidr.replace(".0/24", ".200")
    assert f"dev {settings.bridge}" in sh(f"ip route get {pod_probe}")
    assert f"dev {settings.bridge}" in sh(f"ip route get {svc_probe}")
    # With the bridge down its routes go away; the blackholes still catch both ranges.
    subprocess.run(["ip", "link", "set", settings.bridge, "down"], check=True)
    try:
        for probe in (pod_probe, svc_probe):
            out = subprocess.run(["ip", "route", "get", probe], capture_output=True, text=True)
            assert out.returncode != 0 or "blackhole" in out.stdout, out.stdout
            assert "eth0" not in out.stdout and " via " not in out.stdout
    finally:
        subprocess.run(["ip", "link", "set", settings.bridge, "up"], check=True)


async def test_setup_host_is_idempotent_and_keeps_service_rules(net, settings, procs):
    sb = await net.create_sandbox("default/a", hostname="a")
    await procs.httpd(sb.netns_name, "a", port=8080)
    ip = net.allocate_cluster_ip("default/web")
    await ServiceProxy(settings).sync([ServiceView("default", "web", ip, (ServicePort(80, name="http"),),
                                                   (EndpointView(sb.ip, {"http": 8080}),))])
    await net.setup_host()
    await net.setup_host()
    assert await pods.wget(f"http://{ip}/") == (0, "a")
    jumps = sh("iptables-save").count(f'--comment "shoal {settings.chain_prefix}"')
    assert jumps == 6  # nat PREROUTING/OUTPUT/POSTROUTING, filter FORWARD/OUTPUT/INPUT: once each


async def test_teardown_leaves_nothing(settings, netns_prefix, procs):
    allocations = Allocations(settings.store_path)
    net = PodNetwork(settings, allocations, netns_prefix=netns_prefix)
    await net.setup_host()
    try:
        a = await net.create_sandbox("default/a", hostname="a", port_mappings=[PortMapping(24999, 80)])
        b = await net.create_sandbox("default/b", hostname="b")
        ip = net.allocate_cluster_ip("default/web")
        await ServiceProxy(settings).sync([ServiceView("default", "web", ip, (ServicePort(80, node_port=None),),
                                                       (EndpointView(a.ip, {"": 80}), EndpointView(b.ip, {"": 80})))])
        assert settings.chain_prefix in sh("iptables-save")
    finally:
        await net.teardown()
        allocations.close()
    assert leftovers(settings, netns_prefix) == []
    assert a.netns_name not in sh("ip netns") and b.veth_host not in sh("ip link")
    assert settings.chain_prefix not in sh("iptables-save")
    assert not any(r in sh("ip route show table all") for r in (settings.pod_cidr, settings.service_cidr))
    assert not Path(a.uts_ns_path).exists()
    # and the pods' addresses are free again
    assert Allocations(settings.store_path).owned(f"pod:{settings.pod_cidr}") == {}
