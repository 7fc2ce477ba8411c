"""A Debian base image from mmdebstrap (~30 s, built once for this module)."""

import subprocess

import pytest

from shoal.images import ImageStore, mounts


@pytest.fixture(scope="module")
def debian(tmp_path_factory):
    root = tmp_path_factory.mktemp("debian")
    store = ImageStore(root / "images")
    image = store.bootstrap_debian("localhost/debian-python:bookworm", suite="bookworm",
                                   include=["python3-minimal"])
    try:
        yield store, image
    finally:
        store.snapshots.cleanup_all()
        for point in sorted(mounts.mounts_under(root), key=len, reverse=True):
            subprocess.run(["umount", "-l", point], check=False)


@pytest.mark.slow
def test_debian_image_runs_python(debian):
    store, image = debian
    assert image.references == ("localhost/debian-python:bookworm",)
    assert image.layers == image.diff_ids  # stored uncompressed: the digest is mmdebstrap's tar
    assert image.created == "1970-01-01T00:00:00Z"  # SOURCE_DATE_EPOCH default 0
    assert image.config["Cmd"] == ["bash"]
    root = store.snapshots.prepare("deb", image)
    out = subprocess.run(["chroot", str(root), "python3", "-c", "import sys; print(sys.version_info[:2])"],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "(3, 11)"
    assert "bookworm" in (root / "etc/os-release").read_text()
    # apt inside the image uses the mirror we passed (derived from the host's apt config)
    sources = (root / "etc/apt/sources.list").read_text()
    assert "bookworm main" in sources
    store.snapshots.remove("deb")
