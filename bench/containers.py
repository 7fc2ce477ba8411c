"""Container start latency: shoal (conmon + runc create/start, wait, delete) vs bare `runc run`.

Each sample runs /bin/true from the same busybox bundle and waits for its exit:
  - shoal:      Runtime.run + wait (+ delete, reported separately and in total)
  - runc run:   `runc run` of the same config.json (foreground, deletes itself)
  - podman:     `podman run --rm` (rootfs imported as an image, explicit --ulimit values
                within this machine's hard limits), if podman is installed
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


async def bench_interleaved(root: Path, rootfs: Path, runs: int, parent: str) -> dict[str, list[float]]:
    """Alternate one bare `runc run` and one shoal run per round, so both see the same load."""
    rt = Runtime(root / "shoal", cgroup_parent=parent)
    bundle = root / "runc-bundle"
    bundle.mkdir()
    spec = oci_spec(ContainerIntent(id="bench-runc", rootfs=rootfs, command=["/bin/true"]), {}, cgroup_parent=parent)
    samples: dict[str, list[float]] = {"runc": [], "create": [], "start": [], "wait": [], "delete": []}
    try:
        for i in range(runs + 3):
            spec["linux"]["cgroupsPath"] = f"/{parent}/runc-{i}"
            (bundle / "config.json").write_text(json.dumps(spec))
            t0 = time.perf_counter()
            await asyncio.to_thread(
                subprocess.run, ["runc", "--root", str(root / "runc-state"), "run", "--bundle", str(bundle),
                                 f"runc-{i}"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=True)
            t1 = time.perf_counter()
            cid = await rt.create(ContainerIntent(id=f"bench-{i}", rootfs=rootfs, command=["/bin/true"]), {})
            t2 = time.perf_counter()
            await rt.start(cid)
            t3 = time.perf_counter()
            st = await rt.wait(cid)
            t4 = time.perf_counter()
            await rt.delete(cid)
            t5 = time.perf_counter()
            assert st.exit_code == 0, st
            if i >= 3:  # warm-up
                for key, value in zip(samples, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
                    samples[key].append(value)
    finally:
        await rt.cleanup_all()
    return samples


PODMAN_IMAGE = "localhost/shoal-bench-busybox"


def bench_podman(rootfs: Path, runs: int) -> list[float] | str:
    """`podman run --rm` of the same rootfs (imported as an image); a reason string if it cannot."""
    if not shutil.which("podman"):
        return "podman not installed"
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    imported = subprocess.run(["podman", "import", "-", PODMAN_IMAGE], stdin=tar.stdout, capture_output=True)
    tar.wait()
    if imported.returncode != 0:
        return f"podman import failed: {imported.stderr.decode().strip()}"
    # podman's default rlimits exceed this machine's hard limits (see machine-notes)
    argv = ["podman", "run", "--rm", "--network", "none", "--ulimit", "nofile=1024:1024",
            "--ulimit", "nproc=1000:1000", PODMAN_IMAGE, "/bin/true"]
    samples = []
    try:
        for i in range(runs + 3):
            t0 = time.perf_counter()
            res = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True)
            if res.returncode != 0:
                return f"podman run failed: {res.stderr.decode().strip()}"
            if i >= 3:
                samples.append(time.perf_counter() - t0)
    finally:
        subprocess.run(["podman", "rmi", "-f", PODMAN_IMAGE], capture_output=True)
    return samples


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
    parser.add_argument("--no-podman", action="store_true")
    opts = parser.parse_args()
    parent = f"shoal-bench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="shoal-bench-") as tmp:
        root = Path(tmp)
        rootfs = make_busybox_rootfs(root / "rootfs")
        try:
            samples = asyncio.run(bench_interleaved(root, rootfs, opts.runs, parent))
            podman = bench_podman(rootfs, opts.runs) if not opts.no_podman else "skipped (--no-podman)"
        finally:
            remove_cgroup_parent(parent)
    print(f"/bin/true, {opts.runs} runs each (after 3 warm-up), busybox rootfs, default seccomp and caps;"
          f" runc and shoal interleaved; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    runc_p50, runc_p99 = report("runc run (bare)", samples["runc"])
    run_wait = [a + b + c for a, b, c in zip(samples["create"], samples["start"], samples["wait"])]
    total = [a + b for a, b in zip(run_wait, samples["delete"])]
    shoal_p50, shoal_p99 = report("shoal create+start+wait", run_wait)
    total_p50, _ = report("shoal ... + delete", total)
    for key in ("create", "start", "wait", "delete"):
        report(f"  shoal {key}", samples[key])
    if isinstance(podman, str):
        print(f"{'podman run --rm':<28} {podman}")
    else:
        podman_p50, _ = report("podman run --rm", podman)
        print(f"ratio podman/runc p50: {podman_p50 / runc_p50:.2f}x")
    print(f"ratio shoal/runc: p50 {shoal_p50 / runc_p50:.2f}x (with delete {total_p50 / runc_p50:.2f}x),"
          f" p99 {shoal_p99 / runc_p99:.2f}x")


if __name__ == "__main__":
    main()
