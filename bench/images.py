"""Benchmark of shoal.images: pull and unpack throughput against skopeo + umoci.

    .venv/bin/python bench/images.py [--image debian|busybox] [--runs 3] [--json]

One run, same machine, same image, same local registry (Debian's docker-registry on
127.0.0.1, plain HTTP, seeded by `skopeo copy` from our own oci-archive export):

1. shoal: `pull()` into an empty store (registry -> verified blobs), then
   `snapshots.prepare()` (safe unpack of every layer into the layer store + syncfs +
   overlay mount), timed separately.
2. peers: `skopeo copy docker://... oci:DIR:tag` (registry -> OCI layout), then
   `umoci unpack --image DIR:tag BUNDLE` (layout -> rootfs), timed separately.

Each phase starts from an empty destination; median of --runs. Sizes: the blob bytes
transferred (pull) and the image's uncompressed layer bytes (unpack). The Debian image
(mmdebstrap --variant=essential --include=python3-minimal bookworm) is built first.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shoal.images import ImageStore  # noqa: E402
from shoal.images.registry import pull  # noqa: E402
from tests.images.registry_fixtures import Registry  # noqa: E402


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", choices=["debian", "busybox"], default="debian")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="shoal-bench-images-"))
    results: dict[str, object] = {"image": args.image, "runs": args.runs}
    registry = None
    stores: list[ImageStore] = []
    try:
        source = ImageStore(work / "source")
        stores.append(source)
        start = time.perf_counter()
        if args.image == "debian":
            img = source.bootstrap_debian("localhost/bench:1", include=["python3-minimal"])
        else:
            img = source.bootstrap_busybox("localhost/bench:1")
        results["bootstrap_s"] = round(time.perf_counter() - start, 2)
        blob_bytes = img.size + len(source.content.read_bytes(img.id))
        archive = work / "bench.oci.tar"
        source.export("localhost/bench:1", archive)
        registry = Registry(work / "registry")
        registry.seed(archive, "bench/image:1")
        ref = f"{registry.host}/bench/image:1"

        shoal_pull, shoal_unpack, skopeo_copy, umoci_unpack = [], [], [], []
        unpacked_bytes = 0
        for n in range(args.runs):
            store = ImageStore(work / f"pull-{n}")
            stores.append(store)
            shoal_pull.append(timed(lambda: asyncio.run(pull(store, ref, insecure=True))))
            image = store.resolve(ref)
            shoal_unpack.append(timed(lambda: store.snapshots.prepare("bench", image)))
            unpacked_bytes = sum(
                int(subprocess.run(["du", "-sb", str(store.layer_store.path(d))], capture_output=True,
                                   text=True).stdout.split()[0]) for d in image.diff_ids)
            store.snapshots.cleanup_all()

            layout = work / f"oci-{n}"
            skopeo_copy.append(timed(lambda: run("skopeo", "copy", "--quiet", "--src-tls-verify=false",
                                                  f"docker://{ref}", f"oci:{layout}:bench")))
            bundle = work / f"bundle-{n}"
            umoci_unpack.append(timed(lambda: run("umoci", "unpack", "--image", f"{layout}:bench", str(bundle))))
            shutil.rmtree(bundle, ignore_errors=True)

        def summary(samples: list[float], size: int) -> dict:
            med = statistics.median(samples)
            return {"median_s": round(med, 3), "MB_per_s": round(size / med / 1e6, 1),
                    "samples_s": [round(s, 3) for s in samples]}

        results.update({
            "blob_bytes": blob_bytes, "unpacked_bytes": unpacked_bytes,
            "shoal_pull": summary(shoal_pull, blob_bytes),
            "skopeo_copy": summary(skopeo_copy, blob_bytes),
            "shoal_unpack": summary(shoal_unpack, unpacked_bytes),
            "umoci_unpack": summary(umoci_unpack, unpacked_bytes),
        })
    finally:
        for s in stores:
            s.snapshots.cleanup_all()
        if registry:
            registry.close()
        shutil.rmtree(work, ignore_errors=True)

    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"image {args.image}: {results['blob_bytes'] / 1e6:.1f} MB of blobs, "
          f"{results['unpacked_bytes'] / 1e6:.1f} MB unpacked; bootstrap {results['bootstrap_s']} s")
    for key in ("shoal_pull", "skopeo_copy", "shoal_unpack", "umoci_unpack"):
        r = results[key]
        print(f"  {key:<13} median {r['median_s']:>7.3f} s  {r['MB_per_s']:>7.1f} MB/s  {r['samples_s']}")


if __name__ == "__main__":
    main()
