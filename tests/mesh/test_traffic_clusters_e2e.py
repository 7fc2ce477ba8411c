"""DestinationRules end to end: real Envoy sidecars in real network namespaces.

One topology for the module: pod a (client), pods b1 (version v1), b2 and b3 (v2),
all with sidecars; Service `web` (VIP :80 -> 8080) selects the three b pods, each
running tests/mesh/policy_server.py (b3 fails `/flaky` with 500). Each test applies
one DestinationRule to `web`, checks what a client sees, and deletes the rule again.
Applying waits at most 5 s for a's Envoy to show the rule (a changed cluster must not
sit out Envoy's 15 s EDS warm-up timeout).
"""

from __future__ import annotations

import json
import re
import sys

import pytest
import pytest_asyncio

from shoal.mesh import ca as mesh_ca
from shoal.mesh.control import MeshControl
from shoal.mesh.meshconfig import MeshConfig
from shoal.mesh.server import XdsServer
from shoal.mesh.source import DESTINATION_RULES, NAMESPACES, PODS, SERVICES, InMemorySource
from shoal.mesh.translate import model
from tests.mesh import harness

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

STATUS = {"sidecar.istio.io/status": json.dumps({"containers": ["istio-proxy"]})}
WEB = "web.default.svc.cluster.local"
CLUSTER = f"outbound|80||{WEB}"
SERVERS = {"b1": "v1", "b2": "v2", "b3": "v2"}
SCRIPT = str(harness.HERE / "policy_server.py")


def pod(name: str, ip: str, labels: dict, ports=()) -> dict:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": labels,
                     "annotations": dict(STATUS)},
        "spec": {"serviceAccountName": "web" if ports else "sleep", "containers": [{
            "name": "app", "image": "app",
            "ports": [{"containerPort": p, "name": "http"} for p in ports]}]},
        "status": {"phase": "Running", "podIP": ip,
                   "conditions": [{"type": "Ready", "status": "True"}]},
    }


class Env:
    def __init__(self) -> None:
        self.workdir = harness.make_workdir()
        self.topo = harness.Topology()
        self.procs = harness.Processes(self.workdir)
        self.socket = self.workdir / "xds.sock"
        self.source = InMemorySource()
        self.control: MeshControl | None = None
        self.server: XdsServer | None = None

    async def setup(self) -> None:
        topo = self.topo
        await topo.create(["a", *SERVERS])
        self.source.put(NAMESPACES, {"metadata": {"name": "default"}})
        self.source.put(PODS, pod("a", topo.ip("a"), {"app": "sleep"}))
        for name, version in SERVERS.items():
            self.source.put(PODS, pod(name, topo.ip(name), {"app": "web", "version": version},
                                      ports=[8080]))
        self.source.put(SERVICES, {
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"clusterIP": topo.vip(), "selector": {"app": "web"},
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})
        mesh = MeshConfig()
        ca = mesh_ca.MeshCA.load_or_create(self.workdir / "ca", mesh.trust_domain)
        self.control = MeshControl(self.source, ca, mesh)
        await self.control.start()
        self.server = XdsServer(self.control)
        await self.server.start(self.socket)
        for name in SERVERS:
            await self.procs.start(f"app-{name}", "ip", "netns", "exec", topo.netns(name),
                                   sys.executable, SCRIPT, "serve", "8080", name,
                                   "fail" if name == "b3" else "ok")
        state = await self.source.snapshot()
        for name in ("a", *SERVERS):
            identity = model.proxy_identity(state.get(PODS, "default", name), state)
            await harness.start_sidecar(self.procs, topo, name, identity, self.socket)
        for name in ("a", *SERVERS):
            await harness.wait_for(lambda n=name: self.ready(n), timeout=30)

    async def ready(self, name: str) -> bool:
        code, body = await harness.curl(self.topo, name, "http://127.0.0.1:15021/healthz/ready", 2)
        return code == 0 and "LIVE" in body

    async def close(self) -> None:
        await self.procs.close()
        if self.server:
            await self.server.stop(0)
        if self.control:
            await self.control.stop()
        await self.topo.close()
        harness.remove_workdir(self.workdir)

    async def load(self, path: str, count: int, concurrency: int = 1, *headers: str) -> dict:
        _, out = await harness.run(
            "ip", "netns", "exec", self.topo.netns("a"), sys.executable, SCRIPT, "load",
            f"http://{self.topo.vip()}{path}", str(count), str(concurrency), *headers,
            timeout=60)
        return json.loads(out)

    async def endpoints(self) -> dict[str, set[str]]:
        """cluster name -> pod names of its endpoints, from a's /clusters admin page."""
        by_ip = {self.topo.ip(n): n for n in SERVERS}
        result: dict[str, set[str]] = {}
        for line in (await harness.admin(self.topo, "a", "/clusters")).splitlines():
            m = re.match(r"^(outbound\|80\|[^:]*)::([\d.]+):8080::health_flags::", line)
            if m:
                result.setdefault(m.group(1), set()).add(by_ip.get(m.group(2), m.group(2)))
        return result

    async def active_cluster(self, name: str) -> dict:
        dump = json.loads(await harness.admin(
            self.topo, "a", "/config_dump?resource=dynamic_active_clusters"))
        for entry in dump["configs"]:
            if entry["cluster"]["name"] == name:
                return entry["cluster"]
        return {}

    async def apply(self, spec: dict, until) -> None:
        """Put DestinationRule `web` and wait until a's Envoy shows it (`until(cluster)`)."""
        self.source.put(DESTINATION_RULES, {
            "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": {"name": "web", "namespace": "default"}, "spec": {"host": "web", **spec}})

        async def shown():
            return until(await self.active_cluster(CLUSTER))
        await harness.wait_for(shown, timeout=5)  # not the 15 s of a stuck warm-up

    async def remove(self) -> None:
        self.source.delete(DESTINATION_RULES, "default", "web")

        async def default_again():
            c = await self.active_cluster(CLUSTER)
            return (c.get("lb_policy") == "LEAST_REQUEST" and "outlier_detection" not in c
                    and "transport_socket_matches" in c
                    and c["circuit_breakers"]["thresholds"][0]["max_connections"] == 4294967295)
        await harness.wait_for(default_again, timeout=5)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def env():
    e = Env()
    try:
        await e.setup()
        yield e
    finally:
        await e.close()


async def test_subsets_are_clusters_with_only_their_pods(env: Env):
    await env.apply({"subsets": [{"name": "v1", "labels": {"version": "v1"}},
                                 {"name": "v2", "labels": {"version": "v2"}}]},
                    until=lambda c: True)
    try:
        async def subsets_shown():
            eps = await env.endpoints()
            return eps if f"outbound|80|v2|{WEB}" in eps and f"outbound|80|v1|{WEB}" in eps else None
        eps = await harness.wait_for(subsets_shown, timeout=15)
        assert eps[f"outbound|80|v1|{WEB}"] == {"b1"}
        assert eps[f"outbound|80|v2|{WEB}"] == {"b2", "b3"}
        assert eps[CLUSTER] == {"b1", "b2", "b3"}
        for status in env.server.status():
            assert status.last_nack is None, status
    finally:
        await env.remove()

    async def subsets_gone():
        return set(await env.endpoints()) == {CLUSTER}
    await harness.wait_for(subsets_gone, timeout=15)


async def test_load_balancer_is_least_request_by_default_and_round_robin_when_asked(env: Env):
    assert (await env.active_cluster(CLUSTER))["lb_policy"] == "LEAST_REQUEST"
    # config_dump leaves out the enum's zero value, ROUND_ROBIN
    await env.apply({"trafficPolicy": {"loadBalancer": {"simple": "ROUND_ROBIN"}}},
                    until=lambda c: c and "lb_policy" not in c)
    try:
        result = await env.load("/", 30)
        # strict rotation: each of the three pods gets exactly a third
        assert result["servers"] == {"b1": 10, "b2": 10, "b3": 10}, result
    finally:
        await env.remove()


async def test_consistent_hash_on_a_header_sticks_each_key_to_one_pod(env: Env):
    await env.apply({"trafficPolicy": {"loadBalancer": {"consistentHash": {
        "httpHeaderName": "x-user"}}}}, until=lambda c: c.get("lb_policy") == "RING_HASH")
    try:
        picked = {}
        for key in range(8):
            result = await env.load("/", 6, 1, f"x-user:user-{key}")
            assert result["codes"] == {"200": 6}, result
            assert len(result["servers"]) == 1, (key, result)  # every request of a key: one pod
            picked[key] = next(iter(result["servers"]))
        assert len(set(picked.values())) > 1, picked  # and the keys spread over pods
        # without the header there is no key: requests spread
        spread = await env.load("/", 30)
        assert len(spread["servers"]) > 1, spread
    finally:
        await env.remove()


async def test_circuit_breaker_overflows_with_503_under_concurrency(env: Env):
    await env.apply({"trafficPolicy": {"connectionPool": {
        "tcp": {"maxConnections": 1}, "http": {"http1MaxPendingRequests": 1}}}},
        until=lambda c: c.get("circuit_breakers", {}).get("thresholds", [{}])[0].get(
            "max_connections") == 1)
    try:
        before = (await harness.stats(env.topo, "a")).get(
            f"cluster.{CLUSTER}.upstream_rq_pending_overflow", 0)
        result = await env.load("/slow?ms=300", 12, 3)
        overflow = (await harness.stats(env.topo, "a"))[
            f"cluster.{CLUSTER}.upstream_rq_pending_overflow"] - before
        assert result["codes"].get("503", 0) >= 1, result
        assert result["codes"].get("200", 0) >= 1, result
        assert result["overloaded"] == result["codes"]["503"], result  # Envoy's own overflow reply
        assert overflow == result["codes"]["503"], (overflow, result)
    finally:
        await env.remove()
    # without the rule the same load passes
    result = await env.load("/slow?ms=300", 6, 3)
    assert result["codes"] == {"200": 6}, result


async def test_outlier_detection_ejects_the_failing_pod(env: Env):
    await env.apply({"trafficPolicy": {"outlierDetection": {
        "consecutive5xxErrors": 2, "interval": "1s", "baseEjectionTime": "60s",
        "maxEjectionPercent": 100}}}, until=lambda c: "outlier_detection" in c)
    try:
        first = await env.load("/flaky", 30)
        assert first["codes"].get("500", 0) >= 2, first  # b3 answered before it was ejected
        stats = await harness.stats(env.topo, "a")
        assert stats[f"cluster.{CLUSTER}.outlier_detection.ejections_active"] == 1, first
        assert stats[f"cluster.{CLUSTER}.outlier_detection.ejections_enforced_consecutive_5xx"] >= 1
        after = await env.load("/flaky", 30)
        assert after["codes"] == {"200": 30}, after
        assert set(after["servers"]) == {"b1", "b2"}, after
    finally:
        await env.remove()
    # the rule is gone: b3 is back in rotation
    again = await env.load("/", 30)
    assert "b3" in again["servers"], again


async def test_tls_disable_sends_plaintext_that_strict_servers_refuse(env: Env):
    # auto-mTLS: the servers' sidecars are STRICT (the mesh default) and answer
    assert (await env.load("/", 3))["codes"] == {"200": 3}
    await env.apply({"trafficPolicy": {"tls": {"mode": "DISABLE"}}},
                    until=lambda c: "transport_socket_matches" not in c)
    try:
        refused = await env.load("/", 3)
        assert refused["codes"] == {"503": 3}, refused
        # (a changed cluster starts its stats afresh) no TLS was attempted
        assert (await harness.stats(env.topo, "a")).get(f"cluster.{CLUSTER}.ssl.handshake", 0) == 0
    finally:
        env.source.delete(DESTINATION_RULES, "default", "web")
    # ISTIO_MUTUAL: mesh mTLS to every endpoint, explicitly
    await env.apply({"trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}}},
                    until=lambda c: "transport_socket" in c)
    try:
        assert (await env.load("/", 3))["codes"] == {"200": 3}
        assert (await harness.stats(env.topo, "a"))[f"cluster.{CLUSTER}.ssl.handshake"] >= 1
    finally:
        await env.remove()
