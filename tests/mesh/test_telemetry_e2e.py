"""Istio's standard metrics end to end: real Envoy sidecars, real network namespaces.

One topology for the module: pod a (workload `sleep`, service account sleep) and pod b
(workload `web-v1`: app web, version v1, service account web), both with sidecars and
mTLS. b runs tests/mesh/traffic_server.py on 8080 (Service `web`), declares 8081 with
nothing listening (Service `down`: b's sidecar answers 503 UF), and a TCP server on
9090 (Service `tcp-echo`: reads 1000 bytes, answers 300). Service `empty` has no
endpoints (a's sidecar answers 503 UH). The metrics service runs in the test process,
on sockets next to the xDS socket, as the daemon runs it per pod.

Every assertion reads the sidecars' own :15090/stats/prometheus pages, as Prometheus
would, parsed with prometheus_client's parser (so the merged page must be valid).
"""

from __future__ import annotations

import asyncio
import json
import sys

import grpc
import pytest
import pytest_asyncio
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2
from prometheus_client.parser import text_string_to_metric_families

from shoal.mesh import ca as mesh_ca
from shoal.mesh.control import MeshControl
from shoal.mesh.meshconfig import MeshConfig
from shoal.mesh.server import XdsServer
from shoal.mesh.source import NAMESPACES, PODS, SERVICES, InMemorySource
from shoal.mesh.telemetry import TelemetryService
from shoal.mesh.translate import model, telemetry
from tests.mesh import harness

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

STATUS = {"sidecar.istio.io/status": json.dumps({"containers": ["istio-proxy"]})}
SERVER = str(harness.HERE / "traffic_server.py")
SLEEP = "spiffe://cluster.local/ns/default/sa/sleep"
WEB = "spiffe://cluster.local/ns/default/sa/web"
TCP_SERVER = """
import socket, sys, threading
def handle(conn):
    with conn:
        got = 0
        while got < 1000:
            chunk = conn.recv(65536)
            if not chunk:
                return
            got += len(chunk)
        conn.sendall(b"r" * 300)
        conn.recv(1)  # until the client closes
server = socket.create_server(("0.0.0.0", 9090))
while True:
    threading.Thread(target=handle, args=(server.accept()[0],), daemon=True).start()
"""
TCP_CLIENT = """
import socket, sys, time
conn = socket.create_connection((sys.argv[1], 9000), timeout=10)
conn.sendall(b"q" * 1000)
got = 0
while got < 300:
    got += len(conn.recv(65536))
print(got, flush=True)
time.sleep(float(sys.argv[2]))
conn.close()
"""


def pod(name: str, ip: str, labels: dict, account: str, replica_set: str, ports=()) -> dict:
    template_hash = replica_set.rsplit("-", 1)[1]
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default",
                     "labels": {**labels, "pod-template-hash": template_hash},
                     "annotations": dict(STATUS),
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                          "name": replica_set, "uid": "u-" + name,
                                          "controller": True}]},
        "spec": {"serviceAccountName": account, "containers": [{
            "name": "app", "image": "app",
            "ports": [{"containerPort": p, "name": n} for p, n in ports]}]},
        "status": {"phase": "Running", "podIP": ip,
                   "conditions": [{"type": "Ready", "status": "True"}]},
    }


def service(name: str, vip: str, port: int, target: int, port_name: str, app: str) -> dict:
    return {"metadata": {"name": name, "namespace": "default"},
            "spec": {"clusterIP": vip, "selector": {"app": app},
                     "ports": [{"name": port_name, "port": port, "targetPort": target}]}}


class Env:
    def __init__(self) -> None:
        self.workdir = harness.make_workdir()
        self.topo = harness.Topology()
        self.procs = harness.Processes(self.workdir)
        self.socket = self.workdir / "xds.sock"
        self.source = InMemorySource()
        self.control: MeshControl | None = None
        self.server: XdsServer | None = None
        self.telemetry: TelemetryService | None = None

    async def setup(self) -> None:
        topo, put = self.topo, self.source.put
        await topo.create(["a", "b"])
        put(NAMESPACES, {"metadata": {"name": "default"}})
        put(PODS, pod("a", topo.ip("a"), {"app": "sleep"}, "sleep", "sleep-7f9c"))
        put(PODS, pod("b", topo.ip("b"), {"app": "web", "version": "v1"}, "web", "web-v1-6d4b",
                      ports=[(8080, "http"), (8081, "http-down"), (9090, "tcp")]))
        put(SERVICES, service("web", topo.vip(10), 80, 8080, "http", "web"))
        put(SERVICES, service("down", topo.vip(11), 80, 8081, "http", "web"))
        put(SERVICES, service("empty", topo.vip(12), 80, 8080, "http", "nothing"))
        put(SERVICES, service("tcp-echo", topo.vip(13), 9000, 9090, "tcp", "web"))
        mesh = MeshConfig()
        ca = mesh_ca.MeshCA.load_or_create(self.workdir / "ca", mesh.trust_domain)
        self.control = MeshControl(self.source, ca, mesh)
        await self.control.start()
        self.server = XdsServer(self.control)
        await self.server.start(self.socket)
        self.telemetry = TelemetryService(self.source, mesh)
        await self.telemetry.start(self.workdir)
        await self.procs.start("app-b", "ip", "netns", "exec", topo.netns("b"),
                               sys.executable, SERVER, "serve", "8080", "web-v1")
        await self.procs.start("tcp-b", "ip", "netns", "exec", topo.netns("b"),
                               sys.executable, "-c", TCP_SERVER)
        state = await self.source.snapshot()
        for name in ("a", "b"):
            identity = model.proxy_identity(state.get(PODS, "default", name), state)
            await harness.start_sidecar(self.procs, topo, name, identity, self.socket)
        for name in ("a", "b"):
            await harness.wait_for(lambda n=name: self.ready(n), timeout=30)

    async def ready(self, name: str) -> bool:
        code, body = await harness.curl(self.topo, name, "http://127.0.0.1:15021/healthz/ready", 2)
        return code == 0 and "LIVE" in body

    async def close(self) -> None:
        await self.procs.close()
        if self.telemetry:
            await self.telemetry.stop()
        if self.server:
            await self.server.stop(0)
        if self.control:
            await self.control.stop()
        await self.topo.close()
        harness.remove_workdir(self.workdir)

    async def load(self, host: int, count: int) -> dict:
        _, out = await harness.run(
            "ip", "netns", "exec", self.topo.netns("a"), sys.executable, SERVER, "load",
            f"http://{self.topo.vip(host)}/", str(count), timeout=60)
        return json.loads(out)

    async def page(self, name: str) -> str:
        code, body = await harness.curl(self.topo, name, "http://127.0.0.1:15090/stats/prometheus")
        assert code == 0, body
        return body

    async def samples(self, name: str, metric: str, **match: str) -> list:
        """Samples of `metric` (a sample name, e.g. istio_requests_total) on name's
        15090 page whose labels include `match`."""
        families = text_string_to_metric_families(await self.page(name))
        return [s for family in families for s in family.samples
                if s.name == metric and match.items() <= s.labels.items()]

    async def total(self, name: str, metric: str, **match: str) -> float:
        return sum(s.value for s in await self.samples(name, metric, **match))

    async def settle(self, name: str, metric: str, expected: float, **match: str) -> list:
        """Wait until the matching samples sum to `expected` (the sidecar sends its
        records every 0.5 s), then once more past a flush: no late double count."""
        async def reached():
            return await self.total(name, metric, **match) >= expected
        await harness.wait_for(reached, timeout=10, interval=0.2)
        await asyncio.sleep(1.2)
        found = await self.samples(name, metric, **match)
        assert sum(s.value for s in found) == expected, found
        return found


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env():
    e = Env()
    try:
        await e.setup()
        yield e
    finally:
        await e.close()


SOURCE_LABELS = {
    "source_workload": "sleep", "source_workload_namespace": "default", "source_app": "sleep",
    "source_version": "unknown",
}
WEB_LABELS = {
    "destination_workload": "web-v1", "destination_workload_namespace": "default",
    "destination_app": "web", "destination_version": "v1",
}


async def test_requests_counted_exactly_by_both_reporters(env):
    n = 20
    result = await env.load(10, n)
    assert result["status"] == {"200": n}, result
    service = {"destination_service": "web.default.svc.cluster.local",
               "destination_service_name": "web", "destination_service_namespace": "default"}
    for pod_name, reporter, policy in (("a", "source", "unknown"),
                                       ("b", "destination", "mutual_tls")):
        found = await env.settle(pod_name, "istio_requests_total", n, reporter=reporter,
                                 destination_service_name="web")
        assert len(found) == 1, found
        assert found[0].labels == {
            "reporter": reporter, **SOURCE_LABELS, **WEB_LABELS, **service,
            "source_principal": SLEEP, "destination_principal": WEB,
            "request_protocol": "http", "response_code": "200", "grpc_response_status": "",
            "response_flags": "-", "connection_security_policy": policy,
        }
        match = {"reporter": reporter, "destination_service_name": "web"}
        assert await env.total(pod_name, "istio_request_duration_milliseconds_count", **match) == n
        buckets = await env.samples(pod_name, "istio_request_duration_milliseconds_bucket", **match)
        assert [s.labels["le"] for s in buckets][:3] == ["0.5", "1", "5"]  # as Envoy renders its own
        assert {s.labels["le"]: s.value for s in buckets}["+Inf"] == n
        assert await env.total(pod_name, "istio_request_bytes_count", **match) == n
        # each response: headers plus a JSON body of over 100 bytes
        assert await env.total(pod_name, "istio_response_bytes_sum", **match) > 100 * n
    # Envoy's own stats are still on the page
    assert "envoy_server_live" in await env.page("a")


async def test_503s_carry_their_response_flags(env):
    down = await env.load(11, 5)  # b's sidecar cannot connect to 8081: 503 UF there
    assert down["status"] == {"503": 5}, down
    found = await env.settle("b", "istio_requests_total", 5, reporter="destination",
                             destination_service_name="down")
    assert [(s.labels["response_code"], s.labels["response_flags"]) for s in found] == [("503", "UF")]
    assert found[0].labels["source_workload"] == "sleep"
    at_source = await env.settle("a", "istio_requests_total", 5, reporter="source",
                                 destination_service_name="down")
    assert [s.labels["response_code"] for s in at_source] == ["503"]

    empty = await env.load(12, 3)  # no endpoints at all: a's sidecar answers 503 UH
    assert empty["status"] == {"503": 3}, empty
    found = await env.settle("a", "istio_requests_total", 3, reporter="source",
                             destination_service_name="empty")
    assert [(s.labels["response_code"], s.labels["response_flags"],
             s.labels["destination_workload"], s.labels["destination_principal"])
            for s in found] == [("503", "UH", "unknown", "unknown")]


async def test_tcp_metrics(env):
    vip = env.topo.vip(13)
    netns = ("ip", "netns", "exec", env.topo.netns("a"), sys.executable, "-c", TCP_CLIENT, vip)
    for _ in range(2):
        _, out = await harness.run(*netns, "0", timeout=30)
        assert out.strip() == "300"
    held = await env.procs.start("tcp-held", *netns, "30")  # stays open
    match = {"destination_service_name": "tcp-echo"}
    try:
        for pod_name, reporter in (("a", "source"), ("b", "destination")):
            opened = await env.settle(pod_name, "istio_tcp_connections_opened_total", 3,
                                      reporter=reporter, **match)
            await env.settle(pod_name, "istio_tcp_connections_closed_total", 2,
                             reporter=reporter, **match)
            assert opened[0].labels["request_protocol"] == "tcp"
            assert opened[0].labels["source_workload"] == "sleep"
            assert opened[0].labels["destination_workload"] == "web-v1"
            assert opened[0].labels["source_principal"] == SLEEP
            assert opened[0].labels["destination_principal"] == WEB
            assert "response_code" not in opened[0].labels
        policy = (await env.samples("b", "istio_tcp_connections_opened_total", **match))[0]
        assert policy.labels["connection_security_policy"] == "mutual_tls"
    finally:
        await env.procs.stop(held)
    for pod_name, reporter in (("a", "source"), ("b", "destination")):
        await env.settle(pod_name, "istio_tcp_connections_closed_total", 3, reporter=reporter, **match)
        # request direction: 1000 bytes per connection; responses: 300
        await env.settle(pod_name, "istio_tcp_received_bytes_total", 3000, reporter=reporter, **match)
        await env.settle(pod_name, "istio_tcp_sent_bytes_total", 900, reporter=reporter, **match)


def _record(**attributes: str) -> logs_service_pb2.ExportLogsServiceRequest:
    request = logs_service_pb2.ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    for key, value in (("log_name", "inbound"), ("node_name", "sidecar~10.0.0.9~ghost.default~x")):
        resource_logs.resource.attributes.add(key=key, value=common_pb2.AnyValue(string_value=value))
    record = resource_logs.scope_logs.add().log_records.add()
    record.body.string_value = telemetry.FIELD_SEPARATOR.join(
        attributes.get(name, "-") for name, _ in telemetry.ACCESS_LOG_FIELDS)
    return request


async def test_malformed_input_does_not_stop_the_metrics_service(env):
    target = f"unix:{env.workdir / telemetry.ALS_SOCKET}"
    async with grpc.aio.insecure_channel(target) as channel:
        garbage = channel.unary_unary(
            "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
            request_serializer=lambda b: b, response_deserializer=lambda b: b)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await garbage(b"\xff\x00not a protobuf" * 10)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "ExportLogsServiceRequest" in refused.value.details()
        with pytest.raises(grpc.aio.AioRpcError) as too_big:
            await garbage(b"\x00" * (5 * 1024 * 1024))
        assert too_big.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        stub = logs_service_pb2_grpc.LogsServiceStub(channel)
        answer = await stub.Export(_record(log_type="DownstreamEnd", response_code="abc"))
        assert answer.partial_success.rejected_log_records == 1
        assert "response_code" in answer.partial_success.error_message
        answer = await stub.Export(_record(log_type="DownstreamEnd", response_code="200",
                                           authority="x" * 10_000))
        assert answer.partial_success.rejected_log_records == 1
    # still counting real traffic
    before = await env.total("b", "istio_requests_total", reporter="destination",
                             destination_service_name="web")
    assert (await env.load(10, 4))["status"] == {"200": 4}
    await env.settle("b", "istio_requests_total", before + 4, reporter="destination",
                     destination_service_name="web")
