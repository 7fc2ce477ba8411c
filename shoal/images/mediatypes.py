"""Media types of OCI and Docker v2 content, and host-platform selection. Pure.

Docker schema2 and OCI are read alike (same JSON shape); what we write is OCI.
Layers are recognised by their magic bytes when unpacked, so a mislabelled media type
does not matter; zstd layers are refused unless the `zstandard` module is installed.
"""

from __future__ import annotations

import platform as _platform

from shoal.images.errors import ManifestError, NoMatchingPlatform

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_NONDIST_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"

DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
LAYER_TYPES = frozenset(
    {OCI_LAYER_TAR, OCI_LAYER_GZIP, OCI_LAYER_ZSTD, OCI_LAYER_NONDIST_GZIP,
     DOCKER_LAYER_GZIP, DOCKER_LAYER_FOREIGN, "application/vnd.docker.image.rootfs.diff.tar"}
)

# What a registry client says it accepts for GET /v2/<name>/manifests/<ref>.
MANIFEST_ACCEPT = ", ".join([OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST])

_ARCH = {"x86_64": ("amd64", None), "amd64": ("amd64", None), "aarch64": ("arm64", "v8"),
         "arm64": ("arm64", "v8"), "armv7l": ("arm", "v7"), "armv6l": ("arm", "v6"),
         "i686": ("386", None), "i386": ("386", None), "ppc64le": ("ppc64le", None),
         "s390x": ("s390x", None), "riscv64": ("riscv64", None)}


def host_platform() -> dict:
    """The OCI platform of this machine: {"os": "linux", "architecture": ..., ["variant"]}."""
    arch, variant = _ARCH.get(_platform.machine(), (_platform.machine(), None))
    out = {"os": "linux", "architecture": arch}
    if variant:
        out["variant"] = variant
    return out


def manifest_kind(doc: dict, media_type: str | None = None) -> str:
    """'index' or 'manifest' for a parsed manifest document; ManifestError otherwise."""
    kind = doc.get("mediaType") or media_type
    if kind in INDEX_TYPES or (kind is None and "manifests" in doc):
        return "index"
    if kind in MANIFEST_TYPES or (kind is None and "layers" in doc and "config" in doc):
        return "manifest"
    if doc.get("schemaVersion") == 1:
        raise ManifestError("Docker schema 1 manifests are not supported (deprecated)")
    raise ManifestError(f"mediaType {kind!r}: not an image manifest or index")


def select_platform(index: dict, platform: dict | None = None) -> dict:
    """The descriptor in `index["manifests"]` that runs here (os, architecture, variant).

    Attestation entries (`unknown/unknown`) are never chosen. An entry without a platform
    is accepted only when it is the only image in the index (single-image OCI layouts).
    """
    want = platform or host_platform()
    manifests = [m for m in index.get("manifests", []) if m.get("mediaType") not in INDEX_TYPES]
    candidates = []
    for desc in manifests:
        plat = desc.get("platform")
        if plat is None:
            continue
        if plat.get("os") != want["os"] or plat.get("architecture") != want["architecture"]:
            continue
        variant = plat.get("variant")
        if variant and want.get("variant") and variant != want["variant"]:
            continue
        candidates.append(desc)
    if candidates:
        # prefer an exact variant match
        candidates.sort(key=lambda d: d.get("platform", {}).get("variant") != want.get("variant"))
        return candidates[0]
    unplatformed = [m for m in manifests if "platform" not in m]
    if len(unplatformed) == 1 and len(manifests) == 1:
        return unplatformed[0]
    seen = sorted({f"{m.get('platform', {}).get('os')}/{m.get('platform', {}).get('architecture')}"
                   for m in manifests})
    raise NoMatchingPlatform(
        f"image index has no manifest for {want['os']}/{want['architecture']}; it has {seen}"
    )
