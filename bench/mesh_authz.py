"""Cost of AuthorizationPolicy and RequestAuthentication on the request path.

    .venv/bin/python bench/mesh_authz.py [--seconds 15] [--rate 500] [--rounds 5] [--json]

Three sidecar pairs with mTLS, side by side in private netns, each in its own namespace
(bench/mesh.py's server, client and helpers): `none` (a -> b, no policy), `rbac`
(c -> d under one ALLOW AuthorizationPolicy of 50 rules, the matching one last, so
Envoy evaluates all 50), `jwt` (e -> f under a RequestAuthentication with inline keys
and an ALLOW requiring the token's request principal; every request carries an RS256
token). Slices interleave (none, rbac, jwt, none, ...) so background load hits all
alike. Reports each path's p50/p90/p99, the added latency and the ratio against `none`
measured in the same run, and the server sidecar's CPU per request (the JWT
validation cost per request is f's minus b's).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import jwt as pyjwt
from cryptography.hazmat.primitives.asymmetric import rsa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.mesh import (  # noqa: E402
    CLIENT, SERVER, host_steal, pod, proc_cpu_seconds, steal_pct, summarize,
)
from shoal.mesh.ca import MeshCA  # noqa: E402
from shoal.mesh.control import MeshControl  # noqa: E402
from shoal.mesh.meshconfig import MeshConfig  # noqa: E402
from shoal.mesh.server import XdsServer  # noqa: E402
from shoal.mesh.source import (  # noqa: E402
    AUTHORIZATION_POLICIES, NAMESPACES, PODS, REQUEST_AUTHENTICATIONS, InMemorySource,
)
from shoal.mesh.translate import model  # noqa: E402
from tests.mesh import harness  # noqa: E402

PATHS = {"none": ("a", "b", 10), "rbac": ("c", "d", 11), "jwt": ("e", "f", 12)}
"""path (= namespace) -> (client pod, server pod, VIP host)."""
ISSUER = "bench@shoal.local"


def in_namespace(obj: dict, namespace: str) -> dict:
    obj["metadata"]["namespace"] = namespace
    return obj


def fifty_rules() -> dict:
    rules = [{"from": [{"source": {"principals": [f"cluster.local/ns/rbac/sa/nobody-{i}"]}}],
              "to": [{"operation": {"methods": ["GET"], "paths": [f"/p{i}/*"]}}]}
             for i in range(49)]
    rules.append({"from": [{"source": {"principals": ["cluster.local/ns/rbac/sa/client"]}}],
                  "to": [{"operation": {"methods": ["GET"], "paths": ["/*"]}}]})
    return {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
            "metadata": {"name": "fifty", "namespace": "rbac"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "rules": rules}}


def jwt_objects(jwks: str) -> list[tuple[str, dict]]:
    return [
        (REQUEST_AUTHENTICATIONS, {"metadata": {"name": "jwt", "namespace": "jwt"}, "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "jwtRules": [{"issuer": ISSUER, "jwks": jwks}]}}),
        (AUTHORIZATION_POLICIES, {"metadata": {"name": "require-jwt", "namespace": "jwt"}, "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "rules": [{"from": [{"source": {"requestPrincipals": [f"{ISSUER}/{ISSUER}"]}}]}]}}),
    ]


async def run(args) -> dict:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(pyjwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwks = json.dumps({"keys": [{**jwk, "kid": "bench", "alg": "RS256"}]})
    token = pyjwt.encode({"iss": ISSUER, "sub": ISSUER, "exp": int(time.time()) + 3600},
                         key, algorithm="RS256", headers={"kid": "bench"})
    workdir = harness.make_workdir()
    topo, procs = harness.Topology(), harness.Processes(workdir)
    (workdir / "server.py").write_text(SERVER)
    (workdir / "client.py").write_text(CLIENT)
    with_token = CLIENT.replace(r"Host: web\r\n\r\n", r"Host: web\r\nAuthorization: Bearer "
                                + token + r"\r\n\r\n")
    assert with_token != CLIENT
    (workdir / "client-jwt.py").write_text(with_token)
    control = server = None
    try:
        await topo.create([p for c, s, _ in PATHS.values() for p in (c, s)])
        objects = [(AUTHORIZATION_POLICIES, fifty_rules()), *jwt_objects(jwks)]
        for ns, (client, srv, host) in PATHS.items():
            objects += [
                (NAMESPACES, {"metadata": {"name": ns}}),
                (PODS, in_namespace(pod(client, topo.ip(client), {"app": "client"}, "client"), ns)),
                (PODS, in_namespace(pod(srv, topo.ip(srv), {"app": "web"}, "web"), ns)),
                ("services", {"metadata": {"name": "web", "namespace": ns},
                              "spec": {"clusterIP": topo.vip(host), "selector": {"app": "web"},
                                       "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}),
            ]
        source = InMemorySource(objects)
        control = MeshControl(source, MeshCA.load_or_create(workdir / "ca"), MeshConfig())
        await control.start()
        server = XdsServer(control)
        await server.start(workdir / "xds.sock")
        state = await source.snapshot()
        envoys = {}
        for ns, (client, srv, _) in PATHS.items():
            await procs.start(f"server-{srv}", "ip", "netns", "exec", topo.netns(srv),
                              sys.executable, str(workdir / "server.py"), "8080")
            for name in (client, srv):
                identity = model.proxy_identity(state.get(PODS, ns, name), state)
                envoys[name] = await harness.start_sidecar(procs, topo, name, identity,
                                                           workdir / "xds.sock")

        async def ready():
            codes = [await harness.curl(topo, n, "http://127.0.0.1:15021/healthz/ready", 2)
                     for n in envoys]
            return all(code == 0 and "LIVE" in body for code, body in codes)
        await harness.wait_for(ready, timeout=60)

        async def load(path: str, seconds: float) -> dict:
            client, _, host = PATHS[path]
            script = "client-jwt.py" if path == "jwt" else "client.py"
            before = host_steal()
            _, out = await harness.run("ip", "netns", "exec", topo.netns(client), sys.executable,
                                       str(workdir / script), topo.vip(host), "80",
                                       str(args.rate), str(seconds), timeout=seconds + 60)
            result = json.loads(out.strip().splitlines()[-1])
            result["steal_pct"] = steal_pct(before, host_steal())
            return result

        # a denied path would show as errors (403 bodies differ); check each answers 200
        for path, (client, _, host) in PATHS.items():
            header = ("-H", f"Authorization: Bearer {token}") if path == "jwt" else ()
            _, code = await harness.run("ip", "netns", "exec", topo.netns(client), "curl", "-s",
                                        "-o", "/dev/null", "-w", "%{http_code}", *header,
                                        f"http://{topo.vip(host)}/", check=False)
            assert code.strip() == "200", (path, code)
        _, code = await harness.run("ip", "netns", "exec", topo.netns("e"), "curl", "-s", "-o",
                                    "/dev/null", "-w", "%{http_code}", f"http://{topo.vip(12)}/",
                                    check=False)
        assert code.strip() == "403", code  # the jwt path does enforce the token
        for path in PATHS:
            await load(path, 2)  # warm-up
        slice_seconds = args.seconds / args.rounds
        runs: dict[str, list[dict]] = {p: [] for p in PATHS}
        cpu = {n: 0.0 for n in envoys}
        for _ in range(args.rounds):
            for path in PATHS:
                before = {n: proc_cpu_seconds(p.pid) for n, p in envoys.items()}
                runs[path].append(await load(path, slice_seconds))
                for n, p in envoys.items():
                    cpu[n] += proc_cpu_seconds(p.pid) - before[n]
        summary = {p: summarize(r) for p, r in runs.items()}
        requests = {p: sum(len(r["lat_us"]) + r["errors"] + 200 for r in runs[p]) for p in PATHS}
        server_cpu = {p: round(cpu[PATHS[p][1]] * 1e6 / max(1, requests[p]), 1) for p in PATHS}
        base = summary["none"]
        return {
            "generator": f"bench/mesh.py's open-loop asyncio client, {args.rate:.0f} req/s, 16 "
                         f"keep-alive connections, 1 KB responses, {args.seconds:.0f} s per path "
                         f"in {args.rounds} interleaved slices",
            **summary,
            "added_ms": {p: {q: round(summary[p][q] - base[q], 3) for q in ("p50", "p99")}
                         for p in ("rbac", "jwt")},
            "ratio_vs_none": {p: {q: round(summary[p][q] / base[q], 3) if base[q] else None
                                  for q in ("p50", "p99")} for p in ("rbac", "jwt")},
            "server_sidecar_cpu_us_per_request": server_cpu,
            "jwt_validation_us_per_request": round(server_cpu["jwt"] - server_cpu["none"], 1),
            "rbac_50_rules_us_per_request": round(server_cpu["rbac"] - server_cpu["none"], 1),
        }
    finally:
        await procs.close()
        if server:
            await server.stop(0)
        if control:
            await control.stop()
        await topo.close()
        harness.remove_workdir(workdir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print(result["generator"])
    for path in PATHS:
        r = result[path]
        print(f"{path:5}: p50 {r['p50']:.2f} ms  p90 {r['p90']:.2f}  p99 {r['p99']:.2f}"
              f"  ({r['requests']} requests, {r['errors']} errors, slice p99 {r['slice_p99']})")
    for path in ("rbac", "jwt"):
        print(f"{path} vs none: added {result['added_ms'][path]} ms, ratio {result['ratio_vs_none'][path]}")
    print(f"server sidecar CPU per request (us): {result['server_sidecar_cpu_us_per_request']}; "
          f"JWT validation {result['jwt_validation_us_per_request']} us, "
          f"50 RBAC rules {result['rbac_50_rules_us_per_request']} us")


if __name__ == "__main__":
    main()
