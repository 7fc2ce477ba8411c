"""Image archives: OCI image layout tarballs (`oci-archive`) and `docker-archive`.

Import reads every blob through the content store (so each is verified against the
digest that names it) straight from the tar, without extracting the archive to disk;
nothing from the archive is used as a path. Names come from, in order: the containerd
`io.containerd.image.name` annotation, `org.opencontainers.image.ref.name` (a full
reference, or a bare tag which is joined to `name` or `localhost/<file stem>`), and
docker-archive `RepoTags`. An image without any name is stored untagged (by digest).

Export writes deterministic tars (fixed mtimes, sorted, root-owned): oci-archive as
skopeo/umoci read it (`ref.name` = the tag, full name in `io.containerd.image.name`),
docker-archive as `docker load`/skopeo read it (config `<hex>.json`, uncompressed
`<diff-hex>.tar` layers, `manifest.json` with RepoTags).

Blocking; asyncio callers use `asyncio.to_thread`.
"""

from __future__ import annotations

import io
import json
import os
import posixpath
import re
import tarfile
import tempfile
from pathlib import Path
from typing import BinaryIO

from shoal.images import mediatypes
from shoal.images.digests import validate_digest
from shoal.images.errors import ImageError, InvalidReference, ManifestError
from shoal.images.reference import Reference, is_tag
from shoal.images.unpack import open_decompressed

CONTAINERD_NAME = "io.containerd.image.name"
REF_NAME = "org.opencontainers.image.ref.name"
_BLOB = re.compile(r"^blobs/sha256/([a-f0-9]{64})$")


def _norm(name: str) -> str:
    return posixpath.normpath(name.lstrip("./") if name.startswith("./") else name).lstrip("/")


# -- import --------------------------------------------------------------------------

def import_archive(store, path: Path, name: str | None = None) -> list:
    """Import an oci-archive or docker-archive tarball; return the images stored."""
    try:
        tar = tarfile.open(path, "r:*")
    except (tarfile.TarError, OSError) as exc:
        raise ManifestError(f"{path}: not a readable tar archive: {exc}") from None
    with tar:
        members = {_norm(m.name): m for m in tar.getmembers()}
        default_repo = name or f"localhost/{_stem(path)}"
        if "index.json" in members:
            return _import_oci(store, tar, members, default_repo, name)
        if "manifest.json" in members:
            return _import_docker(store, tar, members)
    raise ManifestError(f"{path}: neither an OCI layout (index.json) nor a docker-archive (manifest.json)")


def _stem(path: Path) -> str:
    stem = path.name.split(".")[0].lower()
    stem = re.sub(r"[^a-z0-9._-]+", "-", stem).strip("-._") or "image"
    return stem


def _read_member(tar: tarfile.TarFile, members: dict, name: str) -> bytes:
    m = _follow(members, name)
    f = tar.extractfile(m)
    if f is None:
        raise ManifestError(f"archive member {name!r}: not a regular file")
    return f.read()


def _follow(members: dict, name: str, depth: int = 0) -> tarfile.TarInfo:
    """The member for `name`, following in-archive symlinks (docker save dedups this way)."""
    m = members.get(_norm(name))
    if m is None:
        raise ManifestError(f"archive member {name!r}: missing")
    if m.issym() and depth < 8:
        return _follow(members, posixpath.join(posixpath.dirname(_norm(name)), m.linkname), depth + 1)
    if m.islnk() and depth < 8:
        return _follow(members, m.linkname, depth + 1)
    return m


def _import_oci(store, tar, members: dict, default_repo: str, name: str | None) -> list:
    for member_name, m in members.items():
        hit = _BLOB.match(member_name)
        if hit and (m.isreg() or m.issym() or m.islnk()):
            src = tar.extractfile(_follow(members, member_name))
            store.write_blob(src, "sha256:" + hit.group(1))
    index = json.loads(_read_member(tar, members, "index.json"))
    images = []
    for desc in index.get("manifests", []):
        annotations = desc.get("annotations") or {}
        refs = _names_from_annotations(annotations, default_repo)
        if not refs and name and len(index.get("manifests", [])) == 1:
            refs = [Reference.parse(name)]
        manifest_desc = desc
        doc = store.read_json(validate_digest(desc["digest"]))
        if mediatypes.manifest_kind(doc, desc.get("mediaType")) == "index":
            manifest_desc = mediatypes.select_platform(doc)
        body = store.content.read_bytes(manifest_desc["digest"])
        images.append(store.add_manifest(body, refs, manifest_desc["digest"]))
    return images


def _names_from_annotations(annotations: dict, default_repo: str) -> list[Reference]:
    full = annotations.get(CONTAINERD_NAME)
    if full:
        return [Reference.parse(full)]
    ref_name = annotations.get(REF_NAME)
    if not ref_name:
        return []
    if is_tag(ref_name):
        return [Reference.parse(default_repo).with_tag(ref_name)]
    try:
        return [Reference.parse(ref_name)]
    except InvalidReference:
        raise ManifestError(f"annotation {REF_NAME}={ref_name!r}: neither a tag nor an image reference") from None


def _import_docker(store, tar, members: dict) -> list:
    entries = json.loads(_read_member(tar, members, "manifest.json"))
    if not isinstance(entries, list):
        raise ManifestError("docker-archive manifest.json: expected a JSON list")
    images = []
    for n, entry in enumerate(entries):
        config_bytes = _read_member(tar, members, entry["Config"])
        config = json.loads(config_bytes)
        config_digest = store.write_blob(config_bytes)
        diff_ids = config.get("rootfs", {}).get("diff_ids", [])
        layer_names = entry.get("Layers", [])
        if len(diff_ids) != len(layer_names):
            raise ManifestError(
                f"docker-archive manifest.json[{n}]: {len(layer_names)} layers but the config lists "
                f"{len(diff_ids)} diff_ids"
            )
        layers = []
        for layer_name, diff_id in zip(layer_names, diff_ids):
            member = _follow(members, layer_name)
            src = tar.extractfile(member)
            head = src.read(4) if src else b""
            src = tar.extractfile(member)
            compressed = head[:2] == b"\x1f\x8b"
            # Uncompressed layer: its digest is its diff_id, verified on write.
            digest = store.write_blob(src, None if compressed else diff_id, member.size)
            media = mediatypes.OCI_LAYER_GZIP if compressed else mediatypes.OCI_LAYER_TAR
            layers.append({"mediaType": media, "digest": digest, "size": member.size})
        manifest = {
            "schemaVersion": 2,
            "mediaType": mediatypes.OCI_MANIFEST,
            "config": {"mediaType": mediatypes.OCI_CONFIG, "digest": config_digest, "size": len(config_bytes)},
            "layers": layers,
        }
        body = json.dumps(manifest, separators=(",", ":"), sort_keys=True).encode()
        refs = [Reference.parse(t) for t in entry.get("RepoTags") or []]
        images.append(store.add_manifest(body, refs))
    return images


# -- export --------------------------------------------------------------------------

class _TarOut:
    def __init__(self, path: Path):
        self.tar = tarfile.open(path, "w", format=tarfile.PAX_FORMAT)
        self.seen: set[str] = set()

    def _info(self, name: str, size: int) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = size, 0o644, 0
        info.uname = info.gname = "root"
        return info

    def add_bytes(self, name: str, data: bytes) -> None:
        if name not in self.seen:
            self.seen.add(name)
            self.tar.addfile(self._info(name, len(data)), io.BytesIO(data))

    def add_file(self, name: str, path: Path) -> None:
        if name not in self.seen:
            self.seen.add(name)
            with open(path, "rb") as f:
                self.tar.addfile(self._info(name, os.fstat(f.fileno()).st_size), f)

    def add_dir(self, name: str) -> None:
        info = self._info(name, 0)
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        self.tar.addfile(info)

    def close(self) -> None:
        self.tar.close()


def export_archive(store, ref, path: Path, format: str = "oci-archive") -> None:
    """Write the image `ref` to `path` as an oci-archive or docker-archive tarball."""
    if format not in ("oci-archive", "docker-archive"):
        raise ManifestError(f"format {format!r}: expected 'oci-archive' or 'docker-archive'")
    if not path.parent.is_dir():
        raise ImageError(f"export path {path}: directory {path.parent} does not exist")
    image = store.resolve(ref)
    name = _export_name(image, ref)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        out = _TarOut(Path(tmp_name))
        try:
            if format == "oci-archive":
                _export_oci(store, image, name, out)
            else:
                _export_docker(store, image, name, out)
        finally:
            out.close()
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _export_name(image, ref) -> Reference | None:
    if isinstance(ref, Reference):
        return ref if ref.tag else None
    try:
        parsed = Reference.parse(ref)
        if parsed.tag and str(parsed) in image.references:
            return parsed
    except InvalidReference:
        pass
    return Reference.parse(image.references[0]) if image.references else None


def _export_oci(store, image, name: Reference | None, out: _TarOut) -> None:
    manifest_body = store.content.read_bytes(image.digest)
    out.add_bytes("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    desc = {"mediaType": image.manifest.get("mediaType") or mediatypes.OCI_MANIFEST,
            "digest": image.digest, "size": len(manifest_body)}
    if name is not None:
        desc["annotations"] = {CONTAINERD_NAME: str(name), REF_NAME: name.tag}
    index = {"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX, "manifests": [desc]}
    out.add_bytes("index.json", json.dumps(index, separators=(",", ":")).encode())
    out.add_dir("blobs")
    out.add_dir("blobs/sha256")
    for digest in [image.digest, image.id, *image.layers]:
        out.add_file("blobs/sha256/" + digest.split(":", 1)[1], store.blob_path(digest))


def _export_docker(store, image, name: Reference | None, out: _TarOut) -> None:
    config_name = image.id.split(":", 1)[1] + ".json"
    out.add_bytes(config_name, store.content.read_bytes(image.id))
    layer_names = []
    for digest, diff_id in zip(image.layers, image.diff_ids):
        layer_name = diff_id.split(":", 1)[1] + ".tar"
        layer_names.append(layer_name)
        if layer_name in out.seen:
            continue
        blob = store.blob_path(digest)
        if digest == diff_id:
            out.add_file(layer_name, blob)
            continue
        with tempfile.NamedTemporaryFile(dir=store.paths.ingest, prefix="export-") as tmp:
            with open(blob, "rb") as raw:
                _copy(open_decompressed(raw), tmp)
            tmp.flush()
            out.add_file(layer_name, Path(tmp.name))
    manifest = [{"Config": config_name, "RepoTags": [name.familiar] if name else [],
                 "Layers": layer_names}]
    out.add_bytes("manifest.json", json.dumps(manifest, separators=(",", ":")).encode())
    if name is not None:
        repo = name.familiar.rsplit(":", 1)[0]
        top = image.diff_ids[-1].split(":", 1)[1] if image.diff_ids else ""
        out.add_bytes("repositories", json.dumps({repo: {name.tag: top}}).encode())


def _copy(src: BinaryIO, dst) -> None:
    while block := src.read(1 << 20):
        dst.write(block)


__all__ = ["import_archive", "export_archive"]
