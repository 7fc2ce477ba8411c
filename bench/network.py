"""Benchmark of shoal.network: pod sandbox setup time, and ClusterIP vs pod-IP latency.

    .venv/bin/python bench/network.py [--sandboxes 50] [--requests 2000] [--json]

Runs as root on a private instance (bridge `shoalt<hex>`, pod range inside 10.201.0.0/16,
service range inside 10.202.0.0/16, chain prefix `SHOALT<hex>`) and tears it down at the
end, so it never touches a running shoal.

1. Sandbox setup: `create_sandbox` for N pods one after another (netns, veth, address,
   routes, ipc+uts namespaces), p50/p99 of the wall time of each call; then deletion.
2. Latency: a server pod (a Python asyncio responder: one short HTTP/1.0 reply per
   connection) behind a ClusterIP with one endpoint; a client pod opens a new TCP
   connection per request, alternating pod IP and ClusterIP, so both paths see the same
   load and the difference is the DNAT (per connection: conntrack + nat chain walk).
   Generator: a sequential Python client inside the client netns (closed loop, one
   request in flight), timed with perf_counter around connect+request+response.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shoal.config import Settings  # noqa: E402
from shoal.network import EndpointView, PodNetwork, ServicePort, ServiceProxy, ServiceView  # noqa: E402
from shoal.store.allocations import Allocations  # noqa: E402

SERVER = r"""
import asyncio
async def handle(r, w):
    await r.readuntil(b"\r\n\r\n")
    w.write(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
    await w.drain(); w.close()
async def main():
    s = await asyncio.start_server(handle, "0.0.0.0", 8080, backlog=512)
    print("ready", flush=True)
    await s.serve_forever()
asyncio.run(main())
"""

CLIENT = r"""
import json, socket, sys, time
targets, n = sys.argv[1].split(","), int(sys.argv[2])
out = {t: [] for t in targets}
req = b"GET / HTTP/1.0\r\nHost: x\r\n\r\n"
for i in range(n + 50):
    for t in targets:
        t0 = time.perf_counter()
        s = socket.create_connection((t, 80 if t.startswith(sys.argv[3]) else 8080), timeout=5)
        s.sendall(req)
        while s.recv(4096):
            pass
        s.close()
        if i >= 50:  # warm-up
            out[t].append(time.perf_counter() - t0)
print(json.dumps(out))
"""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def summary(values: list[float]) -> dict:
    ms = [v * 1000 for v in values]
    return {"n": len(ms), "p50_ms": round(pct(ms, 0.5), 3), "p99_ms": round(pct(ms, 0.99), 3),
            "mean_ms": round(statistics.fmean(ms), 3)}


async def run(sandboxes: int, requests: int) -> dict:
    tag = secrets.token_hex(3)
    third = secrets.randbelow(256)
    state = Path(tempfile.mkdtemp(prefix="shoal-bench-net-"))
    settings = Settings(state_dir=state, pod_cidr=f"10.201.{third}.0/24", service_cidr=f"10.202.{third}.0/24",
                        bridge=f"shoalt{tag[:4]}", chain_prefix=f"SHOALT{tag}", node_port_range=(24000, 24999))
    allocations = Allocations(settings.store_path)
    net = PodNetwork(settings, allocations, netns_prefix=f"shoal-nt-{tag[:4]}-")
    server_proc = None
    result: dict = {}
    try:
        t0 = time.perf_counter()
        await net.setup_host()
        result["setup_host_ms"] = round((time.perf_counter() - t0) * 1000, 1)

        create: list[float] = []
        for i in range(sandboxes):
            t0 = time.perf_counter()
            await net.create_sandbox(f"bench/pod-{i}", hostname=f"pod-{i}")
            create.append(time.perf_counter() - t0)
        delete: list[float] = []
        for i in range(2, sandboxes):
            t0 = time.perf_counter()
            await net.delete_sandbox(f"bench/pod-{i}")
            delete.append(time.perf_counter() - t0)
        result["sandbox_create"] = summary(create)
        result["sandbox_delete"] = summary(delete)

        server, client = (await net.get_sandbox("bench/pod-0")), (await net.get_sandbox("bench/pod-1"))
        assert server is not None and client is not None
        server_proc = subprocess.Popen(["ip", "netns", "exec", server.netns_name, sys.executable, "-c", SERVER],
                                       stdout=subprocess.PIPE, text=True)
        assert server_proc.stdout is not None and server_proc.stdout.readline().strip() == "ready"
        cluster_ip = net.allocate_cluster_ip("bench/server")
        await ServiceProxy(settings).sync([ServiceView("bench", "server", cluster_ip, (ServicePort(80, name="http"),),
                                                       (EndpointView(server.ip, {"http": 8080}),))])
        svc_prefix = settings.service_cidr.rsplit(".", 1)[0]
        out = subprocess.run(["ip", "netns", "exec", client.netns_name, sys.executable, "-c", CLIENT,
                              f"{server.ip},{cluster_ip}", str(requests), svc_prefix],
                             capture_output=True, text=True, check=True).stdout
        samples = json.loads(out)
        result["request_pod_ip"] = summary(samples[server.ip])
        result["request_cluster_ip"] = summary(samples[cluster_ip])
        result["cluster_ip_overhead_p50_ms"] = round(
            result["request_cluster_ip"]["p50_ms"] - result["request_pod_ip"]["p50_ms"], 3)
    finally:
        if server_proc is not None:
            server_proc.kill()
            server_proc.wait()
        await net.teardown()
        allocations.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sandboxes", type=int, default=50)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--json", action="store_true", help="print one JSON object only")
    args = parser.parse_args()
    result = asyncio.run(run(max(args.sandboxes, 2), args.requests))
    if args.json:
        print(json.dumps(result))
        return
    print(f"setup_host: {result['setup_host_ms']} ms")
    for key in ("sandbox_create", "sandbox_delete", "request_pod_ip", "request_cluster_ip"):
        s = result[key]
        print(f"{key:20s} n={s['n']:5d}  p50 {s['p50_ms']:8.3f} ms  p99 {s['p99_ms']:8.3f} ms  mean {s['mean_ms']:8.3f} ms")
    print(f"ClusterIP overhead at p50: {result['cluster_ip_overhead_p50_ms']} ms")


if __name__ == "__main__":
    main()
