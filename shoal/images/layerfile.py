"""Turning tar files into stored layers, and writing reproducible tars.

`store_layer_tar` is what the bootstrap commands (and the builder) use to add a layer:
it hashes the uncompressed tar (diff_id), optionally gzips it deterministically (no
name, mtime 0 in the gzip header) and stores the blob. `ReproducibleTar` writes entries
with fixed owner names and clamped mtimes; callers add entries in sorted order.
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

from shoal.images import mediatypes
from shoal.images.digests import file_digest

LayerSpec = tuple[str, str, int, str]


def store_layer_tar(store, tar_path: Path, compress: bool = True) -> LayerSpec:
    """Store `tar_path` as a layer blob; return (digest, diff_id, size, media_type)."""
    diff_id = file_digest(tar_path)
    if not compress:
        with open(tar_path, "rb") as f:
            digest = store.write_blob(f)
        return digest, diff_id, os.path.getsize(tar_path), mediatypes.OCI_LAYER_TAR
    fd, gz_name = tempfile.mkstemp(dir=store.paths.ingest, prefix="layer-gz-")
    try:
        with os.fdopen(fd, "wb") as raw, open(tar_path, "rb") as src:
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as gz:
                shutil.copyfileobj(src, gz, 1 << 20)
        with open(gz_name, "rb") as f:
            digest = store.write_blob(f)
        return digest, diff_id, os.path.getsize(gz_name), mediatypes.OCI_LAYER_GZIP
    finally:
        os.unlink(gz_name)


class ReproducibleTar:
    """A tar writer whose output depends only on what is added (root-owned, fixed mtime)."""

    def __init__(self, path: Path, mtime: int):
        self.mtime = mtime
        self._tar = tarfile.open(path, "w", format=tarfile.PAX_FORMAT)

    def _info(self, name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.mode = mode
        info.mtime = self.mtime
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        return info

    def add_dir(self, name: str, mode: int = 0o755) -> None:
        self._tar.addfile(self._info(name, tarfile.DIRTYPE, mode))

    def add_file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        info = self._info(name, tarfile.REGTYPE, mode)
        info.size = len(data)
        self._tar.addfile(info, io.BytesIO(data))

    def add_symlink(self, name: str, target: str) -> None:
        info = self._info(name, tarfile.SYMTYPE, 0o777)
        info.linkname = target
        self._tar.addfile(info)

    def close(self) -> None:
        self._tar.close()

    def __enter__(self) -> "ReproducibleTar":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
