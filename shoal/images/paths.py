"""The on-disk layout of the image store, in one place (like distribution's `paths`).

    <root>/oci-layout                  {"imageLayoutVersion": "1.0.0"}: the store is an OCI layout
    <root>/index.json                  OCI image index: one descriptor per (reference, manifest);
                                       the reference is in the `org.opencontainers.image.ref.name`
                                       annotation (full canonical form). Replaced atomically.
    <root>/index.lock                  flock(2) taken by writers of index.json (cross-process)
    <root>/blobs/sha256/<hex>          verified content, immutable, named by its digest
    <root>/ingest/<random>             downloads and writes in progress; never read as content
    <root>/layers/<diff-hex>/          an unpacked layer (overlay lower dir), complete or absent
    <root>/layers/.tmp-<random>/       an unpack in progress, renamed into place when complete
    <root>/snapshots/<key>/            one container's overlay:
        lower/<n> -> ../../../layers/<diff-hex>   short names keep the mount options small
        upper/ work/ rootfs/                      overlay upper, work and mount point
        snapshot.json                             image digest and layer diff_ids (for prune)

Nothing else in the package builds paths under the store root.
"""

from __future__ import annotations

from pathlib import Path

from shoal.images.digests import split_digest


class StorePaths:
    """Path arithmetic only; no I/O."""

    def __init__(self, root: Path):
        self.root = Path(root)

    @property
    def oci_layout(self) -> Path:
        return self.root / "oci-layout"

    @property
    def index(self) -> Path:
        return self.root / "index.json"

    @property
    def index_lock(self) -> Path:
        return self.root / "index.lock"

    @property
    def blobs(self) -> Path:
        return self.root / "blobs"

    def blob(self, digest: str) -> Path:
        algorithm, hexpart = split_digest(digest)
        return self.blobs / algorithm / hexpart

    @property
    def ingest(self) -> Path:
        return self.root / "ingest"

    @property
    def layers(self) -> Path:
        return self.root / "layers"

    def layer(self, diff_id: str) -> Path:
        _, hexpart = split_digest(diff_id)
        return self.layers / hexpart

    @property
    def snapshots(self) -> Path:
        return self.root / "snapshots"

    def snapshot(self, key: str) -> Path:
        return self.snapshots / key

    @staticmethod
    def snapshot_lower(snapshot_dir: Path, n: int) -> Path:
        return snapshot_dir / "lower" / str(n)

    @staticmethod
    def snapshot_lower_target(diff_id: str) -> str:
        """Relative symlink target from snapshots/<key>/lower/<n> to the layer dir."""
        _, hexpart = split_digest(diff_id)
        return f"../../../layers/{hexpart}"

    @staticmethod
    def snapshot_upper(snapshot_dir: Path) -> Path:
        return snapshot_dir / "upper"

    @staticmethod
    def snapshot_work(snapshot_dir: Path) -> Path:
        return snapshot_dir / "work"

    @staticmethod
    def snapshot_rootfs(snapshot_dir: Path) -> Path:
        return snapshot_dir / "rootfs"

    @staticmethod
    def snapshot_meta(snapshot_dir: Path) -> Path:
        return snapshot_dir / "snapshot.json"

    def all_dirs(self) -> list[Path]:
        return [self.root, self.blobs / "sha256", self.ingest, self.layers, self.snapshots]
