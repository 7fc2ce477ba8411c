"""Istio VirtualService traffic management end to end: real Envoy, real network namespaces.

Most tests share one topology (no daemon): pod `a` (the client, productpage, with its sidecar) and
plain backends without sidecars (tests/mesh/traffic_server.py): `r1` / `r2` (reviews
v1 / v2, port 9080), `flaky` (fails half its requests with 503), `slow` (answers after
2 s). Each test applies Istio's own YAML (as dicts) through the InMemorySource, waits
until the sidecar runs the new routes, and measures what the client sees.

Subset clusters (`outbound|9080|v1|reviews...`) belong to DestinationRule translation,
which is built elsewhere; until it lands, `with_subset_clusters` below derives them in
the test from the DestinationRule's subsets (adding only clusters translation did not
make), so the routes under test are exactly what translation emits.

The last test runs the headline case through a real daemon (`shoal up`, runc pods,
injected sidecars, the VirtualService applied with `shoal apply`).
"""

from __future__ import annotations

import json
import math
import sys

import pytest
import pytest_asyncio

from shoal.mesh import ca as mesh_ca
from shoal.mesh.control import MeshControl
from shoal.mesh.meshconfig import MeshConfig
from shoal.mesh.server import XdsServer
from shoal.mesh.source import (
    DESTINATION_RULES, NAMESPACES, PODS, SERVICES, VIRTUAL_SERVICES, ClusterState, InMemorySource,
)
from shoal.mesh.translate import Resources, model, protos, translate
from shoal.mesh.translate.names import outbound_cluster
from tests import daemon_harness
from tests.mesh import harness

pytestmark = pytest.mark.slow
ON_MODULE_LOOP = pytest.mark.asyncio(loop_scope="module")

STATUS = {"sidecar.istio.io/status": json.dumps({"containers": ["istio-proxy"]})}
REVIEWS_HOST = "reviews.default.svc.cluster.local"
SERVER = str(harness.HERE / "traffic_server.py")

REVIEWS_DR = {  # samples/bookinfo/networking/destination-rule-reviews.yaml
    "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
    "metadata": {"name": "reviews", "namespace": "default"},
    "spec": {"host": "reviews", "subsets": [
        {"name": "v1", "labels": {"version": "v1"}},
        {"name": "v2", "labels": {"version": "v2"}},
        {"name": "v3", "labels": {"version": "v3"}}]},
}


def virtual_service(name: str, spec: dict) -> dict:
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": name, "namespace": "default",
                         "creationTimestamp": "2025-06-01T00:00:00Z"},
            "spec": spec}


def pod(name: str, ip: str, labels: dict, port: int | None = None, sidecar: bool = False) -> dict:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": labels,
                     "annotations": dict(STATUS) if sidecar else {}},
        "spec": {"serviceAccountName": name, "containers": [{
            "name": "app", "image": "app",
            "ports": [{"containerPort": port, "name": "http"}] if port else []}]},
        "status": {"phase": "Running", "podIP": ip,
                   "conditions": [{"type": "Ready", "status": "True"}]},
    }


def with_subset_clusters(state: ClusterState, proxy, mesh: MeshConfig, shared) -> Resources:
    """translate(), plus the subset clusters of each DestinationRule translation lacks:
    the service's cluster renamed, its endpoints narrowed to the subset's pod labels."""
    res = translate(state, proxy, mesh, shared)
    clusters = {protos.resource_name(c): c for c in res.clusters}
    endpoints = {protos.resource_name(e): e for e in res.endpoints}
    labels_by_ip = {model.pod_ip(p): p["metadata"].get("labels") or {} for p in state.list(PODS)}
    for dr in state.list(DESTINATION_RULES):
        ns = dr["metadata"]["namespace"]
        fqdn = f"{dr['spec']['host']}.{ns}.svc.{mesh.cluster_domain}"
        for svc in shared.services:
            if svc.fqdn != fqdn:
                continue
            for sp in svc.ports:
                base = outbound_cluster(sp.port, fqdn)
                for subset in dr["spec"].get("subsets") or ():
                    name = outbound_cluster(sp.port, fqdn, subset["name"])
                    if name in clusters:
                        continue
                    cluster = protos.to_dict(clusters[base])
                    cluster["name"] = cluster["eds_cluster_config"]["service_name"] = name
                    clusters[name] = protos.to_proto(protos.CLUSTER, cluster)
                    cla = protos.to_dict(endpoints[base])
                    cla["cluster_name"] = name
                    for locality in cla.get("endpoints", []):
                        locality["lb_endpoints"] = [
                            e for e in locality["lb_endpoints"]
                            if subset["labels"].items() <= labels_by_ip.get(
                                e["endpoint"]["address"]["socket_address"]["address"], {}).items()]
                    endpoints[name] = protos.to_proto(protos.ENDPOINT, cla)
    return Resources(clusters=tuple(sorted(clusters.values(), key=protos.resource_name)),
                     endpoints=tuple(sorted(endpoints.values(), key=protos.resource_name)),
                     listeners=res.listeners, routes=res.routes)


class RoutingEnv:
    def __init__(self) -> None:
        self.workdir = harness.make_workdir()
        self.topo = harness.Topology()
        self.procs = harness.Processes(self.workdir)
        self.socket = self.workdir / "xds.sock"
        self.source = InMemorySource()
        self.control: MeshControl | None = None
        self.server: XdsServer | None = None

    async def setup(self) -> None:
        topo, put = self.topo, self.source.put
        await topo.create(["a", "r1", "r2", "flaky", "slow"])
        put(NAMESPACES, {"metadata": {"name": "default", "labels": {"istio-injection": "enabled"}}})
        put(PODS, pod("a", topo.ip("a"), {"app": "productpage", "version": "v1"}, sidecar=True))
        put(PODS, pod("r1", topo.ip("r1"), {"app": "reviews", "version": "v1"}, 9080))
        put(PODS, pod("r2", topo.ip("r2"), {"app": "reviews", "version": "v2"}, 9080))
        put(PODS, pod("flaky", topo.ip("flaky"), {"app": "flaky"}, 8080))
        put(PODS, pod("slow", topo.ip("slow"), {"app": "slow"}, 8080))
        for name, host, port, target in (("reviews", 10, 9080, 9080), ("flaky", 11, 80, 8080),
                                         ("slow", 12, 80, 8080)):
            put(SERVICES, {"metadata": {"name": name, "namespace": "default"},
                           "spec": {"clusterIP": topo.vip(host), "selector": {"app": name},
                                    "ports": [{"name": "http", "port": port, "targetPort": target}]}})
        # the reviews pods again, as opaque TCP and as a TLS port (tcp / tls rules)
        for name, host, port, port_name in (("reviews-tcp", 13, 7000, "tcp"),
                                            ("secure", 14, 443, "https")):
            put(SERVICES, {"metadata": {"name": name, "namespace": "default"},
                           "spec": {"clusterIP": topo.vip(host), "selector": {"app": "reviews"},
                                    "ports": [{"name": port_name, "port": port, "targetPort": 9080}]}})
        put(DESTINATION_RULES, REVIEWS_DR)
        put(DESTINATION_RULES, {**REVIEWS_DR, "metadata": {"name": "reviews-tcp", "namespace": "default"},
                                "spec": {**REVIEWS_DR["spec"], "host": "reviews-tcp"}})
        mesh = MeshConfig()
        ca = mesh_ca.MeshCA.load_or_create(self.workdir / "ca", mesh.trust_domain)
        self.control = MeshControl(self.source, ca, mesh, translator=with_subset_clusters)
        await self.control.start()
        self.server = XdsServer(self.control)
        await self.server.start(self.socket)
        for name, extra in (("r1", ()), ("r2", ()), ("flaky", ("--fail-ratio", "0.5")),
                            ("slow", ("--delay", "2"))):
            port = "9080" if name in ("r1", "r2") else "8080"
            label = {"r1": "reviews-v1", "r2": "reviews-v2"}.get(name, name)
            await self.procs.start(f"app-{name}", "ip", "netns", "exec", topo.netns(name),
                                   sys.executable, SERVER, "serve", port, label, *extra)
        state = await self.source.snapshot()
        identity = model.proxy_identity(state.get(PODS, "default", "a"), state)
        await harness.start_sidecar(self.procs, topo, "a", identity, self.socket)

        async def ready() -> bool:
            code, body = await harness.curl(topo, "a", "http://127.0.0.1:15021/healthz/ready", 2)
            return code == 0 and "LIVE" in body
        await harness.wait_for(ready, timeout=30)

    async def close(self) -> None:
        await self.procs.close()
        if self.server:
            await self.server.stop(0)
        if self.control:
            await self.control.stop()
        await self.topo.close()
        harness.remove_workdir(self.workdir)

    async def routes_dump(self) -> str:
        return await harness.admin(self.topo, "a", "/config_dump?resource=dynamic_route_configs")

    async def apply(self, name: str, spec: dict) -> None:
        """Put the VirtualService and wait until the sidecar serves routes from it."""
        self.source.put(VIRTUAL_SERVICES, virtual_service(name, spec))
        marker = f"/virtual-service/{name}"
        await harness.wait_for(lambda: self._has(marker, True), timeout=15)

    async def remove(self, name: str) -> None:
        self.source.delete(VIRTUAL_SERVICES, "default", name)
        await harness.wait_for(lambda: self._has(f"/virtual-service/{name}", False), timeout=15)

    async def apply_l4(self, name: str, spec: dict, cluster: str) -> None:
        """Put a VirtualService with tcp/tls rules; wait until the listener uses `cluster`."""
        self.source.put(VIRTUAL_SERVICES, virtual_service(name, spec))

        async def served() -> bool:
            for status in self.server.status():
                assert status.last_nack is None, status.last_nack
            dump = await harness.admin(self.topo, "a", "/config_dump?resource=dynamic_listeners")
            return cluster in dump
        await harness.wait_for(served, timeout=15)

    async def curl(self, url: str, *args: str) -> tuple[int, dict[str, str], str]:
        """(status, response headers, body) of one curl from the client pod."""
        _, out = await harness.run("ip", "netns", "exec", self.topo.netns("a"), "curl", "-sS", "-i",
                                   "--max-time", "5", *args, url)
        head, _, body = out.replace("\r\n", "\n").partition("\n\n")
        lines = head.splitlines()
        headers = dict((k.strip().lower(), v.strip()) for k, _, v in
                       (line.partition(":") for line in lines[1:]))
        return int(lines[0].split()[1]), headers, body

    async def _has(self, marker: str, present: bool) -> bool:
        for status in self.server.status():
            assert status.last_nack is None, status.last_nack
        return (marker in await self.routes_dump()) == present

    async def load(self, url: str, count: int, *headers: str) -> dict:
        _, out = await harness.run("ip", "netns", "exec", self.topo.netns("a"), sys.executable,
                                   SERVER, "load", url, str(count), *headers,
                                   timeout=count * 3 + 30)
        return json.loads(out)

    async def backend_stats(self, pod_name: str, port: int) -> dict:
        _, out = await harness.run("ip", "netns", "exec", self.topo.netns(pod_name), "curl", "-sS",
                                   f"http://127.0.0.1:{port}/__stats")
        return json.loads(out)

    def url(self, host: int, port: int, path: str = "/") -> str:
        return f"http://{self.topo.vip(host)}:{port}{path}"


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def env():
    routing_env = RoutingEnv()
    try:
        await routing_env.setup()
        yield routing_env
    finally:
        await routing_env.close()


def within_binomial(observed: int, n: int, p: float, sigmas: float = 4.0) -> bool:
    return abs(observed - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


@ON_MODULE_LOOP
async def test_bookinfo_header_routing_sends_jason_to_v2_and_everyone_else_to_v1(env: RoutingEnv):
    # samples/bookinfo/networking/virtual-service-reviews-test-v2.yaml, unchanged
    await env.apply("reviews", {
        "hosts": ["reviews"],
        "http": [
            {"match": [{"headers": {"end-user": {"exact": "jason"}}}],
             "route": [{"destination": {"host": "reviews", "subset": "v2"}}]},
            {"route": [{"destination": {"host": "reviews", "subset": "v1"}}]}]})
    try:
        jason = await env.load(env.url(10, 9080), 30, "end-user: jason")
        others = await env.load(env.url(10, 9080), 30, "end-user: ada")
        anonymous = await env.load(env.url(10, 9080), 30)
        assert jason["servers"] == {"reviews-v2": 30}, jason
        assert others["servers"] == {"reviews-v1": 30}, others
        assert anonymous["servers"] == {"reviews-v1": 30}, anonymous
    finally:
        await env.remove("reviews")
    # without the VirtualService both versions answer again
    both = await env.load(env.url(10, 9080), 40)
    assert set(both["servers"]) == {"reviews-v1", "reviews-v2"}, both


@ON_MODULE_LOOP
async def test_an_80_20_split_lands_within_binomial_tolerance(env: RoutingEnv):
    await env.apply("reviews-split", {"hosts": ["reviews"], "http": [{"route": [
        {"destination": {"host": "reviews", "subset": "v1"}, "weight": 80},
        {"destination": {"host": "reviews", "subset": "v2"}, "weight": 20}]}]})
    try:
        result = await env.load(env.url(10, 9080), 500)
    finally:
        await env.remove("reviews-split")
    assert result["status"] == {"200": 500}, result["status"]
    v1 = result["servers"].get("reviews-v1", 0)
    assert v1 + result["servers"].get("reviews-v2", 0) == 500
    assert within_binomial(v1, 500, 0.8), f"{v1}/500 to v1, expected about 400"


@ON_MODULE_LOOP
async def test_timeout_answers_504_before_a_slow_backend_does(env: RoutingEnv):
    before = await env.load(env.url(12, 80), 1)
    assert before["status"] == {"200": 1} and before["seconds"][0] >= 2.0, before
    await env.apply("slow", {"hosts": ["slow"], "http": [
        {"route": [{"destination": {"host": "slow"}}], "timeout": "0.5s"}]})
    try:
        result = await env.load(env.url(12, 80), 3)
    finally:
        await env.remove("slow")
    assert result["status"] == {"504": 3}, result
    assert max(result["seconds"]) < 1.0, result["seconds"]
    assert min(result["seconds"]) >= 0.45, result["seconds"]


@ON_MODULE_LOOP
async def test_retries_turn_a_half_failing_backend_into_success(env: RoutingEnv):
    cluster = "cluster.outbound|80||flaky.default.svc.cluster.local"
    baseline = await env.load(env.url(11, 80), 100)
    # Istio's default retry policy does not retry 503 responses: about half fail
    assert within_binomial(baseline["status"].get("503", 0), 100, 0.5), baseline["status"]
    await env.apply("flaky", {"hosts": ["flaky"], "http": [{
        "route": [{"destination": {"host": "flaky"}}],
        "retries": {"attempts": 10, "perTryTimeout": "2s", "retryOn": "5xx"}}]})
    try:
        retried_before = (await harness.stats(env.topo, "a")).get(f"{cluster}.upstream_rq_retry", 0)
        result = await env.load(env.url(11, 80), 200)
        retried = (await harness.stats(env.topo, "a"))[f"{cluster}.upstream_rq_retry"] - retried_before
    finally:
        await env.remove("flaky")
    assert result["status"].get("200", 0) >= 198, result["status"]  # >= 99 %
    # each request needs one retry on average (a geometric number of failures)
    assert 120 <= retried <= 300, retried


@ON_MODULE_LOOP
async def test_fault_delay_and_abort_hit_about_their_share(env: RoutingEnv):
    await env.apply("reviews-fault", {"hosts": ["reviews"], "http": [{
        "route": [{"destination": {"host": "reviews", "subset": "v1"}}],
        "fault": {"delay": {"fixedDelay": "0.15s", "percentage": {"value": 50}},
                  "abort": {"httpStatus": 555, "percentage": {"value": 20}}}}]})
    try:
        result = await env.load(env.url(10, 9080), 200)
    finally:
        await env.remove("reviews-fault")
    aborted = result["status"].get("555", 0)
    assert aborted + result["status"].get("200", 0) == 200, result["status"]
    assert within_binomial(aborted, 200, 0.2), f"{aborted}/200 aborted, expected about 40"
    # Envoy delays first, then aborts: the delay applies to both kinds of answer
    delayed = sum(1 for s in result["seconds"] if s >= 0.15)
    assert within_binomial(delayed, 200, 0.5), f"{delayed}/200 delayed, expected about 100"
    stats = await harness.stats(env.topo, "a")
    assert stats["http.outbound_0.0.0.0_9080.fault.aborts_injected"] >= aborted
    assert stats["http.outbound_0.0.0.0_9080.fault.delays_injected"] >= delayed


@ON_MODULE_LOOP
async def test_mirror_receives_copies_while_the_caller_sees_only_the_primary(env: RoutingEnv):
    before = await env.backend_stats("r2", 9080)
    await env.apply("reviews-mirror", {"hosts": ["reviews"], "http": [{
        "route": [{"destination": {"host": "reviews", "subset": "v1"}, "weight": 100}],
        "mirror": {"host": "reviews", "subset": "v2"},
        "mirrorPercentage": {"value": 100.0}}]})
    try:
        result = await env.load(env.url(10, 9080), 50)

        async def mirrored() -> dict | None:
            after = await env.backend_stats("r2", 9080)
            return after if after["requests"] - before["requests"] >= 50 else None
        after = await harness.wait_for(mirrored, timeout=10)
    finally:
        await env.remove("reviews-mirror")
    assert result["servers"] == {"reviews-v1": 50}, result
    assert after["requests"] - before["requests"] == 50
    # Envoy marks the copies: the mirror sees the host with a -shadow suffix
    shadow = {h: n for h, n in after["hosts"].items() if "-shadow" in h}
    assert sum(shadow.values()) - sum(n for h, n in before["hosts"].items() if "-shadow" in h) == 50


@ON_MODULE_LOOP
async def test_redirect_direct_response_rewrite_headers_and_cors_as_the_client_sees_them(env):
    await env.apply("reviews-actions", {"hosts": ["reviews"], "http": [
        {"match": [{"uri": {"exact": "/old"}}],
         "redirect": {"uri": "/new", "authority": "books.example", "redirectCode": 302}},
        {"match": [{"uri": {"prefix": "/gone"}}],
         "directResponse": {"status": 410, "body": {"string": "gone for good"}}},
        {"match": [{"uri": {"prefix": "/api/"}}], "rewrite": {"uri": "/v1/"},
         "route": [{"destination": {"host": "reviews", "subset": "v1"}}]},
        {"headers": {"request": {"set": {"x-shoal": "routed"}, "remove": ["x-secret"]},
                     "response": {"set": {"x-served-by": "sidecar"}}},
         "corsPolicy": {"allowOrigins": [{"exact": "https://shop.example"}],
                        "allowMethods": ["GET"], "maxAge": "1m"},
         "route": [{"destination": {"host": "reviews", "subset": "v2"}}]}]})
    try:
        url = env.url(10, 9080)
        status, headers, _ = await env.curl(url + "old")
        assert status == 302 and headers["location"] == "http://books.example/new", headers
        status, _, body = await env.curl(url + "gone/x")
        assert (status, body) == (410, "gone for good")
        status, _, body = await env.curl(url + "api/books")
        assert status == 200 and json.loads(body)["path"] == "/v1/books"
        status, headers, body = await env.curl(url + "x", "-H", "x-secret: s3")
        answer = json.loads(body)
        assert answer["server"] == "reviews-v2" and answer["headers"]["x-shoal"] == "routed"
        assert "x-secret" not in answer["headers"]
        assert headers["x-served-by"] == "sidecar"
        # a CORS preflight is answered by the sidecar's cors filter
        status, headers, _ = await env.curl(
            url + "x", "-X", "OPTIONS", "-H", "Origin: https://shop.example",
            "-H", "Access-Control-Request-Method: GET")
        assert status == 200 and headers["access-control-allow-origin"] == "https://shop.example"
        assert headers["access-control-max-age"] == "60"
        _, headers, _ = await env.curl(url + "x", "-H", "Origin: https://evil.example")
        assert "access-control-allow-origin" not in headers
    finally:
        await env.remove("reviews-actions")


@ON_MODULE_LOOP
async def test_tcp_weights_split_connections_and_tls_rules_route_by_sni(env):
    v1 = outbound_cluster(7000, "reviews-tcp.default.svc.cluster.local", "v1")
    v2 = outbound_cluster(7000, "reviews-tcp.default.svc.cluster.local", "v2")
    await env.apply_l4("reviews-tcp", {"hosts": ["reviews-tcp"], "tcp": [{
        "match": [{"port": 7000}],
        "route": [{"destination": {"host": "reviews-tcp", "subset": "v1"}, "weight": 50},
                  {"destination": {"host": "reviews-tcp", "subset": "v2"}, "weight": 50}]}]}, v2)
    await env.apply_l4("secure", {"hosts": ["secure"], "tls": [{
        "match": [{"port": 443, "sniHosts": ["login.example.com"]}],
        "route": [{"destination": {"host": "reviews-tcp", "subset": "v1", "port": {"number": 7000}}}]}]},
        "login.example.com")
    try:
        # a new connection per request: tcp_proxy picks a cluster per connection
        result = await env.load(env.url(13, 7000), 100, "Connection: close")
        assert result["status"] == {"200": 100}, result
        assert within_binomial(result["servers"].get("reviews-v1", 0), 100, 0.5), result["servers"]
        assert set(result["servers"]) == {"reviews-v1", "reviews-v2"}

        # TLS to the secure VIP: SNI login.example.com takes the rule's chain, other
        # names the service's own (the backends speak plain HTTP, so handshakes fail;
        # the upstream cluster each connection went to shows the routing)
        async def connections(cluster: str) -> int:
            return (await harness.stats(env.topo, "a")).get(f"cluster.{cluster}.upstream_cx_total", 0)
        own = outbound_cluster(443, "secure.default.svc.cluster.local")
        before_rule, before_own = await connections(v1), await connections(own)
        for sni in ("login.example.com", "www.example.com"):
            await harness.run("ip", "netns", "exec", env.topo.netns("a"), "curl", "-sk",
                              "--max-time", "3", "--resolve", f"{sni}:443:{env.topo.vip(14)}",
                              f"https://{sni}/", check=False)
        assert await connections(v1) == before_rule + 1
        assert await connections(own) == before_own + 1
    finally:
        for name in ("reviews-tcp", "secure"):
            env.source.delete(VIRTUAL_SERVICES, "default", name)


# -- the same through the daemon: real runc pods, injection, capture, the API server --------

WHO = ("mkdir -p /www/cgi-bin && printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\n"
       "echo from $VERSION\\n' > /www/cgi-bin/who && chmod +x /www/cgi-bin/who && "
       "exec httpd -f -p 9080 -h /www")


def reviews_deployment(version: str) -> str:
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: reviews-{version}, namespace: bookinfo}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: reviews, version: {version}}}}}
  template:
    metadata: {{labels: {{app: reviews, version: {version}}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: reviews
        image: busybox
        imagePullPolicy: IfNotPresent
        env: [{{name: VERSION, value: {version}}}]
        command: ["sh", "-c", {json.dumps(WHO)}]
        ports: [{{containerPort: 9080, name: http}}]
        readinessProbe: {{httpGet: {{path: /cgi-bin/who, port: 9080}}, periodSeconds: 1}}
---
apiVersion: v1
kind: Service
metadata: {{name: reviews-{version}, namespace: bookinfo}}
spec:
  selector: {{app: reviews, version: {version}}}
  ports: [{{name: http, port: 9080}}]
"""


BOOKINFO = f"""
apiVersion: v1
kind: Namespace
metadata: {{name: bookinfo, labels: {{istio-injection: enabled}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: reviews, namespace: bookinfo}}
spec:
  selector: {{app: reviews}}
  ports: [{{name: http, port: 9080}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: productpage, namespace: bookinfo, labels: {{app: productpage}}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {{name: client, image: busybox, imagePullPolicy: IfNotPresent, command: ["sleep", "3600"]}}
---
{reviews_deployment("v1")}
---
{reviews_deployment("v2")}
"""

# Istio's header-routing rule; the versions are reached as Services of their own here
# (subset clusters come with DestinationRule translation).
REVIEWS_BY_USER = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: bookinfo}
spec:
  hosts: [reviews]
  http:
  - match:
    - headers:
        end-user: {exact: jason}
    route:
    - destination: {host: reviews-v2}
  - route:
    - destination: {host: reviews-v1}
"""


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    instance = daemon_harness.ShoalInstance(tmp_path_factory.mktemp("routing-daemon"))
    instance.shoal("image", "bootstrap", "busybox", "--busybox")
    instance.start()
    try:
        instance.shoal("apply", "-f", "-", input=BOOKINFO)

        def ready() -> bool:
            items = daemon_harness.get_json(instance, "pods", "-n", "bookinfo")["items"]
            return len(items) == 3 and all(
                p["status"].get("containerStatuses")
                and all(c.get("ready") for c in p["status"]["containerStatuses"]) for p in items)
        daemon_harness.wait_for(ready, 150, what="bookinfo pods ready")
        yield instance
    finally:
        instance.stop()


def versions_answering(daemon, count: int, *header: str) -> dict[str, int]:
    args = " ".join(f"--header '{h}'" for h in header)
    out = daemon.shoal("exec", "-n", "bookinfo", "productpage", "-c", "client", "--", "sh", "-c",
                       f"for i in $(seq {count}); do timeout 5 wget -qO- {args} "
                       "http://reviews:9080/cgi-bin/who; done", check=False).stdout
    seen: dict[str, int] = {}
    for line in out.splitlines():
        if line.startswith("from "):
            seen[line.split()[1]] = seen.get(line.split()[1], 0) + 1
    return seen


def test_daemon_virtual_service_routes_jason_to_v2(daemon):
    wait = daemon_harness.wait_for
    # before: the reviews Service spreads calls over both versions
    wait(lambda: set(versions_answering(daemon, 20)) == {"v1", "v2"}, 60, interval=1,
         what="both versions answering")
    daemon.shoal("apply", "-f", "-", input=REVIEWS_BY_USER)
    wait(lambda: versions_answering(daemon, 5, "end-user: jason") == {"v2": 5}, 30, interval=0.5,
         what="jason routed to v2")
    assert versions_answering(daemon, 20, "end-user: jason") == {"v2": 20}
    assert versions_answering(daemon, 20, "end-user: ada") == {"v1": 20}
    assert versions_answering(daemon, 20) == {"v1": 20}
    rows = [line for line in daemon.shoal("mesh", "status").stdout.splitlines()
            if "productpage.bookinfo" in line]
    assert rows and "SYNCED" in rows[0] and "NACKED" not in rows[0], rows
