"""Content store and image index: verified writes, resolve, tag, rm, prune."""

import hashlib
import os

import pytest

from shoal.images import BlobNotFound, DigestMismatch, ImageNotFound, ImageStore, InvalidDigest

from .conftest import image_from_layers, layer_tar, tar_entry


def test_blob_write_verifies_digest_and_leaves_nothing_on_mismatch(store):
    data = b"hello layer"
    good = "sha256:" + hashlib.sha256(data).hexdigest()
    wrong = "sha256:" + hashlib.sha256(b"other").hexdigest()
    with pytest.raises(DigestMismatch, match=wrong):
        store.write_blob(data, expected_digest=wrong)
    assert not store.content.has(wrong) and not store.content.has(good)
    assert os.listdir(store.paths.ingest) == []
    with pytest.raises(DigestMismatch, match="expected 5"):
        store.write_blob(data, expected_digest=good, expected_size=5)
    assert store.write_blob(data, expected_digest=good) == good
    assert store.blob_path(good).read_bytes() == data
    with pytest.raises(InvalidDigest):
        store.write_blob(data, expected_digest="md5:abc")
    with pytest.raises(BlobNotFound):
        store.blob_path(wrong)


def test_commit_resolve_tag_remove_prune(store, tmp_path):
    raw = layer_tar([tar_entry("hello.txt", data=b"hi")])
    img = image_from_layers(store, [raw], "localhost/app:v1")
    assert img.references == ("localhost/app:v1",)
    assert img.config == {"Cmd": ["sh"]}
    assert img.layers == img.diff_ids  # uncompressed layer: digest is the diff_id
    for key in ("localhost/app:v1", img.digest, img.id, img.id.split(":")[1][:12]):
        assert store.resolve(key).digest == img.digest
    store.tag("localhost/app:v1", "localhost/app:v2")
    assert set(store.resolve("localhost/app:v2").references) == {"localhost/app:v1", "localhost/app:v2"}
    assert store.resolve(f"localhost/app@{img.digest}").digest == img.digest
    # a second store on the same root (another process) sees the same images
    assert [i.digest for i in ImageStore(store.root).list()] == [img.digest]
    assert store.remove("localhost/app:v1") == ["localhost/app:v1"]
    assert store.prune() == 0  # still tagged as v2
    assert store.remove(img.digest) == ["localhost/app:v2"]
    with pytest.raises(ImageNotFound):
        store.resolve("localhost/app:v2")
    freed = store.prune()
    assert freed >= len(raw)
    assert list(store.content.digests()) == []


def test_prune_keeps_layers_of_live_snapshots(store, busybox):
    store.snapshots.prepare("keep", busybox)
    store.remove("busybox")
    store.prune()
    assert store.layer_store.has(busybox.diff_ids[0])
    assert (store.snapshots.rootfs("keep") / "bin/busybox").exists()


def test_prune_removes_leftovers_of_a_crash(store, busybox):
    """A crash mid-download or mid-unpack leaves only ingest/ and layers/.tmp-* entries,
    which are never taken for content and which prune deletes."""
    (store.paths.ingest / "blob-partial").write_bytes(b"x" * 1000)
    half = store.paths.layers / ".tmp-crashed"
    (half / "bin").mkdir(parents=True)
    assert not store.layer_store.has(busybox.diff_ids[0])
    assert store.layer_store.diff_ids() == []
    assert store.prune() >= 1000
    assert os.listdir(store.paths.ingest) == [] and os.listdir(store.paths.layers) == []
    assert store.resolve("busybox").digest == busybox.digest
