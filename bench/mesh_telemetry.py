"""Cost of Istio's standard metrics (shoal.mesh.telemetry): the same mesh path with the
sidecars' access logs to the metrics service on, and off.

    .venv/bin/python bench/mesh_telemetry.py [--seconds 30] [--rate 1000] [--rounds 5] [--json]

Two pairs of sidecars with mTLS, side by side in private netns (as bench/mesh.py's
latency part, whose server, client and helpers it reuses): a -> VIP web -> b with
telemetry on (the translation as served), c -> VIP web-off -> d with the same
listeners minus their access loggers. The metrics service runs in this process (as in
the daemon). Slices interleave (off, on, off, on, ...) so background load hits both
alike; quantiles over all samples of a path. Reports the added p50/p90/p99, each
sidecar's CPU per request, USS, the metrics service's CPU per record (this process's
CPU time during the "on" slices minus the "off" slices), and checks the count is exact
(istio_requests_total at b's destination reporter == requests b's app served).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.mesh import (  # noqa: E402
    CLIENT, SERVER, host_steal, pod, proc_cpu_seconds, proc_memory_mb, steal_pct, summarize,
)
from shoal.mesh.ca import MeshCA  # noqa: E402
from shoal.mesh.control import MeshControl  # noqa: E402
from shoal.mesh.meshconfig import MeshConfig  # noqa: E402
from shoal.mesh.server import XdsServer  # noqa: E402
from shoal.mesh.source import NAMESPACES, PODS, InMemorySource  # noqa: E402
from shoal.mesh.telemetry import TelemetryService  # noqa: E402
from shoal.mesh.translate import Resources, protos, translate  # noqa: E402
from shoal.mesh.translate import model  # noqa: E402
from tests.mesh import harness  # noqa: E402

OFF = {"c", "d"}


def _strip_logs(value):
    if isinstance(value, dict):
        return {k: _strip_logs(v) for k, v in value.items()
                if k not in ("access_log", "access_log_options")}
    if isinstance(value, list):
        return [_strip_logs(v) for v in value]
    return value


def in_namespace(obj: dict, namespace: str) -> dict:
    obj["metadata"]["namespace"] = namespace
    return obj


def translator(state, proxy, mesh, shared) -> Resources:
    """translate(), without access loggers for the "off" pair."""
    res = translate(state, proxy, mesh, shared)
    if proxy.pod not in OFF:
        return res
    listeners = tuple(protos.to_proto(protos.LISTENER, _strip_logs(protos.to_dict(m)))
                      for m in res.listeners)
    return Resources(clusters=res.clusters, endpoints=res.endpoints, listeners=listeners,
                     routes=res.routes)


async def run(args) -> dict:
    workdir = harness.make_workdir()
    topo, procs = harness.Topology(), harness.Processes(workdir)
    (workdir / "server.py").write_text(SERVER)
    (workdir / "client.py").write_text(CLIENT)
    control = server = service = None
    try:
        await topo.create(["a", "b", "c", "d"])
        objects = [
            (NAMESPACES, {"metadata": {"name": "default"}}), (NAMESPACES, {"metadata": {"name": "off"}}),
            ("pods", pod("a", topo.ip("a"), {"app": "client"}, "client")),
            ("pods", pod("b", topo.ip("b"), {"app": "web", "version": "v1"}, "web")),
            ("pods", in_namespace(pod("c", topo.ip("c"), {"app": "client"}, "client"), "off")),
            ("pods", in_namespace(pod("d", topo.ip("d"), {"app": "web", "version": "v1"}, "web"), "off")),
        ]
        # the client asks for Host "web": the short name is the service of its own namespace
        for namespace, host in (("default", 10), ("off", 11)):
            objects.append(("services", {"metadata": {"name": "web", "namespace": namespace},
                                         "spec": {"clusterIP": topo.vip(host), "selector": {"app": "web"},
                                                  "ports": [{"name": "http", "port": 80,
                                                             "targetPort": 8080}]}}))
        source = InMemorySource(objects)
        mesh = MeshConfig()
        control = MeshControl(source, MeshCA.load_or_create(workdir / "ca"), mesh, translator=translator)
        await control.start()
        server = XdsServer(control)
        await server.start(workdir / "xds.sock")
        service = TelemetryService(source, mesh)
        await service.start(workdir)
        for name in ("b", "d"):
            await procs.start(f"server-{name}", "ip", "netns", "exec", topo.netns(name),
                              sys.executable, str(workdir / "server.py"), "8080")
        state = await source.snapshot()
        envoys = {}
        for name in ("a", "b", "c", "d"):
            namespace = "off" if name in OFF else "default"
            identity = model.proxy_identity(state.get(PODS, namespace, name), state)
            envoys[name] = await harness.start_sidecar(procs, topo, name, identity, workdir / "xds.sock")

        async def ready():
            codes = [await harness.curl(topo, n, "http://127.0.0.1:15021/healthz/ready", 2)
                     for n in envoys]
            return all(code == 0 and "LIVE" in body for code, body in codes)
        await harness.wait_for(ready, timeout=30)

        async def load(client: str, host: int, seconds: float) -> dict:
            before = host_steal()
            _, out = await harness.run("ip", "netns", "exec", topo.netns(client), sys.executable,
                                       str(workdir / "client.py"), topo.vip(host), "80",
                                       str(args.rate), str(seconds), timeout=seconds + 60)
            result = json.loads(out.strip().splitlines()[-1])
            result["steal_pct"] = steal_pct(before, host_steal())
            return result

        # warm-up (not measured): connection pools grow to the load's concurrency
        await load("c", 11, 2)
        await load("a", 10, 2)
        await asyncio.sleep(1)
        counted_before = service.metrics.get(("default", "b"))
        counted_before = counted_before.records if counted_before else 0
        slice_seconds = args.seconds / args.rounds
        runs: dict[str, list[dict]] = {"off": [], "on": []}
        cpu = {n: 0.0 for n in envoys}
        own_cpu = {"off": 0.0, "on": 0.0}
        for _ in range(args.rounds):
            for path, client, host in (("off", "c", 11), ("on", "a", 10)):
                before = {n: proc_cpu_seconds(p.pid) for n, p in envoys.items()}
                own_before = time.process_time()
                runs[path].append(await load(client, host, slice_seconds))
                await asyncio.sleep(0.7)  # the last records arrive (flush interval 0.5 s)
                own_cpu[path] += time.process_time() - own_before
                for n, p in envoys.items():
                    cpu[n] += proc_cpu_seconds(p.pid) - before[n]
        warm_up = 200  # per run, by the client before its measured requests
        requests = {path: sum(len(r["lat_us"]) + r["errors"] + warm_up for r in runs[path])
                    for path in runs}
        off, on = summarize(runs["off"]), summarize(runs["on"])
        counted = service.metrics.get(("default", "b")).records - counted_before
        sidecars = {n: {"cpu_us_per_request": round(cpu[n] * 1e6 / max(1, requests["on" if n in "ab" else "off"]), 1),
                        **{k: round(v, 1) for k, v in proc_memory_mb(p.pid).items()}}
                    for n, p in envoys.items()}
        return {
            "generator": f"bench/mesh.py's open-loop asyncio client, {args.rate:.0f} req/s, 16 "
                         f"keep-alive connections, 1 KB responses, {args.seconds:.0f} s per path "
                         f"in {args.rounds} interleaved slices",
            "off": off, "on": on,
            "added_ms": {q: round(on[q] - off[q], 3) for q in ("p50", "p90", "p99")},
            "sidecars": sidecars,
            "metrics_service_us_per_record": round(
                (own_cpu["on"] - own_cpu["off"]) * 1e6 / max(1, 2 * requests["on"]), 1),
            "records_counted_at_b": counted, "requests_sent_on": requests["on"],
            "exact": counted == requests["on"],
        }
    finally:
        await procs.close()
        if service:
            await service.stop()
        if server:
            await server.stop(0)
        if control:
            await control.stop()
        await topo.close()
        harness.remove_workdir(workdir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    if args.json:
        print(json.dumps(result, indent=1))
        return
    for path in ("off", "on"):
        r = result[path]
        print(f"telemetry {path:3}: p50 {r['p50']:.2f} ms  p90 {r['p90']:.2f}  p99 {r['p99']:.2f}"
              f"  ({r['requests']} requests, {r['errors']} errors, slice p99 {r['slice_p99']},"
              f" steal {r['slice_steal_pct']}%)")
    print(f"added by telemetry: {result['added_ms']}")
    for n, s in result["sidecars"].items():
        print(f"sidecar {n} ({'on' if n in 'ab' else 'off'}): {s}")
    print(f"metrics service: {result['metrics_service_us_per_record']} us CPU per record; "
          f"counted {result['records_counted_at_b']} of {result['requests_sent_on']} requests "
          f"at b (exact: {result['exact']})")


if __name__ == "__main__":
    main()
