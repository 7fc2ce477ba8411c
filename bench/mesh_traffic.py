"""Traffic-management figures for bench/mesh.py: what VirtualServices and DestinationRules
cost, measured in the same run as the plain mesh path.

- `route_table(n_routes)`: a VirtualService for the bench's `web` service with
  `n_routes - 1` header-matched rules (none of which the load matches, so Envoy walks
  them all) and a final weighted default route to subset v1, plus a DestinationRule with
  subsets v1/v2 and a traffic policy. bench/mesh.py alternates mesh slices without and
  with it on the same two sidecars (the objects are put into and removed from the
  source between slices, and the slice starts once both proxies ACKed), so the
  difference is the route table and nothing else.
- `translation_time(n)`: a full recompute (`Outbound(state)` + `translate` for one
  proxy) for n Services each with a VirtualService and a DestinationRule, against the
  same n Services with none (the peer in the same run). Pure: no Envoy.
- `weight_change(source, i)`: the VirtualService edit the convergence figure times
  (a 90/10 -> 50/50 style weight shift on `web`).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shoal.mesh.meshconfig import MeshConfig
from shoal.mesh.source import (
    DESTINATION_RULES, PODS, SERVICES, VIRTUAL_SERVICES, ClusterState,
)
from shoal.mesh.translate import Outbound, translate
from shoal.mesh.translate import model


def virtual_service(host: str, n_routes: int, weights: tuple[int, int] = (100, 0),
                    name: str | None = None) -> dict:
    rules = [{"name": f"r{i}", "match": [{"headers": {"x-bench-route": {"exact": f"r{i}"}}}],
              "route": [{"destination": {"host": host, "subset": "v2"}}]}
             for i in range(max(0, n_routes - 1))]
    rules.append({"name": "default", "route": [
        {"destination": {"host": host, "subset": "v1"}, "weight": weights[0]},
        {"destination": {"host": host, "subset": "v2"}, "weight": weights[1]}]})
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": name or host, "namespace": "default",
                         "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"hosts": [host], "http": rules}}


def destination_rule(host: str, name: str | None = None) -> dict:
    return {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": {"name": name or host, "namespace": "default",
                         "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"host": host,
                     "trafficPolicy": {"loadBalancer": {"simple": "LEAST_REQUEST"},
                                       "connectionPool": {"http": {"http1MaxPendingRequests": 100000}}},
                     "subsets": [{"name": "v1", "labels": {"version": "v1"}},
                                 {"name": "v2", "labels": {"version": "v2"}}]}}


def route_table(n_routes: int, host: str = "web") -> list[tuple[str, dict]]:
    return [(VIRTUAL_SERVICES, virtual_service(host, n_routes)),
            (DESTINATION_RULES, destination_rule(host))]


def _service(i: int) -> dict:
    return {"metadata": {"name": f"svc{i}", "namespace": "default"},
            "spec": {"clusterIP": f"10.212.{i // 250}.{1 + i % 250}", "selector": {"app": f"svc{i}"},
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}


def _pod(i: int, version: str) -> dict:
    return {"metadata": {"name": f"svc{i}-{version}", "namespace": "default",
                         "labels": {"app": f"svc{i}", "version": version},
                         "annotations": {"sidecar.istio.io/status": "{}"}},
            "spec": {"serviceAccountName": "default", "containers": [{"name": "app", "ports": [
                {"containerPort": 8080, "name": "http"}]}]},
            "status": {"podIP": f"10.211.{(2 * i + (version == 'v2')) // 250}."
                               f"{2 + (2 * i + (version == 'v2')) % 250}",
                       "phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}


def _state(n: int, with_traffic: bool) -> ClusterState:
    objects: list[tuple[str, dict]] = []
    for i in range(n):
        objects += [(SERVICES, _service(i)), (PODS, _pod(i, "v1")), (PODS, _pod(i, "v2"))]
        if with_traffic:
            objects += [(VIRTUAL_SERVICES, virtual_service(f"svc{i}", 3, (90, 10))),
                        (DESTINATION_RULES, destination_rule(f"svc{i}"))]
    return ClusterState.of(objects)


def _translate_once(n: int, traffic: bool) -> dict:
    mesh = MeshConfig()
    state = _state(n, traffic)
    proxy = model.proxy_identity(state.get(PODS, "default", "svc0-v1"), state)
    start = time.perf_counter()
    resources = translate(state, proxy, mesh, Outbound(state, mesh))
    seconds = time.perf_counter() - start
    return {"seconds": seconds,
            "routes": sum(len(vh.routes) for rc in resources.routes for vh in rc.virtual_hosts),
            "clusters": len(resources.clusters),
            "bytes": sum(m.ByteSize() for m in resources.routes + resources.clusters)}


def translation_time(n: int, repeats: int = 3) -> dict:
    """A full recompute with and without n VirtualServices + DestinationRules, each run
    in a fresh interpreter (translation memoizes parsed messages across states, which
    would make every run after the first a warm one)."""
    result: dict = {"services": n}
    for label in ("without", "with"):
        runs = []
        for _ in range(repeats):
            out = subprocess.run([sys.executable, __file__, str(n), label], check=True,
                                 capture_output=True, text=True, timeout=600).stdout
            runs.append(json.loads(out))
        result[label] = {**runs[-1], "seconds": statistics.median(r["seconds"] for r in runs)}
    return result


def virtual_service_entry(host: str, n_routes: int) -> tuple[str, dict]:
    return VIRTUAL_SERVICES, virtual_service(host, n_routes)


def weight_change(round_: int) -> tuple[str, dict]:
    """The VirtualService on `web` after the round_-th weight shift."""
    split = (90, 10) if round_ % 2 == 0 else (50, 50)
    return VIRTUAL_SERVICES, virtual_service("web", 2, split)


if __name__ == "__main__":
    print(json.dumps(_translate_once(int(sys.argv[1]), sys.argv[2] == "with")))
