"""Safe layer unpack: one layer tarball -> one directory usable as an overlayfs lower dir.

Policy (each violation raises `UnsafeLayer` naming the member, and the caller throws the
whole directory away, so a rejected layer leaves nothing behind):

- member names are relative: absolute paths and `..` components are refused;
- nothing is ever written *through* a symlink: every parent directory of a member is
  checked with lstat, and a parent that is a symlink (or not a directory) is refused.
  Files are created with O_NOFOLLOW|O_EXCL after removing what was there;
- relative symlink targets must stay inside the layer root (checked lexically).
  Absolute targets are kept: they are resolved inside the container's root at run time,
  never on the host, and Debian images are full of them (/etc/localtime, alternatives);
- hard links must name a file already unpacked from this same layer (normalized the same
  way); they are made with link(2) without following symlinks;
- a member whose header claims more bytes than the archive holds is refused (no
  preallocated giant files, no silent truncation);
- device nodes are skipped (counted in the result); FIFOs are created;
- ownership (numeric uid/gid), permission bits incl. setuid/setgid/sticky, mtimes, and the
  `security.capability` / `user.*` xattrs are kept; other xattrs (notably
  `trusted.overlay.*`, which could redirect overlay lookups) are dropped;
- whiteouts become overlayfs whiteouts: `.wh.NAME` -> a 0:0 character device NAME,
  `.wh..wh..opq` -> xattr trusted.overlay.opaque=y on its directory.

The uncompressed stream is hashed while read, so the result carries the layer's diff_id,
which is checked against the expected one. Compression is detected from magic bytes.

Pure with respect to the store: this module knows nothing of paths.py; it writes only
under the `dest` it is given. Not thread-safe per `dest`; different dests are independent.
"""

from __future__ import annotations

import dataclasses
import errno
import gzip
import os
import shutil
import stat
import tarfile
from pathlib import Path
from typing import BinaryIO

from shoal.images.digests import HashingReader, check_digest
from shoal.images.errors import ManifestError, UnsafeLayer

CHUNK = 1 << 20
WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"
KEPT_XATTR_PREFIXES = ("security.capability", "user.")


@dataclasses.dataclass
class UnpackResult:
    diff_id: str
    files: int = 0
    bytes: int = 0
    whiteouts: int = 0
    opaque_dirs: int = 0
    skipped_devices: list[str] = dataclasses.field(default_factory=list)


def open_decompressed(raw: BinaryIO) -> BinaryIO:
    """Wrap `raw` (positioned at 0) in the decompressor its magic bytes call for."""
    head = raw.read(4)
    raw.seek(0)
    if head[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    if head == b"\x28\xb5\x2f\xfd":
        try:
            import zstandard  # type: ignore[import-not-found]
        except ImportError:
            raise ManifestError("zstd-compressed layers need the 'zstandard' module") from None
        return zstandard.ZstdDecompressor().stream_reader(raw)  # type: ignore[no-any-return]
    return raw


def clean_member_name(name: str, what: str = "member") -> tuple[str, ...]:
    """Split a tar member name into safe components; refuse absolute paths and `..`."""
    if name.startswith("/"):
        raise UnsafeLayer(f"layer {what} {name!r}: absolute path")
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts:
        raise UnsafeLayer(f"layer {what} {name!r}: path contains '..'")
    if any("\x00" in p for p in parts):
        raise UnsafeLayer(f"layer {what} {name!r}: NUL byte in path")
    return parts


def symlink_escapes(parts: tuple[str, ...], target: str) -> bool:
    """Whether a relative symlink at `parts` pointing at `target` climbs above the root."""
    if target.startswith("/"):
        return False
    depth = len(parts) - 1
    for comp in target.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            depth -= 1
            if depth < 0:
                return True
        else:
            depth += 1
    return False


class _Unpacker:
    def __init__(self, dest: Path):
        self.dest = str(dest)
        self.safe_dirs: set[tuple[str, ...]] = {()}
        self.dir_meta: list[tuple[str, tarfile.TarInfo]] = []

    # -- path safety -------------------------------------------------------------------

    def _path(self, parts: tuple[str, ...]) -> str:
        return os.path.join(self.dest, *parts) if parts else self.dest

    def ensure_parent(self, parts: tuple[str, ...], name: str) -> str:
        """Create/verify the parent dirs of `parts` without following symlinks."""
        for i in range(1, len(parts)):
            prefix = parts[:i]
            if prefix in self.safe_dirs:
                continue
            path = self._path(prefix)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                os.mkdir(path, 0o755)
            else:
                if stat.S_ISLNK(st.st_mode):
                    raise UnsafeLayer(
                        f"layer member {name!r}: parent {'/'.join(prefix)!r} is a symlink; "
                        "refusing to write through it"
                    )
                if not stat.S_ISDIR(st.st_mode):
                    raise UnsafeLayer(f"layer member {name!r}: parent {'/'.join(prefix)!r} is not a directory")
            self.safe_dirs.add(prefix)
        return self._path(parts)

    def clear(self, path: str, keep_dir: bool) -> bool:
        """Remove what is at `path` (never following a symlink). True if a dir was kept."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(st.st_mode):
            if keep_dir:
                return True
            shutil.rmtree(path)
            self.safe_dirs = {()}  # a replaced dir invalidates the cache below it
        else:
            os.unlink(path)
        return False

    # -- members -----------------------------------------------------------------------

    def member(self, tar: tarfile.TarFile, m: tarfile.TarInfo, result: UnpackResult) -> None:
        parts = clean_member_name(m.name)
        if not parts:
            if m.isdir():
                self.dir_meta.append((self.dest, m))
            return
        base = parts[-1]
        if base.startswith(WHITEOUT_PREFIX):
            self.whiteout(parts, m, result)
            return
        path = self.ensure_parent(parts, m.name)
        if m.isdir():
            if not self.clear(path, keep_dir=True):
                os.mkdir(path, 0o700)
            self.safe_dirs.add(parts)
            self.dir_meta.append((path, m))
            return
        self.clear(path, keep_dir=False)
        self.safe_dirs.discard(parts)
        if m.isreg():
            self.regular(tar, m, path, result)
        elif m.issym():
            if symlink_escapes(parts, m.linkname):
                raise UnsafeLayer(
                    f"layer member {m.name!r}: symlink to {m.linkname!r} points outside the layer"
                )
            os.symlink(m.linkname, path)
            self.attrs(path, m, symlink=True)
        elif m.islnk():
            self.hardlink(m, path)
        elif m.ischr() or m.isblk():
            result.skipped_devices.append(m.name)
            return
        elif m.isfifo():
            os.mkfifo(path, 0o600)
            self.attrs(path, m)
        else:
            raise UnsafeLayer(f"layer member {m.name!r}: unsupported tar entry type {m.type!r}")
        result.files += 1

    def whiteout(self, parts: tuple[str, ...], m: tarfile.TarInfo, result: UnpackResult) -> None:
        base = parts[-1]
        parent_parts = parts[:-1]
        if base == OPAQUE_MARKER:
            self.ensure_parent(parts, m.name)
            parent = self._path(parent_parts)
            os.setxattr(parent, OVERLAY_OPAQUE_XATTR, b"y", follow_symlinks=False)
            result.opaque_dirs += 1
            return
        if base.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX):
            return  # other aufs metadata (.wh..wh.plnk etc.): not content
        real = base[len(WHITEOUT_PREFIX):]
        if real in ("", ".", ".."):
            raise UnsafeLayer(f"layer member {m.name!r}: malformed whiteout")
        path = self.ensure_parent(parent_parts + (real,), m.name)
        self.clear(path, keep_dir=False)
        os.mknod(path, stat.S_IFCHR | 0o000, os.makedev(0, 0))
        result.whiteouts += 1

    def regular(self, tar: tarfile.TarFile, m: tarfile.TarInfo, path: str, result: UnpackResult) -> None:
        src = tar.extractfile(m)
        assert src is not None
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        remaining = m.size
        try:
            while remaining > 0:
                try:
                    block = src.read(min(CHUNK, remaining))
                except (tarfile.ReadError, EOFError, OSError) as exc:
                    raise UnsafeLayer(
                        f"layer member {m.name!r}: claims {m.size} bytes but the archive ends early ({exc})"
                    ) from None
                if not block:
                    raise UnsafeLayer(
                        f"layer member {m.name!r}: claims {m.size} bytes but the archive holds "
                        f"only {m.size - remaining}"
                    )
                os.write(fd, block)
                remaining -= len(block)
            result.bytes += m.size
            os.fchown(fd, m.uid, m.gid)
            os.fchmod(fd, m.mode & 0o7777)
        finally:
            os.close(fd)
        self.xattrs(path, m)
        os.utime(path, (m.mtime, m.mtime), follow_symlinks=False)

    def hardlink(self, m: tarfile.TarInfo, path: str) -> None:
        target_parts = clean_member_name(m.linkname, what=f"hard link target of {m.name!r}")
        if not target_parts:
            raise UnsafeLayer(f"layer member {m.name!r}: hard link to the layer root")
        target = self.ensure_parent(target_parts, m.name)
        try:
            st = os.lstat(target)
        except FileNotFoundError:
            raise UnsafeLayer(
                f"layer member {m.name!r}: hard link to {m.linkname!r}, which is not in this layer"
            ) from None
        if stat.S_ISDIR(st.st_mode) or stat.S_ISCHR(st.st_mode):
            raise UnsafeLayer(f"layer member {m.name!r}: hard link to a directory or device")
        os.link(target, path, follow_symlinks=False)

    def attrs(self, path: str, m: tarfile.TarInfo, symlink: bool = False) -> None:
        os.lchown(path, m.uid, m.gid)
        if not symlink:
            os.chmod(path, m.mode & 0o7777)
            self.xattrs(path, m)
        os.utime(path, (m.mtime, m.mtime), follow_symlinks=False)

    def xattrs(self, path: str, m: tarfile.TarInfo) -> None:
        for key, value in (m.pax_headers or {}).items():
            if not key.startswith("SCHILY.xattr."):
                continue
            name = key[len("SCHILY.xattr."):]
            if not name.startswith(KEPT_XATTR_PREFIXES):
                continue
            raw = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
            try:
                os.setxattr(path, name, raw, follow_symlinks=False)
            except OSError as exc:
                if exc.errno not in (errno.ENOTSUP, errno.EPERM):
                    raise

    def finish(self) -> None:
        # Deepest first, so setting a parent's mtime is not undone by its children.
        for path, m in reversed(self.dir_meta):
            os.lchown(path, m.uid, m.gid)
            os.chmod(path, m.mode & 0o7777)
            self.xattrs(path, m)
            os.utime(path, (m.mtime, m.mtime), follow_symlinks=False)


def unpack_layer(blob: Path, dest: Path, expected_diff_id: str | None = None) -> UnpackResult:
    """Unpack the layer file `blob` into the existing empty directory `dest`.

    Raises UnsafeLayer (hostile or truncated content), DigestMismatch (diff_id differs).
    On error `dest` is left partly written; the caller owns deleting it.
    """
    unpacker = _Unpacker(dest)
    with open(blob, "rb") as raw:
        reader = HashingReader(open_decompressed(raw))
        result = UnpackResult(diff_id="")
        try:
            with tarfile.open(fileobj=reader, mode="r|", errorlevel=2) as tar:  # type: ignore[call-overload]
                for member in tar:
                    unpacker.member(tar, member, result)
            reader.drain()
        except UnsafeLayer:
            raise
        except (tarfile.TarError, EOFError, gzip.BadGzipFile, OSError) as exc:
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise
            raise UnsafeLayer(f"layer {blob.name}: not a readable tar stream: {exc}") from None
    unpacker.finish()
    result.diff_id = reader.digest
    check_digest(result.diff_id, expected_diff_id, f"layer {blob.name} (uncompressed)")
    return result
