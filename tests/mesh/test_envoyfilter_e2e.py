"""EnvoyFilter end to end with real Envoy sidecars in real network namespaces.

Light harness (no daemon): pods `ratings` (client), `productpage` and `reviews`, all
with sidecars, in namespace default; Services `productpage` and `reviews` on port 9080.
Istio's local rate limit EnvoyFilter (from its "Enabling Rate Limits using Envoy" task,
unchanged: namespace istio-system, selecting app=productpage) makes productpage's
sidecar answer 429 beyond its bucket of 4 a minute; a patch Envoy rejects is a NACK
that leaves that sidecar on its last good config and the others untouched.

Last, the same EnvoyFilter through a real daemon: `kubectl apply` of Istio's YAML
against runc pods with injected sidecars, and the doc's check from the ratings pod.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import pytest_asyncio
import yaml

from shoal.mesh import ca as mesh_ca
from shoal.mesh import proxyconfig, report
from shoal.mesh.control import MeshControl
from shoal.mesh.meshconfig import MeshConfig
from shoal.mesh.server import XdsServer
from shoal.mesh.source import ENVOY_FILTERS, NAMESPACES, PODS, SERVICES, InMemorySource
from shoal.mesh.translate import model
from tests.daemon_harness import ShoalInstance, get_json, wait_for
from tests.mesh import harness
from tests.mesh.test_translate_envoyfilter import ISTIO_LOCAL_RATE_LIMIT

pytestmark = pytest.mark.slow
on_module_loop = pytest.mark.asyncio(loop_scope="module")

STATUS = {"sidecar.istio.io/status": json.dumps({"containers": ["istio-proxy"]})}
PODS_ = {"ratings": ("r", None), "productpage": ("p", 10), "reviews": ("v", 11)}
"""pod -> (its short name in the topology (interface names are short), host part of its
service's VIP or None)."""


def pod(name: str, ip: str, port: int | None) -> dict:
    ports = [{"containerPort": port, "name": "http"}] if port else []
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": name},
                     "annotations": dict(STATUS)},
        "spec": {"serviceAccountName": name, "containers": [{
            "name": name, "image": "app", "ports": ports}]},
        "status": {"phase": "Running", "podIP": ip,
                   "conditions": [{"type": "Ready", "status": "True"}]},
    }


def envoy_filter(name: str, value: dict, operation: str = "INSERT_BEFORE") -> dict:
    """An EnvoyFilter in default for productpage: `operation` next to the router filter."""
    return {"apiVersion": "networking.istio.io/v1alpha3", "kind": "EnvoyFilter",
            "metadata": {"name": name, "namespace": "default",
                         "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"workloadSelector": {"labels": {"app": "productpage"}}, "configPatches": [{
                "applyTo": "HTTP_FILTER",
                "match": {"context": "SIDECAR_INBOUND", "listener": {"filterChain": {
                    "filter": {"name": "envoy.filters.network.http_connection_manager",
                               "subFilter": {"name": "envoy.filters.http.router"}}}}},
                "patch": {"operation": operation, "value": value}}]}}


RATE_LIMIT_TYPE = ("type.googleapis.com/"
                   "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit")


class Env:
    def __init__(self) -> None:
        self.workdir = harness.make_workdir()
        self.topo = harness.Topology()
        self.procs = harness.Processes(self.workdir)
        self.socket = self.workdir / "xds.sock"
        self.source = InMemorySource()
        self.control: MeshControl | None = None
        self.server: XdsServer | None = None

    def ip(self, name: str) -> str:
        return self.topo.ip(PODS_[name][0])

    def netns(self, name: str) -> str:
        return self.topo.netns(PODS_[name][0])

    def node(self, name: str) -> str:
        return model.node_id(self.ip(name), name, "default")

    def status(self, name: str):
        assert self.server is not None
        return self.server.proxy_status(self.node(name))

    async def setup(self) -> None:
        await self.topo.create([short for short, _ in PODS_.values()])
        self.source.put(NAMESPACES, {"metadata": {"name": "default",
                                                  "labels": {"istio-injection": "enabled"}}})
        for name, (_, vip) in PODS_.items():
            self.source.put(PODS, pod(name, self.ip(name), 9080 if vip else None))
            if vip:
                self.source.put(SERVICES, {
                    "metadata": {"name": name, "namespace": "default"},
                    "spec": {"clusterIP": self.topo.vip(vip), "selector": {"app": name},
                             "ports": [{"name": "http", "port": 9080}]}})
        mesh = MeshConfig()
        ca = mesh_ca.MeshCA.load_or_create(self.workdir / "ca", mesh.trust_domain)
        self.control = MeshControl(self.source, ca, mesh)
        await self.control.start()
        self.server = XdsServer(self.control)
        await self.server.start(self.socket)
        state = await self.source.snapshot()
        for name, (short, vip) in PODS_.items():
            if vip:
                await harness.start_app(self.procs, self.topo, short, 9080, name)
            identity = model.proxy_identity(state.get(PODS, "default", name), state)
            await harness.start_sidecar(self.procs, self.topo, short, identity, self.socket)
        for name in PODS_:
            await harness.wait_for(lambda n=name: self.ready(n), timeout=30)

    async def ready(self, name: str) -> bool:
        code, body = await harness.curl(self.topo, PODS_[name][0],
                                        "http://127.0.0.1:15021/healthz/ready", 2)
        return code == 0 and "LIVE" in body

    async def close(self) -> None:
        await self.procs.close()
        if self.server:
            await self.server.stop(0)
        if self.control:
            await self.control.stop()
        await self.topo.close()
        harness.remove_workdir(self.workdir)

    async def request(self, service: str) -> tuple[int, dict[str, str]]:
        """(HTTP status, response headers) of GET http://SERVICE:9080/ from ratings."""
        vip = self.topo.vip(PODS_[service][1])
        code, out = await harness.run(
            "ip", "netns", "exec", self.netns("ratings"), "curl", "-sS", "--max-time", "5",
            "-o", "/dev/null", "-D", "-", "-H", f"Host: {service}:9080",
            f"http://{vip}:9080/productpage", check=False)
        assert code == 0, f"curl to {service}: exit {code}: {out}"
        lines = out.strip().splitlines()
        headers = dict(line.split(":", 1) for line in lines[1:] if ":" in line)
        return int(lines[0].split()[1]), {k.strip().lower(): v.strip() for k, v in headers.items()}

    async def pushed_and_acked(self, name: str, type_: str, before: str | None) -> str:
        """Wait until `name` acked a `type_` version other than `before`; that version."""
        async def acked():
            s = self.status(name)
            version = s.acked.get(type_)
            return version if version and version != before and version == s.sent.get(type_) \
                else None
        return await harness.wait_for(acked, timeout=15)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def env():
    mesh_env = Env()
    try:
        await mesh_env.setup()
        yield mesh_env
    finally:
        await mesh_env.close()


async def drained() -> None:
    # connections the client's sidecar opened before the update end with the old filter
    # chain's drain (1 s in the harness); new ones see the new listener
    await asyncio.sleep(2)


@on_module_loop
async def test_istio_local_rate_limit_answers_429_beyond_the_bucket(env: Env):
    for _ in range(6):  # no limit before the EnvoyFilter
        assert (await env.request("productpage"))[0] == 200
    lds = env.status("productpage").acked["LDS"]
    reviews_before = env.status("reviews").acked
    env.source.put(ENVOY_FILTERS, yaml.safe_load(ISTIO_LOCAL_RATE_LIMIT))
    try:
        await env.pushed_and_acked("productpage", "LDS", lds)
        await drained()
        answers = [await env.request("productpage") for _ in range(6)]
        codes = [code for code, _ in answers]
        assert codes == [200, 200, 200, 200, 429, 429], codes  # max_tokens: 4 a minute
        assert answers[4][1].get("x-local-rate-limit") == "true"
        assert "x-local-rate-limit" not in answers[0][1]
        stats = await harness.stats(env.topo, "p")
        assert stats["http_local_rate_limiter.http_local_rate_limit.rate_limited"] >= 2
        # reviews is not selected: it was pushed nothing and is never limited
        assert env.status("reviews").acked == reviews_before
        assert [(await env.request("reviews"))[0] for _ in range(6)] == [200] * 6
    finally:
        env.source.delete(ENVOY_FILTERS, "istio-system", "filter-local-ratelimit-svc")
    await env.pushed_and_acked("productpage", "LDS", env.status("productpage").acked["LDS"])
    await drained()
    assert [(await env.request("productpage"))[0] for _ in range(6)] == [200] * 6


@on_module_loop
async def test_a_patch_envoy_rejects_is_a_nack_and_the_proxy_keeps_its_config(env: Env):
    # valid protos, but Envoy refuses an HTTP filter after the terminal router filter
    bad = envoy_filter("after-router", {
        "name": "envoy.filters.http.local_ratelimit",
        "typed_config": {"@type": RATE_LIMIT_TYPE, "stat_prefix": "rl", "token_bucket": {
            "max_tokens": 1, "tokens_per_fill": 1, "fill_interval": "60s"}}},
        operation="INSERT_AFTER")
    sent_before = env.status("productpage").sent.get("LDS")
    reviews_before = env.status("reviews")
    env.source.put(ENVOY_FILTERS, bad)
    try:
        async def nacked():
            s = env.status("productpage")
            return s.last_nack if s.last_nack and s.sent.get("LDS") != sent_before else None
        nack = await harness.wait_for(nacked, timeout=15)
        assert nack.type == "LDS"
        assert "must be the last filter" in nack.message
        status = env.status("productpage")
        assert status.acked["LDS"] != status.sent["LDS"]
        # `shoal mesh status` shows it, with Envoy's message
        row = next(r for r in report.status_rows(env.server.status())
                   if r["proxy"] == "productpage.default")
        assert row["LDS"] == "NACKED" and row["last_nack"].startswith("LDS: ")
        findings = "\n".join(report.check_findings(await env.source.snapshot(),
                                                   env.server.status()))
        assert "proxy default/productpage: LDS version" in findings
        assert "must be the last filter" in findings
        # the NACKing sidecar keeps serving with its last good listener (no limiter)
        await drained()
        assert [(await env.request("productpage"))[0] for _ in range(6)] == [200] * 6
        # the others were pushed nothing and stay in sync
        reviews = env.status("reviews")
        assert reviews.acked == reviews_before.acked and reviews.last_nack is None
        assert env.status("ratings").synced
        assert (await env.request("reviews"))[0] == 200
    finally:
        env.source.delete(ENVOY_FILTERS, "default", "after-router")

    async def recovered():
        return env.status("productpage").synced
    await harness.wait_for(recovered, timeout=15)


@on_module_loop
async def test_a_patch_that_cannot_apply_is_skipped_for_that_proxy_and_shown(env: Env):
    unparsable = envoy_filter("bad-field", {
        "name": "envoy.filters.http.local_ratelimit",
        "typed_config": {"@type": RATE_LIMIT_TYPE, "stat_prefix": "rl",
                         "token_bukket": {"max_tokens": 1}}})
    lds = env.status("productpage").acked["LDS"]
    env.source.put(ENVOY_FILTERS, unparsable)
    try:
        async def shown():
            return env.status("productpage").problems
        problems = await harness.wait_for(shown, timeout=10)
        assert "EnvoyFilter default/bad-field spec.configPatches[0].patch.value" in problems[0]
        assert "token_bukket" in problems[0]
        row = next(r for r in report.status_rows(env.server.status())
                   if r["proxy"] == "productpage.default")
        assert row["skipped"].startswith("EnvoyFilter default/bad-field")
        findings = report.check_findings(await env.source.snapshot(), env.server.status())
        assert f"proxy default/productpage: {problems[0]}" in findings
        # nothing was pushed (the filter is skipped), so nothing was NACKed; still served
        status = env.status("productpage")
        assert status.synced and status.acked["LDS"] == lds
        assert (await env.request("productpage"))[0] == 200
        assert env.status("reviews").problems == ()
    finally:
        env.source.delete(ENVOY_FILTERS, "default", "bad-field")

    async def cleared():
        return env.status("productpage").problems == ()
    await harness.wait_for(cleared, timeout=10)


# -- through the daemon ----------------------------------------------------------------

BOOKINFO = """
apiVersion: v1
kind: Namespace
metadata: {name: istio-system}
---
apiVersion: v1
kind: Namespace
metadata: {name: bookinfo, labels: {istio-injection: enabled}}
---
apiVersion: v1
kind: Pod
metadata: {name: productpage, namespace: bookinfo, labels: {app: productpage}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: productpage
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [sh, -c, "mkdir -p /www && echo ok > /www/productpage &&
                       exec httpd -f -p 9080 -h /www"]
    ports: [{containerPort: 9080, name: http}]
    readinessProbe: {httpGet: {path: /productpage, port: 9080}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: productpage, namespace: bookinfo}
spec:
  selector: {app: productpage}
  ports: [{name: http, port: 9080}]
---
apiVersion: v1
kind: Pod
metadata: {name: ratings, namespace: bookinfo, labels: {app: ratings}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: ratings, image: busybox, imagePullPolicy: IfNotPresent, command: [sleep, "3600"]}
"""

# the doc's check: `for i in {1..5}; do curl ... productpage:9080/productpage; sleep 1; done`
# (busybox wget -S prints the status line of a 429 but not its headers)
FIVE_CALLS = ("for i in 1 2 3 4 5; do wget -S -O /dev/null http://productpage:9080/productpage "
              "2>&1 | grep -E '^ *HTTP/'; sleep 1; done")


def daemon_netns(shoal: ShoalInstance, ns: str, pod: str) -> str:
    for record in (shoal.state_dir / "network" / "sandboxes").glob("*.json"):
        sandbox = json.loads(record.read_text())
        if sandbox["pod_key"] == f"{ns}/{pod}":
            return sandbox["netns_name"]
    raise AssertionError(f"no sandbox for {ns}/{pod}")


def test_kubectl_apply_of_istios_local_rate_limit_on_a_daemon_meshed_pod(tmp_path_factory):
    shoal = ShoalInstance(tmp_path_factory.mktemp("envoyfilter-daemon"))
    shoal.shoal("image", "bootstrap", "busybox", "--busybox")
    shoal.start()
    try:
        shoal.kubectl("apply", "-f", "-", input=BOOKINFO)

        def ready() -> bool:
            items = get_json(shoal, "pods", "-n", "bookinfo")["items"]
            return len(items) == 2 and all(
                c.get("ready") for p in items for c in p["status"].get("containerStatuses") or [{}])
        wait_for(ready, 120, what="bookinfo pods ready")

        def calls() -> list[str]:
            out = shoal.shoal("exec", "-n", "bookinfo", "ratings", "-c", "ratings", "--",
                              "sh", "-c", FIVE_CALLS, check=False, timeout=60).stdout
            return [line.strip() for line in out.splitlines()]
        before = calls()
        assert [line.split()[1] for line in before] == ["200"] * 5, before

        applied = shoal.kubectl("apply", "-f", "-", input=ISTIO_LOCAL_RATE_LIMIT)
        assert ("envoyfilter.networking.istio.io/filter-local-ratelimit-svc created"
                in applied.stdout)
        listed = shoal.kubectl("get", "envoyfilters", "-n", "istio-system").stdout
        assert "filter-local-ratelimit-svc" in listed

        netns = daemon_netns(shoal, "bookinfo", "productpage")

        def patched() -> bool:
            dump = asyncio.run(proxyconfig.admin_get(netns, "/config_dump"))
            return "envoy.filters.http.local_ratelimit" in dump
        wait_for(patched, 30, what="the rate limit filter in productpage's sidecar")
        time.sleep(6)  # the old filter chain drains (5 s): pooled connections are gone
        lines = calls()
        codes = [line.split()[1] for line in lines]
        assert codes == ["200", "200", "200", "200", "429"], lines  # the doc's output
        status = shoal.shoal("mesh", "status").stdout
        assert "productpage.bookinfo" in status and "NACKED" not in status, status
    finally:
        shoal.stop()
