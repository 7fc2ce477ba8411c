"""Digest strings (`sha256:<64 hex>`) and hashing readers. Pure, no store I/O.

Only sha256 is accepted: it is what every registry and OCI tool writes, and a single
algorithm keeps blob paths unambiguous.
"""

from __future__ import annotations

import hashlib
import re
from typing import BinaryIO

from shoal.images.errors import DigestMismatch, InvalidDigest

_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")


def validate_digest(digest: str) -> str:
    """Return `digest` if it is `sha256:<64 lowercase hex>`, else raise InvalidDigest."""
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        raise InvalidDigest(f"digest {digest!r}: expected 'sha256:' and 64 lowercase hex digits")
    return digest


def split_digest(digest: str) -> tuple[str, str]:
    validate_digest(digest)
    algorithm, _, hexpart = digest.partition(":")
    return algorithm, hexpart


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def file_digest(path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return "sha256:" + h.hexdigest()


class HashingReader:
    """A file-like reader that hashes and counts everything read through it."""

    def __init__(self, raw: BinaryIO):
        self._raw = raw
        self._hash = hashlib.sha256()
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self._hash.update(data)
        self.count += len(data)
        return data

    def drain(self, chunk: int = 1 << 20) -> None:
        """Read to EOF (tar padding after the end-of-archive marker is part of the digest)."""
        while self.read(chunk):
            pass

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()


def check_digest(actual: str, expected: str | None, what: str) -> None:
    if expected is not None and actual != expected:
        raise DigestMismatch(f"{what}: content hashes to {actual}, expected {expected}")
