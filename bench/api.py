"""Benchmark of the API: creates/s, list latency at 10k objects, watch event latency —
through HTTPS (the API server) and against the store alone, in one run, so the ratio
is what the HTTP layer (TLS, JSON, validation, admission) costs.

    .venv/bin/python bench/api.py [--objects 10000] [--creates 1000] [--watch 300] [--json]

Runs a private daemon (its own state dir, API port, bridge and ranges) and removes it at
the end. Objects are ConfigMaps of ~200 bytes. Creates are sequential (one in flight,
closed loop) and then 16 in flight; list latency is the median/p99 of 20 full lists of
the namespace; watch latency is the time from sending a create to receiving its ADDED
event on an open watch (sequential, one in flight).

Port-forward throughput (`--portforward-mb N`, default 64, 0 to skip): a busybox pod
serves an N MB file with httpd; one HTTP/1.0 GET of it, read to the end, timed three
times (the median is reported) over a direct connection to the pod IP (the peer),
then through `kubectl port-forward` over its default WebSocket tunnel, over plain SPDY
(`KUBECTL_PORT_FORWARD_WEBSOCKETS=false`), and through `shoal port-forward` (the
channel form), all in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shoal.store import Store  # noqa: E402
from tests.daemon_harness import ShoalInstance  # noqa: E402


def cm(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "bench"}, "data": {"payload": "x" * 200}}


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


async def bench_store(path: Path, n_objects: int, n_creates: int, n_watch: int) -> dict:
    store = await Store.open(path)
    try:
        t0 = time.perf_counter()
        for i in range(n_creates):
            await store.create("configmaps", "bench", f"c{i}", cm(f"c{i}"))
        seq = n_creates / (time.perf_counter() - t0)

        sem = asyncio.Semaphore(16)

        async def one(i: int) -> None:
            async with sem:
                await store.create("configmaps", "bench", f"p{i}", cm(f"p{i}"))

        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n_creates)))
        par = n_creates / (time.perf_counter() - t0)

        for i in range(2 * n_creates, n_objects):
            await store.create("configmaps", "bench", f"f{i}", cm(f"f{i}"))
        lists = []
        for _ in range(20):
            t0 = time.perf_counter()
            items, _ = await store.list("configmaps", "bench")
            lists.append(time.perf_counter() - t0)
        assert len(items) >= n_objects

        latencies = await _watch_latency_store(store, n_watch)
    finally:
        await store.close()
    return {"creates_per_s_seq": seq, "creates_per_s_16": par, "list_p50_ms": pct(lists, .5) * 1e3,
            "list_p99_ms": pct(lists, .99) * 1e3, "watch_p50_ms": pct(latencies, .5) * 1e3,
            "watch_p99_ms": pct(latencies, .99) * 1e3, "list_items": len(items)}


async def _watch_latency_store(store: Store, n: int) -> list[float]:
    sent: dict[str, float] = {}
    got: list[float] = []
    done = asyncio.Event()

    async def watcher() -> None:
        async for event in store.watch("configmaps", "bench", store.revision):
            if event.name in sent:
                got.append(time.perf_counter() - sent[event.name])
                if len(got) == n:
                    done.set()
                    return

    task = asyncio.create_task(watcher())
    await asyncio.sleep(0.05)
    for i in range(n):
        name = f"w{i}"
        sent[name] = time.perf_counter()
        await store.create("configmaps", "bench", name, cm(name))
    await asyncio.wait_for(done.wait(), 30)
    await task
    return got


async def bench_http(shoal: ShoalInstance, n_objects: int, n_creates: int, n_watch: int) -> dict:
    tls = ssl.create_default_context(cafile=shoal.ca)
    headers = {"Authorization": f"Bearer {shoal.token}"}
    base = "/api/v1/namespaces/bench/configmaps"
    async with httpx.AsyncClient(base_url=shoal.url, verify=tls, headers=headers, timeout=60,
                                 limits=httpx.Limits(max_connections=32)) as api:
        r = await api.post("/api/v1/namespaces", json={
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}})
        assert r.status_code in (201, 409), r.text

        t0 = time.perf_counter()
        for i in range(n_creates):
            r = await api.post(base, json=cm(f"c{i}"))
            assert r.status_code == 201, r.text
        seq = n_creates / (time.perf_counter() - t0)

        sem = asyncio.Semaphore(16)

        async def one(name: str) -> None:
            async with sem:
                r = await api.post(base, json=cm(name))
                assert r.status_code == 201, r.text

        t0 = time.perf_counter()
        await asyncio.gather(*(one(f"p{i}") for i in range(n_creates)))
        par = n_creates / (time.perf_counter() - t0)

        await asyncio.gather(*(one(f"f{i}") for i in range(2 * n_creates, n_objects)))
        lists = []
        for _ in range(20):
            t0 = time.perf_counter()
            r = await api.get(base)
            items = r.json()["items"]
            lists.append(time.perf_counter() - t0)

        sent: dict[str, float] = {}
        got: list[float] = []
        rv = r.json()["metadata"]["resourceVersion"]

        async def watcher() -> None:
            async with api.stream("GET", base, params={"watch": "true", "resourceVersion": rv}) as s:
                async for line in s.aiter_lines():
                    if not line:
                        continue
                    name = json.loads(line)["object"]["metadata"]["name"]
                    if name in sent:
                        got.append(time.perf_counter() - sent[name])
                        if len(got) == n_watch:
                            return

        task = asyncio.create_task(watcher())
        await asyncio.sleep(0.2)
        for i in range(n_watch):
            name = f"w{i}"
            sent[name] = time.perf_counter()
            r = await api.post(base, json=cm(name))
            assert r.status_code == 201
        await asyncio.wait_for(task, 60)
    return {"creates_per_s_seq": seq, "creates_per_s_16": par, "list_p50_ms": pct(lists, .5) * 1e3,
            "list_p99_ms": pct(lists, .99) * 1e3, "watch_p50_ms": pct(got, .5) * 1e3,
            "watch_p99_ms": pct(got, .99) * 1e3, "list_items": len(items)}


PF_POD = """
apiVersion: v1
kind: Pod
metadata: {{name: pf-bench, namespace: default}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "mkdir -p /www && dd if=/dev/zero of=/www/big bs=1048576 count={mb} 2>/dev/null && exec httpd -f -p 80 -h /www"]
    readinessProbe: {{tcpSocket: {{port: 80}}, periodSeconds: 1}}
"""


def _fetch_seconds(host: str, port: int, size: int) -> float:
    """One GET of /big read to the end; its time (asserting every byte arrived)."""
    t0 = time.perf_counter()
    with socket.create_connection((host, port), timeout=60) as sock:
        sock.sendall(b"GET /big HTTP/1.0\r\nHost: pf\r\n\r\n")
        got = 0
        while chunk := sock.recv(1 << 16):
            got += len(chunk)
    elapsed = time.perf_counter() - t0
    assert got >= size, f"got {got} of {size} bytes from {host}:{port}"
    return elapsed


def _through_forward(argv: list[str], env: dict, size: int) -> float:
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        match = re.match(r"Forwarding from 127\.0\.0\.1:(\d+)", proc.stdout.readline())
        assert match, f"{argv[0]} port-forward did not start"
        return statistics.median(_fetch_seconds("127.0.0.1", int(match[1]), size) for _ in range(3))
    finally:
        proc.kill()
        proc.wait()


def bench_portforward(shoal: ShoalInstance, mb: int) -> dict:
    """MB/s of one download: direct to the pod IP, and through each port-forward path."""
    shoal.kubectl("apply", "-f", "-", input=PF_POD.format(mb=mb))
    shoal.kubectl("wait", "--for=condition=Ready", "pod/pf-bench", "--timeout=120s")
    ip = shoal.kubectl("get", "pod", "pf-bench", "-o", "jsonpath={.status.podIP}").stdout.strip()
    size = mb * 1024 * 1024
    kubectl = ["kubectl", "--kubeconfig", str(shoal.kubeconfig), "port-forward", "pod/pf-bench", ":80"]
    seconds = {
        "direct": statistics.median(_fetch_seconds(ip, 80, size) for _ in range(3)),
        "kubectl_websocket": _through_forward(kubectl, dict(os.environ), size),
        "kubectl_spdy": _through_forward(kubectl, {**os.environ, "KUBECTL_PORT_FORWARD_WEBSOCKETS": "false"}, size),
        "shoal": _through_forward([sys.executable, "-m", "shoal.cli.main", "port-forward", "pf-bench", ":80"],
                                  shoal.env, size),
    }
    shoal.kubectl("delete", "pod", "pf-bench", "--wait=false")
    return {"MB": mb, **{f"{k}_MB_per_s": mb / v for k, v in seconds.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--creates", type=int, default=1000)
    parser.add_argument("--watch", type=int, default=300)
    parser.add_argument("--portforward-mb", type=int, default=64)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="shoal-bench-api-") as tmp:
        store_figures = asyncio.run(bench_store(Path(tmp) / "alone.db", args.objects,
                                                args.creates, args.watch))
        shoal = ShoalInstance(Path(tmp) / "state")
        if args.portforward_mb:
            shoal.shoal("image", "bootstrap", "busybox", "--busybox")
        shoal.start()
        try:
            http_figures = asyncio.run(bench_http(shoal, args.objects, args.creates, args.watch))
            forward_figures = bench_portforward(shoal, args.portforward_mb) if args.portforward_mb else None
        finally:
            shoal.stop()
    rows = [
        ("creates/s, sequential", "creates_per_s_seq", "{:.0f}"),
        ("creates/s, 16 in flight", "creates_per_s_16", "{:.0f}"),
        (f"list of {args.objects} objects p50 (ms)", "list_p50_ms", "{:.1f}"),
        (f"list of {args.objects} objects p99 (ms)", "list_p99_ms", "{:.1f}"),
        ("watch event latency p50 (ms)", "watch_p50_ms", "{:.2f}"),
        ("watch event latency p99 (ms)", "watch_p99_ms", "{:.2f}"),
    ]
    result = {"area": "api", "http": http_figures, "store": store_figures,
              "date": time.strftime("%Y-%m-%d"), "machine": machine()}
    if forward_figures:
        result["portforward"] = forward_figures
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"API benchmark, {result['date']}, {result['machine']}")
    print(f"{'figure':<36}{'HTTP API':>12}{'store alone':>14}{'ratio':>8}")
    for label, key, fmt in rows:
        h, s = http_figures[key], store_figures[key]
        print(f"{label:<36}{fmt.format(h):>12}{fmt.format(s):>14}{h / s:>8.2f}")
    if forward_figures:
        direct = forward_figures["direct_MB_per_s"]
        print(f"\nport-forward, one {forward_figures['MB']} MB download (MB/s; peer: direct to the pod IP "
              f"{direct:.0f} MB/s)")
        for key in ("kubectl_websocket", "kubectl_spdy", "shoal"):
            value = forward_figures[f"{key}_MB_per_s"]
            print(f"  {key:<34}{value:>12.1f}{direct:>14.1f}{value / direct:>8.2f}")


def machine() -> str:
    import os
    mem = int(open("/proc/meminfo").read().split()[1]) // (1024 * 1024)
    return f"{os.cpu_count()} cores, {mem} GiB, {platform.system()} {platform.release()}"


if __name__ == "__main__":
    main()
