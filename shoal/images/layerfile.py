"""Turning tar files into stored layers, and writing reproducible tars.

`store_layer_tar` is what the bootstrap commands (and the builder) use to add a layer:
(`write_diff_tar` turns a snapshot's overlay upper dir into such a tar first)
it hashes the uncompressed tar (diff_id), optionally gzips it deterministically (no
name, mtime 0 in the gzip header) and stores the blob. `ReproducibleTar` writes entries
with fixed owner names and clamped mtimes; callers add entries in sorted order.
"""

from __future__ import annotations

import gzip
import io
import os
import posixpath
import shutil
import stat
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


def write_diff_tar(upper: Path, out: Path, epoch: int | None = None) -> None:
    """Tar an overlayfs upper dir as an OCI layer (for the builder and `commit`).

    overlay whiteouts (0:0 character devices) become `.wh.NAME` entries, opaque
    directories (xattr trusted.overlay.opaque=y) get a `.wh..wh..opq` entry; other
    device nodes and sockets are left out. Entries are sorted by path, owner names are
    dropped (numeric ids only), mtimes are clamped to `epoch` when given, hard links
    inside the diff stay hard links, and `security.capability` is kept.
    """
    upper = Path(upper)
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:

        def clamp(info: tarfile.TarInfo) -> tarfile.TarInfo:
            info.uname = info.gname = ""
            if epoch is not None and info.mtime > epoch:
                info.mtime = epoch
            return info

        def marker(name: str, mtime: float) -> None:
            info = tarfile.TarInfo(name)
            info.mtime = int(mtime)
            tar.addfile(clamp(info))

        for dirpath, dirnames, filenames in os.walk(upper):
            dirnames.sort()
            rel_dir = os.path.relpath(dirpath, upper)
            for name in sorted(dirnames + filenames):
                path = os.path.join(dirpath, name)
                arcname = name if rel_dir == "." else f"{rel_dir}/{name}"
                st = os.lstat(path)
                if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                    marker(posixpath.join(posixpath.dirname(arcname), ".wh." + name), st.st_mtime)
                    continue
                if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)
                        or stat.S_ISFIFO(st.st_mode)):
                    continue
                info = clamp(tar.gettarinfo(path, arcname))
                try:
                    cap = os.getxattr(path, "security.capability", follow_symlinks=False)
                    info.pax_headers["SCHILY.xattr.security.capability"] = cap.decode("utf-8", "surrogateescape")
                except OSError:
                    pass
                if info.isreg():
                    with open(path, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
                if stat.S_ISDIR(st.st_mode):
                    try:
                        opaque = os.getxattr(path, "trusted.overlay.opaque", follow_symlinks=False)
                    except OSError:
                        opaque = b""
                    if opaque == b"y":
                        marker(f"{arcname}/.wh..wh..opq", st.st_mtime)
