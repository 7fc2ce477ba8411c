"""The ADS server's protocol rules, driven by a scripted client over the Unix socket.

The client plays Envoy's part of state-of-the-world ADS (grpcio client stub, no
Envoy): it asserts nonces only increase, types come in make-before-break order, a
NACK is recorded and not answered with the same version, and only affected proxies
are pushed.
"""

from __future__ import annotations

import asyncio

import grpc
import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from shoal.mesh.ca import MeshCA
from shoal.mesh.control import MeshControl
from shoal.mesh.meshconfig import MeshConfig
from shoal.mesh.server import XdsServer
from shoal.mesh.source import PODS, SERVICES, InMemorySource
from shoal.mesh.translate import model, protos
from tests.mesh.fixtures import pod, service

SHORT = {protos.CLUSTER: "CDS", protos.ENDPOINT: "EDS", protos.LISTENER: "LDS",
         protos.ROUTE: "RDS", protos.SECRET: "SDS"}


class FakeEnvoy:
    """One ADS stream; `responses` collects what the server sent."""

    def __init__(self, socket, node_id: str) -> None:
        self.channel = grpc.aio.insecure_channel(f"unix:{socket}")
        self.stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(self.channel)
        self.node_id = node_id
        self.requests: asyncio.Queue = asyncio.Queue()
        self.responses: asyncio.Queue = asyncio.Queue()
        self.call = None
        self.last_nonce = 0
        self.first = True

    async def start(self) -> None:
        async def gen():
            while True:
                item = await self.requests.get()
                if item is None:
                    return
                yield item
        self.call = self.stub.StreamAggregatedResources(gen())

        async def read():
            async for response in self.call:
                nonce = int(response.nonce)
                assert nonce > self.last_nonce, "nonces must increase"
                self.last_nonce = nonce
                await self.responses.put(response)
        self.reader = asyncio.create_task(read())

    def request(self, type_url, names=(), version="", nonce="", error=None) -> None:
        req = discovery_pb2.DiscoveryRequest(type_url=type_url, resource_names=list(names),
                                             version_info=version, response_nonce=nonce)
        if self.first:
            req.node.id = self.node_id
            self.first = False
        if error:
            req.error_detail.code = 3
            req.error_detail.message = error
        self.requests.put_nowait(req)

    def ack(self, response) -> None:
        names = [] if response.type_url in (protos.CLUSTER, protos.LISTENER) else \
            self.names.get(response.type_url, [])
        self.request(response.type_url, names, response.version_info, response.nonce)

    async def next(self, timeout=5.0):
        return await asyncio.wait_for(self.responses.get(), timeout)

    async def quiet(self, seconds=0.3) -> bool:
        try:
            await asyncio.wait_for(self.responses.get(), seconds)
            return False
        except asyncio.TimeoutError:
            return True

    async def close(self) -> None:
        self.requests.put_nowait(None)
        self.call.cancel()
        self.reader.cancel()
        await self.channel.close()

    names: dict = {}


@pytest.fixture
async def plane(tmp_path):
    source = InMemorySource([
        pod("client", "10.0.0.2", {"app": "client"}, sa="sleep"),
        pod("web-1", "10.0.0.3", {"app": "web"}, sa="web", ports=[("http", 8080)]),
        service("web", "10.96.0.10", {"app": "web"}, [{"name": "http", "port": 80, "targetPort": 8080}]),
    ])
    ca = MeshCA.load_or_create(tmp_path / "ca")
    control = MeshControl(source, ca, MeshConfig(debounce_seconds=0.02))
    await control.start()
    server = XdsServer(control)
    await server.start(tmp_path / "xds.sock")
    clients = []

    async def connect(pod_name, socket=tmp_path / "xds.sock"):
        ip = {"client": "10.0.0.2", "web-1": "10.0.0.3"}[pod_name]
        client = FakeEnvoy(socket, model.node_id(ip, pod_name, "default"))
        client.names = {}
        await client.start()
        clients.append(client)
        return client

    yield source, server, connect, tmp_path
    for client in clients:
        await client.close()
    await server.stop(0)
    await control.stop()


async def subscribe_all(envoy: FakeEnvoy) -> dict[str, discovery_pb2.DiscoveryResponse]:
    """Play Envoy's start-up: CDS+LDS wildcard, then EDS/RDS/SDS by name; ACK all."""
    envoy.request(protos.CLUSTER)
    cds = await envoy.next()
    envoy.ack(cds)
    envoy.request(protos.LISTENER)
    lds = await envoy.next()
    envoy.ack(lds)
    envoy.names = {
        protos.ENDPOINT: ["outbound|80||web.default.svc.cluster.local"],
        protos.ROUTE: ["80"],
        protos.SECRET: ["default", "ROOTCA"],
    }
    got = {"CDS": cds, "LDS": lds}
    for type_url, names in envoy.names.items():
        envoy.request(type_url, names)
        response = await envoy.next()
        assert response.type_url == type_url
        got[SHORT[type_url]] = response
        envoy.ack(response)
    return got


async def test_initial_config_and_acks_show_in_status(plane):
    source, server, connect, _ = plane
    envoy = await connect("client")
    got = await subscribe_all(envoy)
    assert len(got["CDS"].resources) >= 4
    assert len(got["SDS"].resources) == 2
    assert await envoy.quiet()
    status = server.proxy_status(envoy.node_id)
    assert status.connected and status.synced
    assert status.spiffe_id == "spiffe://cluster.local/ns/default/sa/sleep"
    assert status.acked["CDS"] == got["CDS"].version_info


async def test_nack_is_recorded_and_not_answered_with_the_same_version(plane):
    source, server, connect, _ = plane
    envoy = await connect("client")
    envoy.request(protos.CLUSTER)
    cds = await envoy.next()
    envoy.request(protos.CLUSTER, version="", nonce=cds.nonce, error="bad cluster xyz")
    assert await envoy.quiet()
    nack = server.proxy_status(envoy.node_id).last_nack
    assert nack.type == "CDS" and nack.version == cds.version_info
    assert nack.message == "bad cluster xyz"
    # a stale nonce is ignored (no answer, no ACK recorded)
    envoy.request(protos.CLUSTER, version="old", nonce="0")
    assert await envoy.quiet()
    assert "CDS" not in server.proxy_status(envoy.node_id).acked


async def test_changes_push_in_order_and_only_to_affected_proxies(plane):
    source, server, connect, _ = plane
    client = await connect("client")
    web = await connect("web-1")
    await subscribe_all(client)
    await subscribe_all(web)
    # a new ready endpoint of web: both proxies see EDS only (both call web)
    source.put(*pod("web-2", "10.0.0.4", {"app": "web"}, sa="web", ports=[("http", 8080)]))
    for envoy in (client, web):
        response = await envoy.next()
        assert SHORT[response.type_url] == "EDS"
        envoy.ack(response)
        assert await envoy.quiet(0.2)
    # a PeerAuthentication for web's workload changes web's inbound listener only
    source.put("peerauthentications.security.istio.io", {
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "mtls": {"mode": "PERMISSIVE"}}})
    response = await web.next()
    assert SHORT[response.type_url] == "LDS"
    web.ack(response)
    assert await client.quiet(0.3), "the client proxy was not affected"


async def test_removed_clusters_are_kept_until_listeners_move_on(plane):
    source, server, connect, _ = plane
    envoy = await connect("client")
    await subscribe_all(envoy)
    # replace service web by api: clusters and listeners both change
    source.delete(SERVICES, "default", "web")
    source.put(*service("api", "10.96.0.11", {"app": "web"}, [{"name": "http", "port": 80, "targetPort": 8080}]))
    order, cds_sets = [], []
    while True:
        try:
            response = await envoy.next(1.0)
        except asyncio.TimeoutError:
            break
        order.append(SHORT[response.type_url])
        if response.type_url == protos.CLUSTER:
            names = set()
            for any_ in response.resources:
                c = cluster_pb2.Cluster()
                any_.Unpack(c)
                names.add(c.name)
            cds_sets.append(names)
    assert order[0] == "CDS" and order[-1] == "CDS" and "LDS" in order
    assert order.index("LDS") < len(order) - 1
    old = "outbound|80||web.default.svc.cluster.local"
    new = "outbound|80||api.default.svc.cluster.local"
    assert old in cds_sets[0] and new in cds_sets[0], "first CDS keeps the old cluster"
    assert old not in cds_sets[-1] and new in cds_sets[-1], "last CDS removes it"


async def test_pod_socket_serves_only_its_pod(plane):
    source, server, connect, tmp_path = plane
    socket = tmp_path / "client.sock"
    await server.bind_pod_socket(socket, "default", "client")
    own = await connect("client", socket)
    own.request(protos.CLUSTER)
    assert (await own.next()).type_url == protos.CLUSTER
    other = await connect("web-1", socket)
    other.request(protos.CLUSTER)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await other.reader
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # binding the same path again replaces the earlier server (no duplicate listeners)
    await server.bind_pod_socket(socket, "default", "client")
    assert [p for _, p in server._servers].count(socket) == 1
    await server.unbind_pod_socket(socket)
    assert not socket.exists()


async def test_proxies_of_deleted_pods_are_forgotten(plane):
    source, server, connect, _ = plane
    envoy = await connect("client")
    envoy.request(protos.CLUSTER)
    await envoy.next()
    await envoy.close()
    await asyncio.sleep(0.1)
    assert server.proxy_status(envoy.node_id).connected is False
    source.delete(PODS, "default", "client")
    for _ in range(50):
        await asyncio.sleep(0.02)
        if server.proxy_status(envoy.node_id) is None:
            break
    assert server.proxy_status(envoy.node_id) is None


async def test_a_burst_of_changes_is_one_push(plane):
    source, server, connect, _ = plane
    envoy = await connect("client")
    await subscribe_all(envoy)
    for burst in range(2):  # two bursts of five changes, each in one loop turn
        for i in range(5 * burst, 5 * burst + 5):
            source.put(*pod(f"web-{i + 10}", f"10.0.1.{i + 2}", {"app": "web"}, sa="web",
                            ports=[("http", 8080)]))
        await asyncio.sleep(0)
    response = await envoy.next()
    assert SHORT[response.type_url] == "EDS"
    envoy.ack(response)
    pushes = 1
    while not await envoy.quiet(0.3):
        pushes += 1
    # one push per burst at most (leading edge, then merged), never one per change
    assert pushes <= 2
    state = server.control.cache.get(envoy.node_id)
    cla = state.get(protos.ENDPOINT)["outbound|80||web.default.svc.cluster.local"]
    assert len(cla.endpoints[0].lb_endpoints) == 11


async def test_a_proxy_waits_for_its_pod_and_never_trusts_its_own_claims(plane, tmp_path):
    source, server, connect, _ = plane
    envoy = FakeEnvoy(tmp_path / "xds.sock", model.node_id("10.0.0.7", "late", "default"))
    await envoy.start()
    try:
        envoy.request(protos.CLUSTER)
        assert await envoy.quiet(0.3), "no config for a pod the cluster does not know"
        assert "not found" in server.proxy_status(envoy.node_id).error
        source.put(*pod("late", "10.0.0.7", {"app": "late"}, sa="late-sa"))
        response = await envoy.next()
        assert response.type_url == protos.CLUSTER
        # the identity (and so the certificate) comes from the pod object
        assert server.proxy_status(envoy.node_id).spiffe_id == \
            "spiffe://cluster.local/ns/default/sa/late-sa"
    finally:
        await envoy.close()


async def test_malformed_node_id_is_refused(plane, tmp_path):
    envoy = FakeEnvoy(tmp_path / "xds.sock", "router~1.2.3.4~gw~default")
    await envoy.start()
    try:
        envoy.request(protos.CLUSTER)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await envoy.reader
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "sidecar~IP~POD.NAMESPACE~DOMAIN" in info.value.details()
    finally:
        await envoy.close()
