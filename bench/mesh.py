"""Benchmark of shoal.mesh: latency added by two sidecars with mTLS, sidecar cost, and
control-plane convergence time.

    .venv/bin/python bench/mesh.py [--seconds 30] [--rate 1000] [--rounds 5] [--proxies 10,50] [--json]

Runs as root in private network namespaces (`shoal-mt-<hex>-*`, bridge `shoalm<hex>`,
addresses in 10.211.0.0/16, VIP in 10.212.0.0/16) and removes everything at the end.

1. Latency, side by side, same load: client c -> server d directly (no sidecars), and
   client a -> VIP -> server b through both sidecars (capture, HTTP/1.1 between the app
   and its sidecar, mTLS between sidecars; one Envoy worker each, the injector's
   default). Load generator: our own open-loop asyncio client in the client netns, requests scheduled evenly at RATE/s over 16 keep-alive
   connections, latency measured from the scheduled send time (no coordinated
   omission). Not h2load: its --rps fires every connection's timer together, i.e. bursts
   of 16 requests every 16 ms, which measures queueing behind a burst (+3.5 ms p50
   through two single-worker sidecars here), not the latency added at an even rate.
   Response body 1 KB (an asyncio keep-alive server); the garbage collector is off in
   client and server. The two paths run interleaved, --rounds slices each (direct, mesh,
   direct, mesh, ...) after an unmeasured 2 s warm-up of each at the full rate, so a
   burst of background load on this shared machine hits both alike; quantiles are over
   all samples of a path. Prints p50/p90/p99/p99.9 of each path (and per slice the p99
   and the host's steal time, /proc/stat: the share of time the hypervisor gave our
   vCPUs to someone else) and the difference (added latency), plus both sidecars' CPU
   (cores used during the mesh slices and CPU time per request, /proc/PID/stat) and
   memory (RSS, PSS and USS from smaps_rollup; Envoy's code pages are shared between
   sidecars, so USS is the per-sidecar cost).

   Reading the tail on a small VM: the mesh path has three times the process hand-offs
   of the direct one (app -> sidecar -> sidecar -> app and back), and each hand-off to
   another vCPU is a wake-up through the hypervisor. On the 2-vCPU nested guest where
   this was written, `perf bench sched pipe` takes 50 us per round trip across vCPUs
   (6 us on one vCPU), and steal rose from ~3% during direct slices to 10-20% during
   mesh slices (the host gives the guest less than two full CPUs once it asks for
   them), so the mesh p99 moves with the host far more than the direct one. The cost is
   in waking idle vCPUs, not in Envoy's work: the same run at --rate 250 / 1000 / 3000
   cost each sidecar 650 / 220 / 150 us of CPU per request, and 250 req/s added more
   latency (p50 +1.14 ms, p99 +3.69 ms) than 1000 req/s did (+0.69, +1.66). Tried there
   without a lasting gain (same interleaved runs): Envoy io_uring socket interface,
   HTTP/2 between the sidecars (more CPU per request), router dynamic stats and
   request-id generation off, pinning client side and server side to one vCPU each or
   everything to one vCPU, `hey` as the generator (Go client, far noisier), nginx as
   the server, guest halt-polling.
2. Convergence: N real Envoys (one netns each, --concurrency 1) on one control plane;
   a scale-up of a service (one more ready pod) is applied to the ClusterSource and we
   time until every proxy has ACKed the EDS version carrying the new endpoint (Envoy
   ACKs after applying). The change comes after a quiet period, so the leading-edge
   debounce does not delay it. 5 repetitions per N.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shoal.mesh.ca import MeshCA  # noqa: E402
from shoal.mesh.control import MeshControl  # noqa: E402
from shoal.mesh.meshconfig import MeshConfig  # noqa: E402
from shoal.mesh.server import XdsServer  # noqa: E402
from shoal.mesh.source import PODS, InMemorySource  # noqa: E402
from shoal.mesh import bootstrap  # noqa: E402
from shoal.mesh.translate import model  # noqa: E402
from tests.mesh import harness  # noqa: E402
from bench import mesh_traffic  # noqa: E402

SERVER = r"""
import asyncio, gc, sys
gc.disable()  # a collector pause would be charged to whichever path is running
BODY = b"x" * 1024
HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: 1024\r\nContent-Type: text/plain\r\n\r\n"
async def handle(r, w):
    try:
        while True:
            await r.readuntil(b"\r\n\r\n")
            w.write(HEAD + BODY)
            await w.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        w.close()
async def main():
    s = await asyncio.start_server(handle, "0.0.0.0", int(sys.argv[1]), backlog=1024)
    await s.serve_forever()
try:
    import uvloop; uvloop.install()
except ImportError:
    pass
asyncio.run(main())
"""

CLIENT = r"""
import asyncio, gc, json, sys, time
gc.disable()  # a collector pause in the load generator is not the proxy's latency
host, port, rate, seconds, conns = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), 16
REQ = f"GET / HTTP/1.1\r\nHost: web\r\n\r\n".encode()
async def one(conn):
    r, w = conn
    w.write(REQ)
    head = await r.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    await r.readexactly(length)
async def main():
    idle = asyncio.Queue()
    for _ in range(conns):
        idle.put_nowait(await asyncio.open_connection(host, port))
    for _ in range(200):  # warm-up
        c = await idle.get(); await one(c); idle.put_nowait(c)
    lat, errors = [], 0
    n = int(rate * seconds)
    start = time.perf_counter() + 0.05
    async def request(i):
        nonlocal errors
        scheduled = start + i / rate
        c = await idle.get()
        try:
            await one(c)
            lat.append(time.perf_counter() - scheduled)
            idle.put_nowait(c)
        except Exception:
            errors += 1
            idle.put_nowait(await asyncio.open_connection(host, port))
    tasks = []
    for i in range(n):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(request(i)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    print(json.dumps({"requests": len(lat), "errors": errors, "seconds": elapsed,
                      "lat_us": [round(x * 1e6) for x in lat]}))
try:
    import uvloop; uvloop.install()
except ImportError:
    pass
asyncio.run(main())
"""


def pod(name: str, ip: str, labels: dict, sa: str = "default", sidecar: bool = True) -> dict:
    return {"metadata": {"name": name, "namespace": "default", "labels": labels,
                         "annotations": {"sidecar.istio.io/status": "{}"} if sidecar else {}},
            "spec": {"serviceAccountName": sa, "containers": [{"name": "app", "ports": [
                {"containerPort": 8080, "name": "http"}]}]},
            "status": {"podIP": ip, "phase": "Running",
                       "conditions": [{"type": "Ready", "status": "True"}]}}


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_memory_mb(pid: int) -> dict:
    values = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, value = line.split(":", 1)
        values[key] = int(value.split()[0])
    uss = values.get("Private_Clean", 0) + values.get("Private_Dirty", 0)
    return {"rss_mb": values["Rss"] / 1024, "pss_mb": values["Pss"] / 1024, "uss_mb": uss / 1024}


WAKEUP = r"""
import os, sys, time
n = 20000
same = sys.argv[1] == "same"
a_r, a_w = os.pipe(); b_r, b_w = os.pipe()
cpus = sorted(os.sched_getaffinity(0))
pid = os.fork()
if pid == 0:
    os.sched_setaffinity(0, {cpus[0] if same else cpus[-1]})
    for _ in range(n):
        os.read(a_r, 1); os.write(b_w, b"x")
    os._exit(0)
os.sched_setaffinity(0, {cpus[0]})
start = time.perf_counter()
for _ in range(n):
    os.write(a_w, b"x"); os.read(b_r, 1)
print((time.perf_counter() - start) / n * 1e6)
os.waitpid(pid, 0)
"""


def wakeup_round_trip_us() -> dict:
    """Pipe ping-pong between two processes on one vCPU and on two: the cost of the
    wake-ups every proxy hop adds (perf bench sched pipe, without perf)."""
    result = {}
    for where in ("same", "cross"):
        out = subprocess.run([sys.executable, "-c", WAKEUP, where], capture_output=True,
                             text=True, check=True, timeout=120).stdout
        result[where] = round(float(out), 1)
    return result


def host_steal() -> tuple[int, int]:
    """(steal, total) jiffies of all CPUs: time the hypervisor ran something else while
    this machine's vCPUs wanted to run."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return values[7], sum(values)


def steal_pct(before: tuple[int, int], after: tuple[int, int]) -> float:
    return round(100 * (after[0] - before[0]) / max(1, after[1] - before[1]), 1)


def summarize(runs: list[dict]) -> dict:
    """One path's slices merged: quantiles over every request's latency."""
    lat = sorted(x for r in runs for x in r["lat_us"])
    q = (lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] / 1000) if lat else (lambda p: None)
    per_slice = [sorted(r["lat_us"]) for r in runs if r["lat_us"]]
    return {"requests": len(lat), "errors": sum(r["errors"] for r in runs),
            "rate": len(lat) / sum(r["seconds"] for r in runs),
            "p50": q(0.50), "p90": q(0.90), "p99": q(0.99), "p999": q(0.999),
            "max": lat[-1] / 1000 if lat else None,
            "slice_p99": [round(s_[min(len(s_) - 1, int(0.99 * len(s_)))] / 1000, 2) for s_ in per_slice],
            "slice_steal_pct": [r["steal_pct"] for r in runs]}


async def control_plane(source, workdir: Path, mesh: MeshConfig = MeshConfig()):
    control = MeshControl(source, MeshCA.load_or_create(workdir / "ca"), mesh)
    await control.start()
    server = XdsServer(control)
    await server.start(workdir / "xds.sock")
    return control, server


async def latency(args) -> dict:
    workdir = harness.make_workdir()
    topo, procs = harness.Topology(), harness.Processes(workdir)
    (workdir / "server.py").write_text(SERVER)
    (workdir / "client.py").write_text(CLIENT)
    control = server = None
    try:
        await topo.create(["a", "b", "c", "d"])
        source = InMemorySource([
            ("pods", pod("a", topo.ip("a"), {"app": "client"}, "client")),
            ("pods", pod("b", topo.ip("b"), {"app": "web", "version": "v1"}, "web")),
            ("services", {"metadata": {"name": "web", "namespace": "default"},
                          "spec": {"clusterIP": topo.vip(), "selector": {"app": "web"},
                                   "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}),
        ])
        control, server = await control_plane(source, workdir)
        for name in ("b", "d"):
            await procs.start(f"server-{name}", "ip", "netns", "exec", topo.netns(name),
                              sys.executable, str(workdir / "server.py"), "8080")
        state = await source.snapshot()
        envoys = {}
        for name in ("a", "b"):
            identity = model.proxy_identity(state.get(PODS, "default", name), state)
            envoys[name] = await harness.start_sidecar(procs, topo, name, identity, workdir / "xds.sock")

        async def ready():
            codes = [await harness.curl(topo, n, "http://127.0.0.1:15021/healthz/ready", 2)
                     for n in ("a", "b")]
            return all(code == 0 and "LIVE" in body for code, body in codes)
        await harness.wait_for(ready, timeout=30)

        async def load(client: str, host: str, port: int, seconds: float) -> dict:
            steal_before = host_steal()
            _, out = await harness.run("ip", "netns", "exec", topo.netns(client), sys.executable,
                                       str(workdir / "client.py"), host, str(port), str(args.rate),
                                       str(seconds), timeout=seconds + 60)
            run = json.loads(out.strip().splitlines()[-1])
            run["steal_pct"] = steal_pct(steal_before, host_steal())
            return run

        async def route_table(present: bool) -> None:
            """Put (or remove) the VirtualService + DestinationRule on `web` and wait
            until both sidecars ACKed what that changed."""
            before = {s.node_id: dict(s.sent) for s in server.status()}
            for kind, obj in mesh_traffic.route_table(args.routes):
                if present:
                    source.put(kind, obj)
                else:
                    source.delete(kind, "default", obj["metadata"]["name"])
            # The control loop debounces (50 ms); after that, whatever it pushed must be ACKed.
            await asyncio.sleep(0.3)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if all(s.acked == s.sent for s in server.status()):
                    changed[present] = [s.node_id for s in server.status()
                                        if s.sent != before[s.node_id]]
                    return
                await asyncio.sleep(0.01)
            raise RuntimeError("sidecars did not ACK the route table change within 30 s")

        changed: dict[bool, list[str]] = {}

        # Interleaved: ROUNDS x (direct slice, mesh slice, mesh slice with the route
        # table), so the paths see the same background on this shared machine;
        # quantiles are over all samples of a path.
        # A warm-up at the full rate first (not measured): the sidecars' connection pools
        # grow to the load's concurrency (each new upstream connection is a TLS handshake).
        slice_seconds = args.seconds / args.rounds
        await load("c", topo.ip("d"), 8080, 2)
        await load("a", topo.vip(), 80, 2)
        runs: dict[str, list[dict]] = {"direct": [], "mesh": [], "routed": []}
        cpu = {n: 0.0 for n in envoys}
        cpu_routed = {n: 0.0 for n in envoys}
        mesh_elapsed = 0.0
        for _ in range(args.rounds):
            runs["direct"].append(await load("c", topo.ip("d"), 8080, slice_seconds))
            cpu_before = {n: proc_cpu_seconds(p.pid) for n, p in envoys.items()}
            started = time.perf_counter()
            runs["mesh"].append(await load("a", topo.vip(), 80, slice_seconds))
            mesh_elapsed += time.perf_counter() - started
            for n, p in envoys.items():
                cpu[n] += proc_cpu_seconds(p.pid) - cpu_before[n]
            if args.routes:
                await route_table(True)
                routed_cpu = {n: proc_cpu_seconds(p.pid) for n, p in envoys.items()}
                runs["routed"].append(await load("a", topo.vip(), 80, slice_seconds))
                for n, p in envoys.items():
                    cpu_routed[n] += proc_cpu_seconds(p.pid) - routed_cpu[n]
                await route_table(False)
        mesh_requests = sum(len(r["lat_us"]) for r in runs["mesh"])
        sidecars = {n: {"cpu_cores": cpu[n] / mesh_elapsed,
                        "cpu_us_per_request": cpu[n] * 1e6 / max(1, mesh_requests),
                        **proc_memory_mb(p.pid)}
                    for n, p in envoys.items()}
        direct, mesh = summarize(runs["direct"]), summarize(runs["mesh"])
        routed = None
        if runs["routed"]:
            routed = summarize(runs["routed"])
            routed_requests = sum(len(r["lat_us"]) for r in runs["routed"])
            routed["cpu_us_per_request"] = {n: cpu_routed[n] * 1e6 / max(1, routed_requests)
                                            for n in envoys}
            routed["routes"] = args.routes
            routed["added_ms"] = {q: routed[q] - mesh[q] for q in ("p50", "p90", "p99")}
            routed["proxies_changed"] = changed.get(True, [])
        return {
            "generator": f"open-loop asyncio client, {args.rate:.0f} req/s, 16 keep-alive "
                         f"connections, 1 KB responses, {args.seconds:.0f} s per path in "
                         f"{args.rounds} interleaved slices",
            "direct": direct, "mesh": mesh, "routed": routed,
            "added_ms": {q: mesh[q] - direct[q] for q in ("p50", "p90", "p99")},
            "sidecars": sidecars,
        }
    finally:
        await procs.close()
        if server:
            await server.stop(0)
        if control:
            await control.stop()
        await topo.close()
        harness.remove_workdir(workdir)


async def convergence(n: int, repeats: int = 5, weight_change: bool = False) -> dict:
    """Scale-up of `web` (EDS) or, with weight_change, a VirtualService weight shift on
    `web` with 100 other Services' VirtualServices applied (RDS), timed until every
    proxy ACKed it."""
    workdir = harness.make_workdir()
    procs = harness.Processes(workdir)
    netns: list[str] = []
    control = server = None
    tag = harness.Topology().tag
    try:
        source = InMemorySource([
            ("services", {"metadata": {"name": "web", "namespace": "default"},
                          "spec": {"clusterIP": "10.212.250.10", "selector": {"app": "web"},
                                   "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}),
            ("pods", pod("web-0", "10.211.250.2", {"app": "web"}, "web")),
        ])
        for i in range(n):
            source.put(PODS, pod(f"p{i}", f"10.211.{251 + i // 250}.{2 + i % 250}", {"app": f"p{i}"}))
        kind = "RDS" if weight_change else "EDS"
        if weight_change:
            for i in range(100):
                source.put("services", {"metadata": {"name": f"svc{i}", "namespace": "default"},
                                        "spec": {"clusterIP": f"10.212.251.{10 + i}",
                                                 "selector": {"app": f"svc{i}"},
                                                 "ports": [{"name": "http", "port": 80}]}})
                source.put(*mesh_traffic.virtual_service_entry(f"svc{i}", 3))
            source.put(*mesh_traffic.weight_change(0))
            source.put("destinationrules.networking.istio.io", mesh_traffic.destination_rule("web"))
        control, server = await control_plane(source, workdir)
        state = await source.snapshot()

        async def start(i: int):
            ns = f"shoal-mt-{tag}-c{i}"
            await harness.run("ip", "netns", "add", ns)
            netns.append(ns)
            await harness.run("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
            identity = model.proxy_identity(state.get(PODS, "default", f"p{i}"), state)
            path = workdir / f"bootstrap-{i}.json"
            path.write_text(bootstrap.bootstrap_json(bootstrap.build_bootstrap(identity, workdir / "xds.sock")))
            await procs.start(f"envoy-{i}", "ip", "netns", "exec", ns,
                              *bootstrap.envoy_command(path, concurrency=1, log_level="error"))
        await asyncio.gather(*(start(i) for i in range(n)))

        def all_synced() -> bool:
            statuses = server.status()
            return len(statuses) == n and all(s.connected and s.synced and kind in s.sent
                                              for s in statuses)
        deadline = time.monotonic() + 120
        while not all_synced():
            if time.monotonic() > deadline:
                raise RuntimeError("proxies did not all sync within 120 s")
            await asyncio.sleep(0.1)
        await asyncio.sleep(1)
        times, sent_times = [], []
        for r in range(repeats):
            before = {s.node_id: s.sent[kind] for s in server.status()}
            t0 = time.perf_counter()
            if weight_change:
                source.put(*mesh_traffic.weight_change(r + 1))
            else:
                source.put(PODS, pod(f"web-{r + 1}", f"10.211.250.{3 + r}", {"app": "web"}, "web"))
            all_sent = None
            deadline = time.monotonic() + 30
            while True:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"not every proxy ACKed a new {kind} within 30 s")
                statuses = server.status()
                if all_sent is None and all(s.sent.get(kind) != before[s.node_id] for s in statuses):
                    all_sent = time.perf_counter()
                if all(s.sent.get(kind) != before[s.node_id] and s.acked.get(kind) == s.sent[kind]
                       for s in statuses):
                    break
                await asyncio.sleep(0.001)
            times.append((time.perf_counter() - t0) * 1000)
            sent_times.append(((all_sent or time.perf_counter()) - t0) * 1000)
            await asyncio.sleep(0.3)
        return {"proxies": n, "change": "VirtualService weights (RDS)" if weight_change
                else "one more endpoint (EDS)", "ms": [round(t, 1) for t in times],
                "p50_ms": statistics.median(times), "max_ms": max(times),
                "sent_p50_ms": statistics.median(sent_times), "sent_max_ms": max(sent_times)}
    finally:
        await procs.close()
        if server:
            await server.stop(0)
        if control:
            await control.stop()
        for ns in netns:
            await harness.run("ip", "netns", "del", ns, check=False)
        harness.remove_workdir(workdir)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--rounds", type=int, default=5,
                        help="interleaved direct/mesh slices the --seconds are split into")
    parser.add_argument("--proxies", default="10,50")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--routes", type=int, default=20,
                        help="VirtualService rules in the third (routed) path; 0: no routed path")
    parser.add_argument("--translate-services", type=int, default=1000,
                        help="Services (each with a VirtualService and a DestinationRule) "
                             "in the translation-time figure; 0: skip it")
    parser.add_argument("--weight-change-proxies", type=int, default=50,
                        help="proxies in the weight-change convergence figure; 0: skip it")
    args = parser.parse_args()
    result: dict = {}
    if not args.skip_latency:
        result["wakeup_round_trip_us"] = wakeup_round_trip_us()
        result["latency"] = await latency(args)
    result["convergence"] = [await convergence(int(n)) for n in args.proxies.split(",") if n]
    if args.weight_change_proxies:
        result["weight_change"] = await convergence(args.weight_change_proxies, weight_change=True)
    if args.translate_services:
        result["translation"] = mesh_traffic.translation_time(args.translate_services)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    if "latency" in result:
        lat = result["latency"]
        print(f"load: {lat['generator']}")
        print(f"{'path':<8}{'req/s':>8}{'errors':>8}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}"
              f"{'p99.9 ms':>10}  p99 per slice (host steal %)")
        for name in ("direct", "mesh"):
            r = lat[name]
            print(f"{name:<8}{r['rate']:>8.0f}{r['errors']:>8}{r['p50']:>9.2f}{r['p90']:>9.2f}"
                  f"{r['p99']:>9.2f}{r['p999']:>10.2f}  "
                  + ", ".join(f"{p:.2f} ({st:.1f}%)" for p, st in zip(r["slice_p99"], r["slice_steal_pct"])))
        added = lat["added_ms"]
        w = result["wakeup_round_trip_us"]
        print(f"this machine: pipe round trip between two processes {w['same']:.0f} us on one "
              f"vCPU, {w['cross']:.0f} us across vCPUs (each proxy hop is such a wake-up)")
        print(f"added by two sidecars with mTLS: p50 {added['p50']:+.2f} ms, "
              f"p90 {added['p90']:+.2f} ms, p99 {added['p99']:+.2f} ms")
        for name, s in lat["sidecars"].items():
            print(f"sidecar {name}: {s['cpu_cores']:.3f} cores ({s['cpu_us_per_request']:.0f} us CPU "
                  f"per request), RSS {s['rss_mb']:.1f} MB, "
                  f"PSS {s['pss_mb']:.1f} MB, USS {s['uss_mb']:.1f} MB")
        routed = lat.get("routed")
        if routed:
            cpu = ", ".join(f"{n} {us:.0f} us" for n, us in sorted(routed["cpu_us_per_request"].items()))
            print(f"{'routed':<8}{routed['rate']:>8.0f}{routed['errors']:>8}{routed['p50']:>9.2f}"
                  f"{routed['p90']:>9.2f}{routed['p99']:>9.2f}{routed['p999']:>10.2f}  "
                  + ", ".join(f"{p:.2f} ({st:.1f}%)" for p, st in
                              zip(routed["slice_p99"], routed["slice_steal_pct"])))
            ra = routed["added_ms"]
            print(f"added by a VirtualService of {routed['routes']} rules + a DestinationRule "
                  f"(routed - mesh): p50 {ra['p50']:+.3f} ms, p99 {ra['p99']:+.3f} ms; "
                  f"sidecar CPU per request {cpu}")
    for c in result["convergence"] + ([result["weight_change"]] if "weight_change" in result else []):
        print(f"convergence, {c['proxies']} proxies ({c['change']} -> every proxy ACKed it): "
              f"p50 {c['p50_ms']:.0f} ms, max {c['max_ms']:.0f} ms {c['ms']}; "
              f"pushed to all: p50 {c['sent_p50_ms']:.0f} ms, max {c['sent_max_ms']:.0f} ms")
    if "translation" in result:
        t = result["translation"]
        print(f"translation, full recompute for {t['services']} Services: with a VirtualService "
              f"and a DestinationRule each {t['with']['seconds']:.2f} s ({t['with']['routes']} "
              f"routes, {t['with']['clusters']} clusters), without {t['without']['seconds']:.2f} s")


if __name__ == "__main__":
    asyncio.run(main())
