"""Cold and warm builds of one Dockerfile with shoal and with buildah, in one run.

    .venv/bin/python bench/build.py [--base-archive debian-py.tar] [--keep DIR]

Both builders start from the same Debian 12 + python3-pip base (bootstrapped with
mmdebstrap unless --base-archive gives an oci-archive of it), already in their stores
and unpacked, so the timings are of the build itself:

- cold: empty build cache (RUN pip install from PyPI, COPY, RUN compileall);
- warm: the same build again, nothing changed (all cache hits);
- edit: app.py changed (the COPY and the step after it rerun).

Both RUN pip with the machine's pip configuration: shoal passes it itself (PIP_* env and
read-only binds of the local paths it names); buildah gets the same through `--env` and
`-v`. buildah runs with `--layers --runtime runc --network host` in its own --root under
the temp dir; if it is missing or cannot run, the shoal figures are printed and the
reason is given.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shoal.builder import Builder, BuildOptions, PlainProgress, pipconfig  # noqa: E402
from shoal.images import ImageStore, mounts  # noqa: E402
from shoal.runtime import Runtime  # noqa: E402

BASE = "localhost/debian-py:12"
DOCKERFILE = f"""\
FROM {BASE}
RUN pip install --break-system-packages --no-cache-dir six==1.17.0 idna
WORKDIR /app
COPY app.py ./
RUN python3 -m compileall -q /app
CMD ["python3", "/app/app.py"]
"""


def write_context(ctx: Path, version: int) -> None:
    ctx.mkdir(parents=True, exist_ok=True)
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    (ctx / "app.py").write_text(f"import six, idna\nprint('v{version}', six.__version__)\n")


async def shoal_builds(root: Path, ctx: Path, log) -> dict[str, float]:
    store = ImageStore(root / "images")
    runtime = Runtime(root / "containers", cgroup_parent="shoal-bench-build")
    builder = Builder(store, runtime, root / "cache", PlainProgress(log))
    base = store.resolve(BASE)
    await asyncio.to_thread(store.snapshots.prepare, "bench-warmup", base)  # unpack the base once
    await asyncio.to_thread(store.snapshots.remove, "bench-warmup")
    times = {}
    try:
        for label, version in (("cold", 1), ("warm", 1), ("edit", 2)):
            write_context(ctx, version)
            result = await builder.build(BuildOptions(context=ctx, tags=["localhost/bench:1"]))
            times[label] = result.seconds
            print(f"  shoal   {label}: {result.seconds:7.2f} s  ({result.layers_built} run, "
                  f"{result.cache_hits} cached)", flush=True)
    finally:
        await runtime.cleanup_all()
        store.snapshots.cleanup_all()
    return times


def buildah_builds(root: Path, archive: Path, ctx: Path) -> dict[str, float] | str:
    if shutil.which("buildah") is None:
        return "buildah is not installed (apt-get install buildah)"
    base = ["buildah", "--root", str(root / "root"), "--runroot", str(root / "run"), "--storage-driver", "overlay"]
    pull = subprocess.run(base + ["pull", "-q", f"oci-archive:{archive}"], capture_output=True, text=True)
    if pull.returncode != 0:
        return f"buildah pull failed: {pull.stderr.strip()[-300:]}"
    subprocess.run(base + ["tag", pull.stdout.strip().splitlines()[-1], BASE], check=True, capture_output=True)
    settings = pipconfig.pip_settings()
    pip = [f"--env={k}={v}" for k, v in pipconfig.pip_env(settings).items()]
    pip += [f"--volume={p}:{p}:ro" for p in pipconfig.pip_mounts(settings)]
    times = {}
    for label, version in (("cold", 1), ("warm", 1), ("edit", 2)):
        write_context(ctx, version)
        t0 = time.monotonic()
        proc = subprocess.run(base + ["build", "--layers", "--runtime", "runc", "--network", "host",
                                      "--isolation", "oci", *pip, "-q", "-t", "localhost/bench:1", str(ctx)],
                              capture_output=True, text=True)
        times[label] = time.monotonic() - t0
        if proc.returncode != 0:
            return f"buildah build failed: {proc.stderr.strip()[-300:]}"
        print(f"  buildah {label}: {times[label]:7.2f} s", flush=True)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-archive", type=Path, help="oci-archive of the Debian+pip base (skip bootstrap)")
    parser.add_argument("--keep", type=Path, help="work here and keep it (default: a temp dir, removed)")
    parser.add_argument("-v", "--verbose", action="store_true", help="show shoal's step output")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="shoal-bench-build-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        store = ImageStore(work / "shoal" / "images")
        archive = args.base_archive
        if archive:
            store.import_archive(archive, name=BASE)
        else:
            t0 = time.monotonic()
            store.bootstrap_debian(BASE, include=["python3", "python3-pip"])
            print(f"base bootstrap (mmdebstrap, not part of the comparison): {time.monotonic() - t0:.1f} s")
            archive = work / "base.tar"
            store.export(BASE, archive)
        log = sys.stderr if args.verbose else open("/dev/null", "w")
        print("builds of the same Dockerfile (pip install six+idna, COPY, compileall):")
        shoal = asyncio.run(shoal_builds(work / "shoal", work / "ctx-shoal", log))
        other = buildah_builds(work / "buildah", archive, work / "ctx-buildah")
        print()
        print(f"{'':8}{'shoal':>10}{'buildah':>10}{'ratio':>8}")
        for label in ("cold", "warm", "edit"):
            if isinstance(other, dict):
                print(f"{label:8}{shoal[label]:9.2f}s{other[label]:9.2f}s{shoal[label] / other[label]:8.2f}")
            else:
                print(f"{label:8}{shoal[label]:9.2f}s")
        print(f"shoal warm/cold: {shoal['warm'] / shoal['cold']:.3f}")
        if isinstance(other, str):
            print(f"buildah: not measured: {other}")
    finally:
        for point in sorted(mounts.mounts_under(work), key=len, reverse=True):
            subprocess.run(["umount", "-l", point], check=False)
        if not args.keep:
            if shutil.which("buildah"):
                subprocess.run(["buildah", "--root", str(work / "buildah" / "root"), "--runroot",
                                str(work / "buildah" / "run"), "rm", "--all"], capture_output=True)
                for point in sorted(mounts.mounts_under(work), key=len, reverse=True):
                    subprocess.run(["umount", "-l", point], check=False)
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
