"""AuthorizationPolicy and RequestAuthentication end to end: real Envoy sidecars in real
network namespaces, the mesh control plane in-process (no daemon), Istio's docs YAML.

Topology (one per module): pods `sleep` (SA sleep) and `other` (SA other) in namespace
`foo`, both with sidecars, calling `httpbin` (SA httpbin, namespace foo, sidecar) through
Service `httpbin` (HTTP, port 8000 -> 8080) and Service `tcp-echo` (opaque TCP, port
9000 -> 9000: the same kind of test app, spoken to over a TCP proxy). Pod `keys` (no
sidecar) serves a JWKS over HTTP; the control plane, which runs in the root netns,
reaches it through a veth into the topology's bridge (the route covers only the
topology's /24, so nothing leaves the machine). Tokens are minted with PyJWT.
"""

from __future__ import annotations

import json
import logging
import sys
import time

import jwt as pyjwt
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric import rsa

from shoal.mesh import ca as mesh_ca
from shoal.mesh.control import MeshControl
from shoal.mesh.meshconfig import MeshConfig
from shoal.mesh.server import XdsServer
from shoal.mesh.source import (
    AUTHORIZATION_POLICIES, NAMESPACES, PODS, REQUEST_AUTHENTICATIONS, SERVICES, InMemorySource,
)
from shoal.mesh.translate import model
from tests.mesh import harness

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

STATUS = {"sidecar.istio.io/status": json.dumps({"containers": ["istio-proxy"]})}
ISSUER = "testing@secure.istio.io"
DENIED = "RBAC: access denied"
NETNS = {"sleep": "sl", "other": "ot", "httpbin": "hb", "keys": "ks"}
"""Pod -> topology name (interface names are limited to 15 characters)."""


def pod(name: str, ip: str, sa: str, labels: dict, ports=(), sidecar=True) -> dict:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "foo", "labels": labels,
                     "annotations": dict(STATUS) if sidecar else {}},
        "spec": {"serviceAccountName": sa, "containers": [{
            "name": "app", "image": "app",
            "ports": [{"containerPort": p, "name": n} for n, p in ports]}]},
        "status": {"phase": "Running", "podIP": ip,
                   "conditions": [{"type": "Ready", "status": "True"}]},
    }


def policy(kind: str, name: str, spec: dict, namespace: str = "foo") -> dict:
    return {"apiVersion": "security.istio.io/v1", "kind": kind,
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


class Keys:
    """An RSA signing key and its public JWKS."""

    def __init__(self, kid: str) -> None:
        self.kid = kid
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(pyjwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key()))
        self.jwks = json.dumps({"keys": [{**jwk, "kid": kid, "alg": "RS256", "use": "sig"}]})

    def token(self, issuer: str = ISSUER, expires_in: float = 3600, **claims) -> str:
        now = int(time.time())
        payload = {"iss": issuer, "sub": issuer, "iat": now, "exp": now + int(expires_in),
                   **claims}
        return pyjwt.encode(payload, self.private, algorithm="RS256", headers={"kid": self.kid})


def tampered(token: str) -> str:
    """The token with its payload changed (signature left as it was)."""
    header, payload, signature = token.split(".")
    claims = json.loads(pyjwt.utils.base64url_decode(payload))
    claims["sub"] = "someone-else"
    forged = pyjwt.utils.base64url_encode(json.dumps(claims).encode()).decode()
    return f"{header}.{forged}.{signature}"


class Topology(harness.Topology):
    """The harness topology, addressed by pod name."""

    def netns(self, pod: str) -> str:
        return super().netns(NETNS.get(pod, pod))

    def ip(self, pod: str) -> str:
        return super().ip(NETNS.get(pod, pod))


class AuthzEnv:
    def __init__(self) -> None:
        self.workdir = harness.make_workdir()
        self.topo = Topology()
        self.procs = harness.Processes(self.workdir)
        self.socket = self.workdir / "xds.sock"
        self.source = InMemorySource()
        self.control: MeshControl | None = None
        self.server: XdsServer | None = None
        self.host_if = f"smr{self.topo.tag}"
        self.keys_dir = self.workdir / "keys"
        self.keys_server = None

    async def setup(self) -> None:
        topo, put = self.topo, self.source.put
        await topo.create(list(NETNS.values()))
        await self._host_link()
        put(NAMESPACES, {"metadata": {"name": "foo", "labels": {"istio-injection": "enabled"}}})
        put(PODS, pod("sleep", topo.ip("sleep"), "sleep", {"app": "sleep"}))
        put(PODS, pod("other", topo.ip("other"), "other", {"app": "other"}))
        put(PODS, pod("httpbin", topo.ip("httpbin"), "httpbin", {"app": "httpbin"},
                      ports=[("http", 8080), ("tcp", 9000)]))
        put(PODS, pod("keys", topo.ip("keys"), "keys", {"app": "keys"}, sidecar=False))
        for name, host, port, target, port_name, app in (
                ("httpbin", 10, 8000, 8080, "http", "httpbin"),
                ("tcp-echo", 11, 9000, 9000, "tcp", "httpbin")):
            put(SERVICES, {"metadata": {"name": name, "namespace": "foo"},
                           "spec": {"clusterIP": topo.vip(host), "selector": {"app": app},
                                    "ports": [{"name": port_name, "port": port,
                                               "targetPort": target}]}})
        mesh = MeshConfig()
        ca = mesh_ca.MeshCA.load_or_create(self.workdir / "ca", mesh.trust_domain)
        self.control = MeshControl(self.source, ca, mesh)
        self.control.jwks.refresh_seconds = 1.0  # rotation shows within the test
        self.control.jwks.retry_seconds = 0.5
        self.control.jwks.timeout_seconds = 1.0
        await self.control.start()
        self.server = XdsServer(self.control)
        await self.server.start(self.socket)
        await harness.start_app(self.procs, topo, "httpbin", 8080, "httpbin")
        await self.procs.start("app-tcp", "ip", "netns", "exec", topo.netns("httpbin"),
                               sys.executable, str(harness.HERE / "echo_server.py"), "9000",
                               "tcp-echo")
        self.keys_dir.mkdir()
        self.keys_dir.chmod(0o755)
        await self.start_keys_server()
        state = await self.source.snapshot()
        for name in ("sleep", "other", "httpbin"):
            identity = model.proxy_identity(state.get(PODS, "foo", name), state)
            await harness.start_sidecar(self.procs, topo, name, identity, self.socket)
        for name in ("sleep", "other", "httpbin"):
            await harness.wait_for(lambda n=name: self.ready(n), timeout=30)
        await harness.wait_for(lambda: self.status_is("sleep", "/headers", 200), timeout=15)

    async def _host_link(self) -> None:
        """A veth from the root netns into the bridge, with the topology's /24 only."""
        peer = f"smq{self.topo.tag}"
        await harness.run("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", peer)
        await harness.run("ip", "link", "set", peer, "netns", self.topo.hub)
        hub = ("ip", "netns", "exec", self.topo.hub)
        await harness.run(*hub, "ip", "link", "set", peer, "master", self.topo.bridge, "up")
        await harness.run("ip", "addr", "add", f"10.211.{self.topo.subnet}.254/24",
                          "dev", self.host_if)
        await harness.run("ip", "link", "set", self.host_if, "up")
        _, route = await harness.run("ip", "route", "get", self.topo.ip("keys"))
        assert f"dev {self.host_if}" in route, route  # never via the default route

    async def start_keys_server(self) -> None:
        self.keys_server = await self.procs.start(
            "keys", "ip", "netns", "exec", self.topo.netns("keys"), sys.executable, "-m",
            "http.server", "8080", "--bind", "0.0.0.0", "--directory", str(self.keys_dir))

    async def stop_keys_server(self) -> None:
        await self.procs.stop(self.keys_server)

    async def ready(self, name: str) -> bool:
        code, body = await harness.curl(self.topo, name, "http://127.0.0.1:15021/healthz/ready", 2)
        return code == 0 and "LIVE" in body

    async def close(self) -> None:
        await self.procs.close()
        if self.server:
            await self.server.stop(0)
        if self.control:
            await self.control.stop()
        await harness.run("ip", "link", "del", self.host_if, check=False)
        await self.topo.close()
        harness.remove_workdir(self.workdir)

    def url(self, path: str) -> str:
        return f"http://{self.topo.vip(10)}:8000{path}"

    async def request(self, pod_name: str, path: str, method: str = "GET",
                      headers: tuple[str, ...] = ()) -> tuple[int, str]:
        """(HTTP status, body) of one request from the pod through its sidecar."""
        args = [a for h in headers for a in ("-H", h)]
        code, out = await harness.run(
            "ip", "netns", "exec", self.topo.netns(pod_name), "curl", "-sS", "--max-time", "5",
            "-X", method, *args, "-w", "\n%{http_code}", self.url(path), check=False)
        assert code == 0, f"curl {method} {path} from {pod_name}: exit {code}: {out}"
        body, _, status = out.rpartition("\n")
        return int(status), body

    async def tcp_ok(self, pod_name: str) -> bool:
        """Does a connection to tcp-echo:9000 carry a request and its answer?"""
        code, out = await harness.run(
            "ip", "netns", "exec", self.topo.netns(pod_name), "curl", "-sS", "--max-time", "3",
            f"http://{self.topo.vip(11)}:9000/", check=False)
        return code == 0 and "tcp-echo" in out

    async def status_is(self, pod_name: str, path: str, want: int, *headers: str) -> bool:
        status, _ = await self.request(pod_name, path, headers=headers)
        return status == want

    def _listeners_version(self) -> str:
        for status in self.server.status():
            if status.pod == "httpbin":
                return status.sent.get("LDS", "")
        return ""

    async def settled(self, before: str) -> None:
        """Wait until httpbin's sidecar ACKed a listener version other than `before` and
        has no filter chains draining: connections opened under the old config (pooled
        sidecar-to-sidecar connections) are gone, so every request meets the new one."""
        async def acked() -> bool:
            return any(s.pod == "httpbin" and s.sent.get("LDS", before) != before and s.synced
                       for s in self.server.status())
        await harness.wait_for(acked, timeout=10)
        await self.drained()

    async def drained(self) -> None:
        async def none_draining() -> bool:
            stats = await harness.stats(self.topo, "httpbin")
            return stats.get("listener_manager.total_filter_chains_draining", 0) == 0
        await harness.wait_for(none_draining, timeout=10)

    async def apply(self, kind: str, obj: dict) -> None:
        before = self._listeners_version()
        self.source.put(kind, obj)
        await self.settled(before)

    async def remove(self, kind: str, name: str, namespace: str = "foo") -> None:
        if (await self.source.snapshot()).get(kind, namespace, name) is None:
            return
        before = self._listeners_version()
        self.source.delete(kind, namespace, name)
        await self.settled(before)

    def nacks(self) -> list[str]:
        return [s.last_nack for s in self.server.status() if s.last_nack]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def env():
    authz_env = AuthzEnv()
    try:
        await authz_env.setup()
        yield authz_env
    finally:
        await authz_env.close()


async def eventually(check, timeout: float = 10) -> None:
    await harness.wait_for(check, timeout=timeout, interval=0.1)


ALLOW_NOTHING = policy("AuthorizationPolicy", "allow-nothing", {})
GET_HEADERS = policy("AuthorizationPolicy", "get-headers", {  # Istio's "HTTP traffic" task
    "selector": {"matchLabels": {"app": "httpbin"}},
    "action": "ALLOW",
    "rules": [{"from": [{"source": {"principals": ["cluster.local/ns/foo/sa/sleep"]}}],
               "to": [{"operation": {"methods": ["GET"], "paths": ["/headers"]}}]}],
})


async def test_allow_nothing_denies_every_request_and_connection(env: AuthzEnv):
    await env.apply(AUTHORIZATION_POLICIES, ALLOW_NOTHING)
    await eventually(lambda: env.status_is("sleep", "/headers", 403))
    status, body = await env.request("sleep", "/headers")
    assert (status, body) == (403, DENIED)
    assert (await env.request("other", "/ip"))[0] == 403
    await eventually(lambda: _not(env.tcp_ok("sleep")))
    await env.remove(AUTHORIZATION_POLICIES, "allow-nothing")
    await eventually(lambda: env.status_is("sleep", "/headers", 200))
    await eventually(lambda: env.tcp_ok("sleep"))
    assert not env.nacks()


async def _not(awaitable) -> bool:
    return not await awaitable


async def test_allow_get_headers_for_one_service_account(env: AuthzEnv):
    await env.apply(AUTHORIZATION_POLICIES, GET_HEADERS)
    try:
        await eventually(lambda: env.status_is("other", "/headers", 403))
        status, body = await env.request("sleep", "/headers")
        assert status == 200 and json.loads(body)["server"] == "httpbin"
        assert await env.request("sleep", "/headers", "POST") == (403, DENIED)
        assert (await env.request("sleep", "/ip"))[0] == 403
        assert await env.request("other", "/headers") == (403, DENIED)
        # the ALLOW policy names no TCP port: connections to the TCP service are refused
        assert not await env.tcp_ok("sleep")
    finally:
        await env.remove(AUTHORIZATION_POLICIES, "get-headers")
    await eventually(lambda: env.status_is("other", "/headers", 200))


async def test_deny_on_a_header_wins_over_allow(env: AuthzEnv):
    # Istio's "explicit deny" task: deny GET unless x-token: admin, next to the ALLOW
    await env.apply(AUTHORIZATION_POLICIES, GET_HEADERS)
    await env.apply(AUTHORIZATION_POLICIES, policy("AuthorizationPolicy", "deny-method-get", {
        "selector": {"matchLabels": {"app": "httpbin"}},
        "action": "DENY",
        "rules": [{"to": [{"operation": {"methods": ["GET"]}}],
                   "when": [{"key": "request.headers[x-token]", "notValues": ["admin"]}]}],
    }))
    try:
        await eventually(lambda: env.status_is("sleep", "/headers", 403, "x-token: guest"))
        assert await env.request("sleep", "/headers") == (403, DENIED)
        assert (await env.request("sleep", "/headers", headers=("x-token: admin",)))[0] == 200
        # the DENY passes it, but no ALLOW rule matches another service account
        assert (await env.request("other", "/headers", headers=("x-token: admin",)))[0] == 403
    finally:
        await env.remove(AUTHORIZATION_POLICIES, "deny-method-get")
        await env.remove(AUTHORIZATION_POLICIES, "get-headers")
    await eventually(lambda: env.status_is("other", "/headers", 200))


async def test_tcp_policy_closes_unauthorised_connections(env: AuthzEnv):
    # Istio's "TCP traffic" task, with a principal: only sleep may open port 9000
    tcp_allow = policy("AuthorizationPolicy", "tcp-policy", {
        "selector": {"matchLabels": {"app": "httpbin"}},
        "action": "ALLOW",
        "rules": [{"from": [{"source": {"principals": ["cluster.local/ns/foo/sa/sleep"]}}],
                   "to": [{"operation": {"ports": ["9000"]}}]}],
    })
    await env.apply(AUTHORIZATION_POLICIES, tcp_allow)
    try:
        await eventually(lambda: _not(env.tcp_ok("other")))
        assert await env.tcp_ok("sleep")
        # HTTP to port 8080 is not among the allowed ports
        assert (await env.request("sleep", "/headers"))[0] == 403

        # An ALLOW rule with an HTTP-only field cannot be evaluated on TCP: Istio drops
        # it, so nothing is allowed there any more (the docs' "methods" example)
        await env.apply(AUTHORIZATION_POLICIES, policy("AuthorizationPolicy", "tcp-policy", {
            **tcp_allow["spec"], "rules": [{**tcp_allow["spec"]["rules"][0],
                                             "to": [{"operation": {"methods": ["GET"],
                                                                   "ports": ["9000"]}}]}]}))
        await eventually(lambda: _not(env.tcp_ok("sleep")))
        await env.remove(AUTHORIZATION_POLICIES, "tcp-policy")
        await eventually(lambda: env.tcp_ok("other"))

        # A DENY rule with an HTTP-only field on TCP: the field is dropped, so the rule
        # denies every connection to port 9000; on the HTTP port it needs POST and port
        # 9000, so a GET to 8080 passes
        await env.apply(AUTHORIZATION_POLICIES, policy("AuthorizationPolicy", "deny-post", {
            "action": "DENY",
            "rules": [{"to": [{"operation": {"methods": ["POST"], "ports": ["9000"]}}]}]}))
        await eventually(lambda: _not(env.tcp_ok("sleep")))
        assert (await env.request("sleep", "/headers"))[0] == 200
    finally:
        await env.remove(AUTHORIZATION_POLICIES, "tcp-policy")
        await env.remove(AUTHORIZATION_POLICIES, "deny-post")
    await eventually(lambda: env.tcp_ok("sleep"))


def _jwt_policy(jwks_uri: str, **rule) -> dict:
    return policy("RequestAuthentication", "jwt-example", {  # Istio's JWT task
        "selector": {"matchLabels": {"app": "httpbin"}},
        "jwtRules": [{"issuer": ISSUER, "jwksUri": jwks_uri, **rule}]})


async def test_jwt_from_a_jwks_uri_the_control_plane_fetches(env: AuthzEnv, caplog):
    caplog.set_level(logging.DEBUG)
    keys = Keys("k1")
    (env.keys_dir / "jwks.json").write_text(keys.jwks)
    (env.keys_dir / "jwks.json").chmod(0o644)
    uri = f"http://{env.topo.ip('keys')}:8080/jwks.json"
    await env.apply(REQUEST_AUTHENTICATIONS, _jwt_policy(uri, outputClaimToHeaders=[
        {"header": "x-jwt-sub", "claim": "sub"}]))
    token = keys.token(groups=["group1", "group2"])
    bearer = f"Authorization: Bearer {token}"
    forged = f"Authorization: Bearer {tampered(token)}"
    # in force since apply(); 200 once the control plane has fetched the keys
    await eventually(lambda: env.status_is("sleep", "/headers", 200, bearer))
    await env.drained()
    assert (await env.request("sleep", "/headers", headers=(forged,)))[0] == 401
    status, body = await env.request("sleep", "/headers", headers=(bearer,))
    assert status == 200, body
    seen = json.loads(body)["headers"]
    assert "authorization" not in seen  # forwardOriginalToken defaults to false
    assert seen["x-jwt-sub"] == ISSUER

    assert (await env.request("sleep", "/headers", headers=(
        f"Authorization: Bearer {keys.token(expires_in=-3600)}",)))[0] == 401
    assert (await env.request("sleep", "/headers", headers=(
        f"Authorization: Bearer {Keys('k9').token()}",)))[0] == 401  # unknown key
    assert (await env.request("sleep", "/headers"))[0] == 200  # no token: passes

    # requestPrincipals: a token becomes required (403 without); claims in `when`
    await env.apply(AUTHORIZATION_POLICIES, policy("AuthorizationPolicy", "require-jwt", {
        "selector": {"matchLabels": {"app": "httpbin"}},
        "action": "ALLOW",
        "rules": [{"from": [{"source": {"requestPrincipals": [f"{ISSUER}/{ISSUER}"]}}],
                   "when": [{"key": "request.auth.claims[groups]", "values": ["group1"]}]}]}))
    try:
        await eventually(lambda: env.status_is("sleep", "/headers", 403))
        assert (await env.request("sleep", "/headers", headers=(bearer,)))[0] == 200
        other_group = f"Authorization: Bearer {keys.token(groups=['group2'])}"
        assert await env.request("sleep", "/headers", headers=(other_group,)) == (403, DENIED)

        # the key is rotated at the URI: the control plane's refresh picks it up
        new_keys = Keys("k2")
        (env.keys_dir / "jwks.json").write_text(new_keys.jwks)
        new_bearer = f"Authorization: Bearer {new_keys.token(groups=['group1'])}"
        await eventually(lambda: env.status_is("sleep", "/headers", 200, new_bearer), 15)
        await env.drained()
        assert (await env.request("sleep", "/headers", headers=(bearer,)))[0] == 401

        # the key server goes away: the last keys fetched stay in force
        await env.stop_keys_server()
        await eventually(lambda: _has_problem(env, "serving the last keys fetched"))
        assert (await env.request("sleep", "/headers", headers=(new_bearer,)))[0] == 200
    finally:
        await env.start_keys_server()
        await env.remove(AUTHORIZATION_POLICIES, "require-jwt")
        await env.remove(REQUEST_AUTHENTICATIONS, "jwt-example")
    await eventually(lambda: env.status_is("sleep", "/headers", 200, bearer))
    for record in caplog.records:  # nothing logged a token or a key
        text = record.getMessage()
        assert token not in text and keys.jwks not in text and new_keys.jwks not in text
        assert json.loads(keys.jwks)["keys"][0]["n"] not in text


async def _has_problem(env: AuthzEnv, text: str) -> bool:
    record = env.control.proxies.get(model.node_id(env.topo.ip("httpbin"), "httpbin", "foo"))
    return bool(record) and any(text in p for p in record.problems)


async def test_unreachable_jwks_uri_fails_closed(env: AuthzEnv):
    keys = Keys("k3")
    # an address inside the topology's subnet that nobody has
    uri = f"http://10.211.{env.topo.subnet}.250:8080/jwks.json"
    await env.apply(REQUEST_AUTHENTICATIONS, _jwt_policy(uri))
    try:
        bearer = f"Authorization: Bearer {keys.token()}"
        await eventually(lambda: env.status_is("sleep", "/headers", 401, bearer))
        await eventually(lambda: _has_problem(env, "tokens are refused (401)"))
        assert (await env.request("sleep", "/headers"))[0] == 200  # no token: passes
    finally:
        await env.remove(REQUEST_AUTHENTICATIONS, "jwt-example")
    await eventually(lambda: env.status_is("sleep", "/headers", 200, f"Authorization: Bearer {keys.token()}"))


async def test_inline_jwks_with_a_custom_header_and_a_root_namespace_policy(env: AuthzEnv):
    keys = Keys("k4")
    await env.apply(REQUEST_AUTHENTICATIONS, policy("RequestAuthentication", "inline", {
        "jwtRules": [{"issuer": ISSUER, "jwks": keys.jwks,
                      "fromHeaders": [{"name": "x-jwt-assertion"}],
                      "forwardOriginalToken": True,
                      "outputPayloadToHeader": "x-jwt-payload"}]}))
    # mesh-wide (root namespace) DENY of requests without a request principal
    await env.apply(AUTHORIZATION_POLICIES, policy("AuthorizationPolicy", "require-token", {
        "action": "DENY",
        "rules": [{"from": [{"source": {"notRequestPrincipals": ["*"]}}],
                   "to": [{"operation": {"paths": ["/secure*"]}}]}]}, namespace="istio-system"))
    try:
        header = f"x-jwt-assertion: {keys.token()}"
        await eventually(lambda: env.status_is("sleep", "/secure/x", 403))
        status, body = await env.request("sleep", "/secure/x", headers=(header,))
        assert status == 200
        seen = json.loads(body)["headers"]
        assert seen["x-jwt-assertion"] == header.split(": ", 1)[1]  # forwarded
        assert "x-jwt-payload" in seen
        assert (await env.request("sleep", "/open"))[0] == 200
        assert (await env.request("sleep", "/secure/x", headers=(
            f"x-jwt-assertion: {tampered(keys.token())}",)))[0] == 401
    finally:
        await env.remove(AUTHORIZATION_POLICIES, "require-token", "istio-system")
        await env.remove(REQUEST_AUTHENTICATIONS, "inline")
    await eventually(lambda: env.status_is("sleep", "/secure/x", 200))
    assert not env.nacks()
