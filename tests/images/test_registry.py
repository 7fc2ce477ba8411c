"""Pulling from a real docker-registry on 127.0.0.1, seeded by skopeo."""

import json
import os
import subprocess

import pytest

from shoal.images import DigestMismatch, ImageNotFound, ImageStore, RegistryAuthError, RegistryError
from shoal.images.registry import parse_challenge, pull

from .registry_fixtures import PASSWORD, USER, CuttingProxy, Registry, TokenServer


@pytest.fixture
def seed_archive(store, busybox, tmp_path):
    path = tmp_path / "busybox.oci.tar"
    store.export("busybox", path)
    return path


@pytest.fixture
def plain_registry(tmp_path, seed_archive):
    reg = Registry(tmp_path / "registry")
    try:
        reg.seed(seed_archive, "shoal/busybox:v1")
        yield reg
    finally:
        reg.close()


@pytest.fixture
def token_registry(tmp_path, seed_archive):
    tokens = TokenServer(tmp_path)
    reg = None
    try:
        reg = Registry(tmp_path / "registry-auth", token=tokens)
        reg.seed(seed_archive, "shoal/busybox:v1", creds=f"{USER}:{PASSWORD}")
        yield reg, tokens
    finally:
        if reg:
            reg.close()
        tokens.close()


def test_parse_challenge():
    scheme, params = parse_challenge('Bearer realm="https://auth.io/token",service="r.io",scope="repository:a/b:pull"')
    assert scheme == "bearer"
    assert params == {"realm": "https://auth.io/token", "service": "r.io", "scope": "repository:a/b:pull"}
    assert parse_challenge('Basic realm="Registry Realm"') == ("basic", {"realm": "Registry Realm"})


async def test_pull_from_local_registry(tmp_path, plain_registry, busybox):
    fresh = ImageStore(tmp_path / "fresh")
    try:
        ref = f"{plain_registry.host}/shoal/busybox:v1"
        img = await pull(fresh, ref, insecure=True)
        assert img.digest == busybox.digest and img.diff_ids == busybox.diff_ids
        assert fresh.resolve(ref).digest == img.digest
        root = fresh.snapshots.prepare("pulled", img)
        assert (root / "bin/busybox").is_file()
        by_digest = await pull(fresh, f"{plain_registry.host}/shoal/busybox@{img.digest}", insecure=True)
        assert by_digest.digest == img.digest
        with pytest.raises(RegistryError, match="MANIFEST_UNKNOWN"):
            await pull(fresh, f"{plain_registry.host}/shoal/busybox:nope", insecure=True)
        with pytest.raises(RegistryError, match="unreachable"):  # TLS required without --insecure
            await pull(fresh, ref)
    finally:
        fresh.snapshots.cleanup_all()


async def test_pull_with_bearer_token_auth(tmp_path, token_registry, busybox):
    reg, tokens = token_registry
    fresh = ImageStore(tmp_path / "fresh")
    ref = f"{reg.host}/shoal/busybox:v1"
    with pytest.raises(RegistryAuthError, match="token server .* refused"):
        await pull(fresh, ref, insecure=True)
    img = await pull(fresh, ref, insecure=True, credentials=(USER, PASSWORD))
    assert img.digest == busybox.digest
    granted = [r for r in tokens.requests if r["authorized"]]
    assert any(r["query"]["scope"] == ["repository:shoal/busybox:pull"] for r in granted)
    assert all(r["query"]["service"] == ["shoal-test-registry"] for r in granted)


@pytest.mark.parametrize("mode, error, message", [
    ("cut", RegistryError, r"download interrupted after \d+ of \d+ bytes \(RemoteProtocolError, 3 attempts\)"),
    ("short", DigestMismatch, "expected"),
])
async def test_interrupted_blob_download_stores_nothing(tmp_path, plain_registry, busybox, mode, error, message):
    proxy = CuttingProxy(plain_registry.host, busybox.layers[0], mode)
    fresh = ImageStore(tmp_path / "fresh")
    try:
        with pytest.raises(error, match=message):
            await pull(fresh, f"{proxy.host}/shoal/busybox:v1", insecure=True)
        assert not fresh.content.has(busybox.layers[0])
        assert os.listdir(fresh.paths.ingest) == []
        with pytest.raises(ImageNotFound):
            fresh.resolve(f"{proxy.host}/shoal/busybox:v1")
        # the next attempt (straight to the registry) completes the pull
        img = await pull(fresh, f"{plain_registry.host}/shoal/busybox:v1", insecure=True)
        assert fresh.content.has(img.layers[0])
    finally:
        proxy.close()


def test_cli_pull_with_tls_verify_false(tmp_path, plain_registry, busybox, monkeypatch):
    from .test_cli import shoal_image

    monkeypatch.delenv("SHOAL_STATE_DIR", raising=False)
    ref = f"{plain_registry.host}/shoal/busybox:v1"
    code, out = shoal_image(tmp_path / "state", "pull", "-q", "--tls-verify=false", ref)
    assert code == 0 and out.strip() == busybox.digest
    code, out = shoal_image(tmp_path / "state", "ls")
    assert ref in out
    code, out = shoal_image(tmp_path / "state", "push", "--insecure", ref, f"{plain_registry.host}/copy/bb:x")
    assert code == 0 and out.strip() == busybox.digest


async def test_push_then_skopeo_and_pull_read_it(tmp_path, token_registry, store, busybox):
    from shoal.images.registry import push

    reg, _ = token_registry
    dest = f"{reg.host}/shoal/pushed:v2"
    with pytest.raises(RegistryAuthError):
        await push(store, "busybox", dest, insecure=True)
    digest = await push(store, "busybox", dest, insecure=True, credentials=(USER, PASSWORD))
    assert digest == busybox.digest
    proc = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--creds", f"{USER}:{PASSWORD}",
                           f"docker://{dest}"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["Digest"] == busybox.digest
    fresh = ImageStore(tmp_path / "fresh")
    img = await pull(fresh, dest, insecure=True, credentials=(USER, PASSWORD))
    assert img.diff_ids == busybox.diff_ids


async def test_cut_download_resumes_with_a_range_request(tmp_path, plain_registry, store, busybox):
    proxy = CuttingProxy(plain_registry.host, busybox.layers[0], "cut", times=1)
    fresh = ImageStore(tmp_path / "fresh")
    try:
        img = await pull(fresh, f"{proxy.host}/shoal/busybox:v1", insecure=True)
        assert img.layers == busybox.layers
        first, second = proxy.ranges
        assert first is None and second.startswith("bytes=") and int(second[6:-1]) > 0
        assert fresh.blob_path(busybox.layers[0]).read_bytes() == store.blob_path(busybox.layers[0]).read_bytes()
    finally:
        proxy.close()


async def test_pull_docker_v2_schema2_manifest(tmp_path, plain_registry, seed_archive, busybox):
    from shoal.images import mediatypes

    plain_registry.seed(seed_archive, "shoal/busybox-v2s2:v1", fmt="v2s2")
    fresh = ImageStore(tmp_path / "fresh")
    img = await pull(fresh, f"{plain_registry.host}/shoal/busybox-v2s2:v1", insecure=True)
    assert img.manifest["mediaType"] == mediatypes.DOCKER_MANIFEST
    assert img.layer_descriptors[0]["mediaType"] == mediatypes.DOCKER_LAYER_GZIP
    assert img.diff_ids == busybox.diff_ids and img.digest != busybox.digest
    try:
        root = fresh.snapshots.prepare("v2s2", img)
        assert (root / "bin/busybox").is_file()
    finally:
        fresh.snapshots.cleanup_all()
