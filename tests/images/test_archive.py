"""Archives interoperate with skopeo and umoci in both directions."""

import json
import subprocess

import pytest

from shoal.images import DigestMismatch, ImageStore, ManifestError


def run(*argv: str) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{argv}: {proc.stderr}"
    return proc.stdout


def test_oci_export_is_read_by_skopeo_and_umoci(store, busybox, tmp_path):
    out = tmp_path / "bb.oci.tar"
    store.export("busybox", out)
    info = json.loads(run("skopeo", "inspect", f"oci-archive:{out}"))
    assert info["Digest"] == busybox.digest
    assert info["Layers"] == busybox.layers
    assert info["Architecture"] == "amd64" and info["Os"] == "linux"
    layout = tmp_path / "layout"
    layout.mkdir()
    run("tar", "-xf", str(out), "-C", str(layout))
    assert run("umoci", "ls", "--layout", str(layout)).split() == ["latest"]
    bundle = tmp_path / "bundle"
    run("umoci", "unpack", "--image", f"{layout}:latest", str(bundle))
    assert (bundle / "rootfs/bin/busybox").stat().st_size > 100_000
    cfg = json.loads((bundle / "config.json").read_text())
    assert cfg["process"]["args"] == ["sh"]
    # deterministic: exporting again gives the same bytes
    again = tmp_path / "again.tar"
    store.export("busybox", again)
    assert again.read_bytes() == out.read_bytes()


def test_docker_archive_export_is_read_by_skopeo(store, busybox, tmp_path):
    out = tmp_path / "bb.docker.tar"
    store.export("busybox", out, format="docker-archive")
    info = json.loads(run("skopeo", "inspect", f"docker-archive:{out}"))
    assert info["Layers"] == busybox.diff_ids  # docker-archive layers are uncompressed
    manifest = json.loads(run("tar", "-xOf", str(out), "manifest.json"))
    assert manifest[0]["RepoTags"] == ["busybox:latest"]


@pytest.mark.parametrize("fmt, dest_ref, expect_ref", [
    ("oci-archive", "app:v1", "docker.io/library/app:v1"),
    ("docker-archive", "localhost/app:v2", "localhost/app:v2"),
])
def test_import_what_skopeo_wrote(store, busybox, tmp_path, fmt, dest_ref, expect_ref):
    src = tmp_path / "src.tar"
    store.export("busybox", src)
    made = tmp_path / f"skopeo.{fmt}.tar"
    run("skopeo", "copy", "--quiet", f"oci-archive:{src}", f"{fmt}:{made}:{dest_ref}")
    fresh = ImageStore(tmp_path / "fresh")
    try:
        [img] = fresh.import_archive(made)
        assert img.references == (expect_ref,)
        assert img.diff_ids == busybox.diff_ids
        root = fresh.snapshots.prepare("imported", fresh.resolve(expect_ref))
        assert (root / "bin/busybox").is_file()
    finally:
        fresh.snapshots.cleanup_all()


def test_import_rejects_tampered_blob_and_non_archives(store, busybox, tmp_path):
    src = tmp_path / "src.tar"
    store.export("busybox", src)
    layout = tmp_path / "layout"
    layout.mkdir()
    run("tar", "-xf", str(src), "-C", str(layout))
    layer = layout / "blobs/sha256" / busybox.layers[0].split(":")[1]
    layer.write_bytes(layer.read_bytes()[:-10] + b"0123456789")
    bad = tmp_path / "bad.tar"
    run("tar", "-cf", str(bad), "-C", str(layout), ".")
    fresh = ImageStore(tmp_path / "fresh")
    with pytest.raises(DigestMismatch, match=busybox.layers[0]):
        fresh.import_archive(bad)
    assert fresh.list() == []
    not_tar = tmp_path / "x.tar"
    not_tar.write_text("hello")
    with pytest.raises(ManifestError, match="not a readable tar"):
        fresh.import_archive(not_tar)
