"""Overlay snapshots: one writable overlayfs mount per container key.

    prepare(key, image) -> snapshots/<key>/rootfs   lower = the image's unpacked layers
    diff(key)           -> snapshots/<key>/upper    what the container changed
    remove(key)                                      unmount, delete upper/work
    cleanup_all()                                    every mount under snapshots/

Layers are unpacked on demand through the LayerStore (once per diff_id, shared read-only
by all snapshots). The lower dirs are reached through short relative symlinks
`lower/<n>`, so option length stays small (see mounts.py).

Concurrency: every operation on a key holds a per-key thread lock plus an flock on
`snapshots/<key>.lock`, so the runtime, the builder and the CLI can race safely.
All methods block (mount, unpack); asyncio callers use `asyncio.to_thread`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import threading
from pathlib import Path
from typing import Iterator, Protocol, Sequence

from shoal.images import mounts
from shoal.images.errors import SnapshotError
from shoal.images.layers import LayerStore
from shoal.images.paths import StorePaths

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class LayeredImage(Protocol):
    digest: str
    layers: Sequence[str]
    diff_ids: Sequence[str]


def validate_key(key: str) -> str:
    if not isinstance(key, str) or not _KEY.match(key):
        raise SnapshotError(f"snapshot key {key!r}: expected [A-Za-z0-9][A-Za-z0-9_.-]{{0,127}}")
    return key


class Snapshots:
    def __init__(self, paths: StorePaths, layers: LayerStore):
        self.paths = paths
        self.layers = layers
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    @contextlib.contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        with self._locks_guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            fd = os.open(self.paths.snapshots / f"{key}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)

    def prepare(self, key: str, image: LayeredImage) -> Path:
        """Mount (or return the existing mount of) a writable rootfs for `key`."""
        validate_key(key)
        if len(image.layers) != len(image.diff_ids):
            raise SnapshotError(f"image {image.digest}: {len(image.layers)} layers but {len(image.diff_ids)} diff_ids")
        with self._locked(key):
            snap = self.paths.snapshot(key)
            rootfs = StorePaths.snapshot_rootfs(snap)
            meta_path = StorePaths.snapshot_meta(snap)
            if mounts.is_mounted(rootfs):
                meta = json.loads(meta_path.read_text())
                if meta.get("image") != image.digest:
                    raise SnapshotError(
                        f"snapshot {key!r}: already mounted from image {meta.get('image')}, not {image.digest}"
                    )
                return rootfs
            if meta_path.exists():  # left from before a restart: keep its upper dir
                previous = json.loads(meta_path.read_text()).get("image")
                if previous != image.digest:
                    raise SnapshotError(
                        f"snapshot {key!r}: exists for image {previous}, not {image.digest}; remove it first"
                    )
            for digest, diff_id in zip(image.layers, image.diff_ids):
                self.layers.ensure(digest, diff_id)
            lower_dir = snap / "lower"
            if lower_dir.exists():
                shutil.rmtree(lower_dir)
            lower_dir.mkdir(parents=True)
            lowers: list[str] = []
            for n, diff_id in enumerate(image.diff_ids):
                os.symlink(StorePaths.snapshot_lower_target(diff_id), StorePaths.snapshot_lower(snap, n))
                lowers.insert(0, f"lower/{n}")  # overlayfs wants the top-most first
            if not lowers:
                (lower_dir / "empty").mkdir()
                lowers = ["lower/empty"]
            for d in (StorePaths.snapshot_upper(snap), StorePaths.snapshot_work(snap), rootfs):
                d.mkdir(exist_ok=True)
            os.chmod(StorePaths.snapshot_upper(snap), 0o755)
            meta_path.write_text(json.dumps({"image": image.digest, "diff_ids": list(image.diff_ids)}))
            mounts.mount_overlay(snap, lowers, "upper", "work", "rootfs")
            return rootfs

    def remove(self, key: str) -> None:
        """Unmount and delete the snapshot; a missing snapshot is not an error."""
        validate_key(key)
        with self._locked(key):
            snap = self.paths.snapshot(key)
            for point in sorted(mounts.mounts_under(snap), key=len, reverse=True):
                mounts.unmount(Path(point))
            if snap.exists():
                shutil.rmtree(snap)
        (self.paths.snapshots / f"{key}.lock").unlink(missing_ok=True)

    def diff(self, key: str) -> Path:
        validate_key(key)
        upper = StorePaths.snapshot_upper(self.paths.snapshot(key))
        if not upper.is_dir():
            raise SnapshotError(f"snapshot {key!r}: does not exist")
        return upper

    def rootfs(self, key: str) -> Path:
        return StorePaths.snapshot_rootfs(self.paths.snapshot(validate_key(key)))

    def list(self) -> list[str]:
        return sorted(e.name for e in os.scandir(self.paths.snapshots)
                      if e.is_dir(follow_symlinks=False) and _KEY.match(e.name))

    def diff_ids_in_use(self) -> set[str]:
        used: set[str] = set()
        for key in self.list():
            try:
                meta = json.loads(StorePaths.snapshot_meta(self.paths.snapshot(key)).read_text())
            except (OSError, ValueError):
                continue
            used.update(meta.get("diff_ids", []))
        return used

    def cleanup_all(self, delete: bool = True) -> None:
        """Unmount every snapshot of this store (used by `shoal down`); with
        delete=False the upper dirs are kept, so `prepare` of the same key and image
        later remounts the container's files."""
        for key in self.list():
            if delete:
                self.remove(key)
            else:
                with self._locked(key):
                    for point in sorted(mounts.mounts_under(self.paths.snapshot(key)), key=len, reverse=True):
                        mounts.unmount(Path(point))
        for point in sorted(mounts.mounts_under(self.paths.snapshots), key=len, reverse=True):
            mounts.unmount(Path(point))
