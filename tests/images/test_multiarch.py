"""Image indexes: the host platform is picked on import and on pull."""

import io
import json
import subprocess
import tarfile

import pytest

from shoal.images import ImageStore, NoMatchingPlatform, mediatypes
from shoal.images.mediatypes import select_platform
from shoal.images.registry import pull

from .registry_fixtures import Registry


def desc(arch, digest="sha256:" + "0" * 64, os_="linux", variant=None, media=mediatypes.OCI_MANIFEST):
    plat = {"os": os_, "architecture": arch, **({"variant": variant} if variant else {})}
    return {"mediaType": media, "digest": digest, "size": 1, "platform": plat}


def test_select_platform_rules():
    amd = desc("amd64", "sha256:" + "1" * 64)
    index = {"manifests": [desc("unknown", os_="unknown"), desc("arm64", variant="v8"), amd]}
    assert select_platform(index, {"os": "linux", "architecture": "amd64"}) is amd
    arm7 = desc("arm", "sha256:" + "2" * 64, variant="v7")
    index = {"manifests": [desc("arm", variant="v6"), arm7]}
    assert select_platform(index, {"os": "linux", "architecture": "arm", "variant": "v7"}) is arm7
    with pytest.raises(NoMatchingPlatform, match=r"linux/s390x.*linux/arm"):
        select_platform(index, {"os": "linux", "architecture": "s390x"})


def multiarch_archive(store, busybox, path):
    """An oci-archive whose one entry is an index of amd64 (busybox) and a fake arm64."""
    arm = store.commit_image({**busybox.raw_config, "architecture": "arm64", "variant": "v8"},
                             [(d["digest"], diff, d["size"], d["mediaType"])
                              for d, diff in zip(busybox.layer_descriptors, busybox.diff_ids)])
    manifests = []
    for img, plat in ((arm, {"os": "linux", "architecture": "arm64", "variant": "v8"}),
                      (busybox, {"os": "linux", "architecture": "amd64"})):
        body = store.content.read_bytes(img.digest)
        manifests.append({"mediaType": mediatypes.OCI_MANIFEST, "digest": img.digest,
                          "size": len(body), "platform": plat})
    index = json.dumps({"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX,
                        "manifests": manifests}).encode()
    index_digest = store.write_blob(index)
    top = {"schemaVersion": 2, "manifests": [{
        "mediaType": mediatypes.OCI_INDEX, "digest": index_digest, "size": len(index),
        "annotations": {"org.opencontainers.image.ref.name": "multi"}}]}
    blobs = {index_digest, arm.digest, arm.id, busybox.digest, busybox.id, *busybox.layers}
    with tarfile.open(path, "w") as tar:
        for name, data in [("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
                           ("index.json", json.dumps(top).encode())]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for digest in sorted(blobs):
            tar.add(store.blob_path(digest), f"blobs/sha256/{digest.split(':')[1]}")
    return index_digest


async def test_import_and_pull_pick_the_host_platform(store, busybox, tmp_path):
    archive = tmp_path / "multi.tar"
    index_digest = multiarch_archive(store, busybox, archive)
    fresh = ImageStore(tmp_path / "fresh")
    [img] = fresh.import_archive(archive, name="localhost/multi")
    assert img.digest == busybox.digest and img.references == ("localhost/multi:multi",)

    reg = Registry(tmp_path / "registry")
    try:
        proc = subprocess.run(["skopeo", "copy", "--quiet", "--all", "--dest-tls-verify=false",
                               f"oci-archive:{archive}", f"docker://{reg.host}/shoal/multi:v1"],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        pulled_store = ImageStore(tmp_path / "pulled")
        img = await pull(pulled_store, f"{reg.host}/shoal/multi:v1", insecure=True)
        assert img.digest == busybox.digest and img.platform == "linux/amd64"
        assert pulled_store.content.has(index_digest)
        with pytest.raises(NoMatchingPlatform, match="linux/s390x"):
            await pull(pulled_store, f"{reg.host}/shoal/multi:v1", insecure=True,
                       platform={"os": "linux", "architecture": "s390x"})
    finally:
        reg.close()
