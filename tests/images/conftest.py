"""Fixtures for the image layer: a store in tmp_path whose mounts are always removed,
and helpers that build layer tarballs (including hostile ones) in memory."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import pytest

from shoal.images import ImageStore, mediatypes
from shoal.images import mounts


@pytest.fixture
def store(tmp_path: Path):
    s = ImageStore(tmp_path / "images")
    try:
        yield s
    finally:
        try:
            s.snapshots.cleanup_all()
        finally:
            for point in sorted(mounts.mounts_under(tmp_path), key=len, reverse=True):
                subprocess.run(["umount", "-l", point], check=False)


@pytest.fixture
def busybox(store):
    return store.bootstrap_busybox("busybox")


def tar_entry(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", mode: int = 0o644,
              linkname: str = "", uid: int = 0, gid: int = 0, size: int | None = None,
              devmajor: int = 0, devminor: int = 0) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.linkname = kind, mode, linkname
    info.uid, info.gid, info.mtime = uid, gid, 1_700_000_000
    info.devmajor, info.devminor = devmajor, devminor
    info.size = len(data) if size is None else size
    return info, data


def layer_tar(entries) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            if info.type == tarfile.REGTYPE:
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return buf.getvalue()


def add_layer(store: ImageStore, raw: bytes, check_diff_id: bool = True) -> tuple[str, str, int, str]:
    import gzip

    from shoal.images.digests import sha256_digest
    digest = store.write_blob(raw)
    if raw[:2] == b"\x1f\x8b" and check_diff_id:
        return digest, sha256_digest(gzip.decompress(raw)), len(raw), mediatypes.OCI_LAYER_GZIP
    return digest, sha256_digest(raw), len(raw), mediatypes.OCI_LAYER_TAR


def image_from_layers(store: ImageStore, layers: list[bytes], ref: str = "localhost/test:latest",
                      check_diff_ids: bool = True):
    specs = [add_layer(store, raw, check_diff_ids) for raw in layers]
    config = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]}}
    return store.commit_image(config, specs, ref)
