"""Services on real netns: ClusterIP DNAT, balancing, NodePort, hairpin, reject, cluster DNS."""

from __future__ import annotations

import asyncio
import time

import pytest

from shoal.network import ClusterDNS, EndpointView, ServiceDirectory, ServicePort, ServiceProxy, ServiceView
from tests.network import pods


def web(cluster_ip, endpoints, *, node_port=None, namespace="default", name="web") -> ServiceView:
    return ServiceView(
        namespace=namespace, name=name, cluster_ip=cluster_ip,
        ports=(ServicePort(port=80, name="http", node_port=node_port),),
        endpoints=tuple(EndpointView(ip=sb.ip, target_ports={"http": 8080}) for sb in endpoints),
    )


@pytest.fixture
async def backends(net, procs):
    """Three pods serving their own name on :8080, and a client pod."""
    servers = []
    for i in range(3):
        sb = await net.create_sandbox(f"default/web-{i}", hostname=f"web-{i}")
        await procs.httpd(sb.netns_name, f"web-{i}", port=8080)
        servers.append(sb)
    client = await net.create_sandbox("default/client", hostname="client")
    return servers, client


async def test_pod_reaches_service_and_traffic_balances(net, settings, backends):
    servers, client = backends
    proxy = ServiceProxy(settings)
    ip = net.allocate_cluster_ip("default/web")
    await proxy.sync([web(ip, servers)])
    seen = [(await pods.wget(f"http://{ip}/", netns=client.netns_name))[1] for _ in range(30)]
    assert set(seen) == {"web-0", "web-1", "web-2"}, seen

    await proxy.sync([web(ip, servers[:2])])  # web-2 left the endpoints
    seen = [(await pods.wget(f"http://{ip}/", netns=client.netns_name))[1] for _ in range(15)]
    assert set(seen) <= {"web-0", "web-1"} and seen.count("web-0") + seen.count("web-1") == 15, seen

    await proxy.sync([])  # service deleted: its chains are gone, the address is rejected
    rc, _ = await pods.wget(f"http://{ip}/", netns=client.netns_name)
    assert rc != 0
    assert "-SVC-" not in await _nat_rules(settings)


async def test_service_without_endpoints_is_refused_fast(net, settings, backends):
    _, client = backends
    proxy = ServiceProxy(settings)
    ip = net.allocate_cluster_ip("default/empty")
    await proxy.sync([web(ip, [], name="empty")])
    started = time.monotonic()
    rc, text = await pods.wget(f"http://{ip}/", netns=client.netns_name, seconds=5)
    assert rc != 0 and "refused" in text.lower(), text
    assert time.monotonic() - started < 1.5
    started = time.monotonic()
    rc, text = await pods.wget(f"http://{ip}/", seconds=5)  # from the host too
    assert rc != 0 and "refused" in text.lower() and time.monotonic() - started < 1.5, text


async def test_node_port_answers_on_localhost_and_host_reaches_cluster_ip(net, settings, backends):
    servers, _ = backends
    proxy = ServiceProxy(settings)
    ip = net.allocate_cluster_ip("default/web")
    node_port = net.allocate_node_port("default/web")
    await proxy.sync([web(ip, servers[:1], node_port=node_port)])
    assert await pods.wget(f"http://127.0.0.1:{node_port}/") == (0, "web-0")
    assert await pods.wget(f"http://{ip}/") == (0, "web-0")


async def test_hairpin_pod_reaches_itself_through_its_service(net, settings, backends):
    servers, _ = backends
    proxy = ServiceProxy(settings)
    ip = net.allocate_cluster_ip("default/web")
    await proxy.sync([web(ip, servers[:1])])
    assert await pods.wget(f"http://{ip}/", netns=servers[0].netns_name) == (0, "web-0")


async def test_pods_resolve_services_through_cluster_dns(net, settings, backends, netns_files):
    servers, client = backends
    ip = net.allocate_cluster_ip("default/web")
    services = [web(ip, servers)]
    await ServiceProxy(settings).sync(services)
    dns = ClusterDNS(settings, ServiceDirectory(services), host=net.gateway, port=53,
                     upstreams=[("127.0.0.1", 9)], forward_timeout=0.5)
    await dns.start()
    try:
        netns_files(client.netns_name, "resolv.conf", net.resolv_conf("default"))
        for name in ("web.default.svc.cluster.local", "web", "web.default"):
            rc, body = await pods.wget(f"http://{name}/", netns=client.netns_name)
            assert rc == 0 and body in {"web-0", "web-1", "web-2"}, (name, body)
        rc, text = await pods.wget("http://nosuch/", netns=client.netns_name)
        assert rc != 0 and "bad address" in text, text
    finally:
        await dns.stop()


async def _nat_rules(settings) -> str:
    proc = await asyncio.create_subprocess_exec("iptables-save", "-t", "nat", stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    return "\n".join(line for line in out.decode().splitlines() if settings.chain_prefix in line)
