"""Content-addressable blob store: `blobs/sha256/<hex>`, verified on write.

Every write goes to a private file under `ingest/`, is hashed (and size-checked) while
written, fsync'd, and renamed into `blobs/` only when the digest matches. So a blob path
that exists is always complete and correct; an interrupted download or a crash leaves at
most a stray ingest file, which `prune` deletes. Blobs are immutable; two writers of the
same digest race harmlessly (the rename is atomic and both contents are equal).

Concurrency: any number of threads and processes may read and write at once.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator

from shoal.images.digests import check_digest, validate_digest
from shoal.images.errors import BlobNotFound, DigestMismatch
from shoal.images.paths import StorePaths

CHUNK = 1 << 20


class BlobWriter:
    """An ingest in progress. `write()` chunks, then `commit()` verifies and publishes.

    Use as a context manager: leaving without `commit()` (or with an exception) deletes
    the partial file, so half a blob is never visible.
    """

    def __init__(self, paths: StorePaths, expected_digest: str | None, expected_size: int | None):
        if expected_digest is not None:
            validate_digest(expected_digest)
        self._paths = paths
        self.expected_digest = expected_digest
        self.expected_size = expected_size
        fd, name = tempfile.mkstemp(dir=paths.ingest, prefix="blob-")
        self._file = os.fdopen(fd, "wb")
        self._tmp = Path(name)
        self._hash = hashlib.sha256()
        self.size = 0
        self.digest: str | None = None

    def write(self, data: bytes) -> None:
        if self.expected_size is not None and self.size + len(data) > self.expected_size:
            raise DigestMismatch(
                f"blob {self.expected_digest}: more than the expected {self.expected_size} bytes"
            )
        self._file.write(data)
        self._hash.update(data)
        self.size += len(data)

    def reset(self) -> None:
        """Forget what was written (a server ignored a Range request and restarts)."""
        self._file.seek(0)
        self._file.truncate()
        self._hash = hashlib.sha256()
        self.size = 0

    def commit(self) -> str:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        digest = "sha256:" + self._hash.hexdigest()
        what = f"blob {self.expected_digest or digest}"
        if self.expected_size is not None and self.size != self.expected_size:
            raise DigestMismatch(f"{what}: got {self.size} bytes, expected {self.expected_size}")
        check_digest(digest, self.expected_digest, what)
        target = self._paths.blob(digest)
        os.chmod(self._tmp, 0o644)
        os.replace(self._tmp, target)
        self.digest = digest
        return digest

    def abort(self) -> None:
        if not self._file.closed:
            self._file.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> "BlobWriter":
        return self

    def __exit__(self, *exc) -> None:
        if self.digest is None:
            self.abort()


class ContentStore:
    """Blobs by digest. Thread- and process-safe (see module docstring)."""

    def __init__(self, paths: StorePaths):
        self.paths = paths

    def writer(self, expected_digest: str | None = None, expected_size: int | None = None) -> BlobWriter:
        return BlobWriter(self.paths, expected_digest, expected_size)

    def write(self, data: bytes | BinaryIO, expected_digest: str | None = None,
              expected_size: int | None = None) -> str:
        """Store bytes or a readable stream; return its digest. DigestMismatch if wrong."""
        if expected_digest is not None and self.has(expected_digest):
            # Still consume/verify nothing: the stored copy was verified when written.
            return expected_digest
        stream = io.BytesIO(data) if isinstance(data, (bytes, bytearray, memoryview)) else data
        with self.writer(expected_digest, expected_size) as w:
            while block := stream.read(CHUNK):
                w.write(block)
            return w.commit()

    def has(self, digest: str) -> bool:
        return self.paths.blob(digest).is_file()

    def path(self, digest: str) -> Path:
        p = self.paths.blob(digest)
        if not p.is_file():
            raise BlobNotFound(f"blob {digest}: not in the content store")
        return p

    def read_bytes(self, digest: str) -> bytes:
        """Small blobs (manifests, configs), re-verified on read."""
        data = self.path(digest).read_bytes()
        check_digest("sha256:" + hashlib.sha256(data).hexdigest(), digest, f"stored blob {digest}")
        return data

    def size(self, digest: str) -> int:
        return self.path(digest).stat().st_size

    def delete(self, digest: str) -> int:
        p = self.paths.blob(digest)
        try:
            size = p.stat().st_size
            p.unlink()
            return size
        except FileNotFoundError:
            return 0

    def digests(self) -> Iterator[str]:
        base = self.paths.blobs / "sha256"
        for entry in os.scandir(base):
            if entry.is_file() and len(entry.name) == 64:
                yield "sha256:" + entry.name
