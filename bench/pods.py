"""Pod start-up latency and node agent memory.

    .venv/bin/python bench/pods.py [--sizes 1,10,50]

For each batch size N: create N busybox pods (bound to the node) at once through the
in-process API, and measure for each the time from its create call to the Ready
condition as the agent writes it (apply-to-Ready; the image is local, so no pull — the
Kubernetes SLO, p99 <= 5 s, excludes pulls too). Then delete the batch and wait until
every pod object is gone. Memory: RSS (and USS from smaps_rollup) of this process — API
store, agent and everything in-process — idle (after one warm-up pod that unpacks the
image layer, not counted) and with 50 pods running; containers and
their shims are separate processes and not counted.

Runs on its own state dir, bridge `shoalb<hex>`, pod CIDR 10.241.254.0/24, service CIDR
10.242.254.0/24, and tears everything down at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shoal.config import Settings  # noqa: E402


def memory_kib() -> tuple[int, int]:
    rss = uss = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    try:
        for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
            if line.startswith(("Private_Clean:", "Private_Dirty:")):
                uss += int(line.split()[1])
    except OSError:
        pass
    return rss, uss


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


async def run_batch(client, node_name: str, n: int, tag: str) -> list[float]:
    created: dict[str, float] = {}
    ready: dict[str, float] = {}
    names = [f"bench-{tag}-{i}" for i in range(n)]

    async def watch() -> None:
        async for ev in client.watch("pods", "default"):
            name = ev.object["metadata"]["name"]
            conds = (ev.object.get("status") or {}).get("conditions") or []
            if name in created and name not in ready and any(
                    c["type"] == "Ready" and c["status"] == "True" for c in conds):
                ready[name] = time.monotonic()
                if len(ready) == n:
                    return

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0.05)

    async def create(name: str) -> None:
        created[name] = time.monotonic()
        await client.create("pods", {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": node_name, "terminationGracePeriodSeconds": 1, "containers": [
                {"name": "main", "image": "busybox", "imagePullPolicy": "IfNotPresent",
                 "command": ["sleep", "3600"]}]}})

    await asyncio.gather(*(create(name) for name in names))
    await asyncio.wait_for(watcher, timeout=120)
    return [ready[name] - created[name] for name in names]


async def delete_batch(client, n: int, tag: str) -> None:
    from shoal.api import errors

    names = [f"bench-{tag}-{i}" for i in range(n)]
    await asyncio.gather(*(client.delete("pods", "default", name) for name in names))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        left = 0
        for name in names:
            try:
                await client.get("pods", "default", name)
                left += 1
            except errors.NotFound:
                pass
        if not left:
            return
        await asyncio.sleep(0.2)
    raise SystemExit(f"{left} pods of batch {tag} were not deleted in time")


async def main(sizes: list[int]) -> None:
    from shoal.apiserver.local import LocalClient
    from shoal.images import ImageStore
    from shoal.daemon import build_network, start_node
    from shoal.node import BackoffPolicy, build_runtime, teardown_node

    runtime_name = "shoal.runtime (runc + conmon)"
    tag = secrets.token_hex(2)
    with tempfile.TemporaryDirectory(prefix="shoal-bench-pods-") as tmp:
        settings = Settings(state_dir=Path(tmp) / "state", pod_cidr="10.241.254.0/24",
                            service_cidr="10.242.254.0/24", bridge=f"shoalb{tag}", chain_prefix=f"SHOALB{tag}",
                            dns_port=0)
        settings.state_dir.mkdir(parents=True)
        cgroup_parent = f"shoal-bench-{tag}"
        images = ImageStore(settings.images_dir)
        await asyncio.to_thread(images.bootstrap_busybox, "busybox")
        network = build_network(settings, netns_prefix=f"shoal-nb-{tag}-")
        runtime = build_runtime(settings, cgroup_parent)
        async with LocalClient.open(settings.store_path) as client:
            handle = None
            try:
                await network.setup_host()
                handle = await start_node(client, settings, network=network, runtime=runtime, images=images,
                                          backoff=BackoffPolicy(), resync_seconds=10.0)
                # warm-up: the first pod unpacks the image's layer (like a pull, which the
                # SLO excludes); it is not counted
                await run_batch(client, settings.node_name, 1, "warmup")
                await delete_batch(client, 1, "warmup")
                await asyncio.sleep(1)
                idle = memory_kib()
                print(f"runtime: {runtime_name}; host: {os.cpu_count()} cores")
                print(f"{'pods':>5} {'p50 (s)':>9} {'p99 (s)':>9} {'max (s)':>9}")
                with_50 = None
                for i, n in enumerate(sizes):
                    latencies = await run_batch(client, settings.node_name, n, f"{i}")
                    print(f"{n:>5} {statistics.median(latencies):>9.3f} {percentile(latencies, 99):>9.3f} "
                          f"{max(latencies):>9.3f}", flush=True)
                    if n == 50:
                        await asyncio.sleep(1)
                        with_50 = memory_kib()
                    await delete_batch(client, n, f"{i}")
                print(f"memory idle:         RSS {idle[0] / 1024:.1f} MiB, USS {idle[1] / 1024:.1f} MiB")
                if with_50:
                    print(f"memory with 50 pods: RSS {with_50[0] / 1024:.1f} MiB, USS {with_50[1] / 1024:.1f} MiB")
            finally:
                if handle is not None:
                    await handle.stop()
                await teardown_node(settings, network=network, runtime=runtime, images=images)
                await network.teardown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,10,50")
    args = parser.parse_args()
    asyncio.run(main([int(s) for s in args.sizes.split(",")]))
