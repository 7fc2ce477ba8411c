"""ImageStore: images (manifest + config + layers) over the content store, with tags.

The store root is an OCI image layout (see paths.py): `index.json` lists one descriptor
per (reference, manifest), the canonical reference in the
`org.opencontainers.image.ref.name` annotation; images without a name (imported
untagged) have a descriptor without it and are reachable by digest or ID.

Concurrency: readers never lock (index.json is replaced atomically). Writers of the
index hold a process-local lock and an flock on `index.lock`, so the daemon and CLI
can tag/pull at the same time. Blobs and layers have their own rules (content.py,
layers.py). All methods block; asyncio callers use `asyncio.to_thread`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import threading
from pathlib import Path
from typing import BinaryIO, Iterator, Sequence

from shoal.fsutil import write_atomic
from shoal.images import archive, bootstrap, mediatypes
from shoal.images.content import ContentStore
from shoal.images.errors import BlobNotFound, ImageError, ImageNotFound, InvalidReference, ManifestError
from shoal.images.layers import LayerStore, tree_size
from shoal.images.paths import StorePaths
from shoal.images.reference import Reference
from shoal.images.snapshots import Snapshots

REF_NAME = "org.opencontainers.image.ref.name"


@dataclasses.dataclass(frozen=True)
class Image:
    """A stored image. `config` is the runtime part of the OCI config (Env, Cmd, ...)."""

    digest: str
    """Manifest digest."""
    id: str
    """Config digest (what `docker images` shows as IMAGE ID)."""
    references: tuple[str, ...]
    """Canonical references that point at this manifest (may be empty)."""
    manifest: dict = dataclasses.field(compare=False, hash=False, repr=False)
    raw_config: dict = dataclasses.field(compare=False, hash=False, repr=False)
    """The whole OCI image config JSON (architecture, os, rootfs, history, config)."""

    @property
    def config(self) -> dict:
        return self.raw_config.get("config") or {}

    @property
    def layers(self) -> list[str]:
        return [d["digest"] for d in self.manifest.get("layers", [])]

    @property
    def layer_descriptors(self) -> list[dict]:
        return list(self.manifest.get("layers", []))

    @property
    def diff_ids(self) -> list[str]:
        return list(self.raw_config.get("rootfs", {}).get("diff_ids", []))

    @property
    def size(self) -> int:
        return sum(int(d.get("size", 0)) for d in self.manifest.get("layers", []))

    @property
    def created(self) -> str | None:
        return self.raw_config.get("created")

    @property
    def platform(self) -> str:
        plat = f"{self.raw_config.get('os', '?')}/{self.raw_config.get('architecture', '?')}"
        return plat + (f"/{self.raw_config['variant']}" if self.raw_config.get("variant") else "")

    @property
    def reference(self) -> str | None:
        return self.references[0] if self.references else None


LayerSpec = tuple[str, str, int, str]
"""(layer digest, diff_id, size, media_type) as given to commit_image."""


class ImageStore:
    def __init__(self, root: Path):
        self.paths = StorePaths(Path(root))
        for d in self.paths.all_dirs():
            d.mkdir(parents=True, exist_ok=True)
        if not self.paths.oci_layout.exists():
            self.paths.oci_layout.write_text('{"imageLayoutVersion": "1.0.0"}')
        self.content = ContentStore(self.paths)
        self.layer_store = LayerStore(self.paths, self.content)
        self.snapshots = Snapshots(self.paths, self.layer_store)
        self._lock = threading.RLock()

    @property
    def root(self) -> Path:
        return self.paths.root

    # -- blobs -------------------------------------------------------------------------

    def write_blob(self, data: bytes | BinaryIO, expected_digest: str | None = None,
                   expected_size: int | None = None) -> str:
        return self.content.write(data, expected_digest, expected_size)

    def blob_path(self, digest: str) -> Path:
        return self.content.path(digest)

    def read_json(self, digest: str) -> dict:
        try:
            return json.loads(self.content.read_bytes(digest))
        except ValueError as exc:
            raise ManifestError(f"blob {digest}: not valid JSON: {exc}") from None

    # -- index.json --------------------------------------------------------------------

    def _entries(self) -> list[dict]:
        try:
            return json.loads(self.paths.index.read_text()).get("manifests", [])
        except FileNotFoundError:
            return []

    @contextlib.contextmanager
    def _index_update(self) -> Iterator[list[dict]]:
        with self._lock:
            fd = os.open(self.paths.index_lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                entries = self._entries()
                yield entries
                doc = {"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX, "manifests": entries}
                write_atomic(self.paths.index, json.dumps(doc, indent=1), durable=True)
            finally:
                os.close(fd)

    # -- images ------------------------------------------------------------------------

    def add_manifest(self, manifest: bytes, refs: Sequence[Reference | str] = (),
                     expected_digest: str | None = None) -> Image:
        """Store a single-platform manifest whose config and layers are already stored,
        and point `refs` at it (no refs: an untagged entry reachable by digest)."""
        try:
            doc = json.loads(manifest)
        except ValueError as exc:
            raise ManifestError(f"manifest: not valid JSON: {exc}") from None
        if not isinstance(doc, dict) or mediatypes.manifest_kind(doc) != "manifest":
            raise ManifestError("add_manifest: expected an image manifest, got an index")
        for desc in [doc.get("config", {})] + doc.get("layers", []):
            digest = desc.get("digest")
            if not digest or not self.content.has(digest):
                raise BlobNotFound(f"manifest references blob {digest}, which is not stored")
        digest = self.write_blob(manifest, expected_digest)
        media_type = doc.get("mediaType") or mediatypes.OCI_MANIFEST
        canon = [str(_as_ref(r)) for r in refs]
        with self._index_update() as entries:
            entries[:] = [e for e in entries if _ref_of(e) not in canon
                          and not (e["digest"] == digest and _ref_of(e) is None)]
            if not canon and any(e["digest"] == digest for e in entries):
                return self.load(digest)  # already reachable; no untagged duplicate
            for name in canon or [None]:
                entry = {"mediaType": media_type, "digest": digest, "size": len(manifest)}
                if name:
                    entry["annotations"] = {REF_NAME: name}
                entries.append(entry)
        return self.load(digest)

    def commit_image(self, config: dict, layers: Sequence[LayerSpec],
                     ref: Reference | str | None = None, annotations: dict | None = None) -> Image:
        """Write `config` (full OCI config JSON) and an OCI manifest over stored layers."""
        config = json.loads(json.dumps(config))
        config.setdefault("rootfs", {})["type"] = "layers"
        config["rootfs"]["diff_ids"] = [diff_id for _, diff_id, _, _ in layers]
        config_bytes = json.dumps(config, separators=(",", ":"), sort_keys=True).encode()
        config_digest = self.write_blob(config_bytes)
        manifest = {
            "schemaVersion": 2,
            "mediaType": mediatypes.OCI_MANIFEST,
            "config": {"mediaType": mediatypes.OCI_CONFIG, "digest": config_digest, "size": len(config_bytes)},
            "layers": [{"mediaType": mt, "digest": d, "size": size} for d, _, size, mt in layers],
        }
        if annotations:
            manifest["annotations"] = annotations
        body = json.dumps(manifest, separators=(",", ":"), sort_keys=True).encode()
        return self.add_manifest(body, [ref] if ref else [])

    def load(self, manifest_digest: str) -> Image:
        """The image whose manifest has this digest (whether tagged or not)."""
        manifest = self.read_json(manifest_digest)
        if mediatypes.manifest_kind(manifest) != "manifest":
            raise ManifestError(f"blob {manifest_digest}: is an index, not an image manifest")
        config_digest = manifest["config"]["digest"]
        refs = tuple(r for e in self._entries() if e["digest"] == manifest_digest and (r := _ref_of(e)))
        return Image(digest=manifest_digest, id=config_digest, references=refs,
                     manifest=manifest, raw_config=self.read_json(config_digest))

    def _match_id(self, text: str, entries: list[dict]) -> str | None:
        """Manifest digest for a digest/ID (or unique hex prefix >= 4); None if not an ID."""
        bare = text.removeprefix("sha256:")
        if not (text.startswith("sha256:") or (4 <= len(bare) <= 64 and all(c in "0123456789abcdef" for c in bare))):
            return None
        hits = {e["digest"] for e in entries if e["digest"].removeprefix("sha256:").startswith(bare)}
        if not hits:
            for e in entries:
                with contextlib.suppress(ImageError):
                    if self.read_json(e["digest"])["config"]["digest"].removeprefix("sha256:").startswith(bare):
                        hits.add(e["digest"])
        if len(hits) > 1:
            raise ImageNotFound(f"image {text!r}: ambiguous, matches {len(hits)} images")
        if hits:
            return hits.pop()
        if text.startswith("sha256:") or len(bare) == 64:
            raise ImageNotFound(f"image {text!r}: no such image")
        return None

    def resolve(self, ref: Reference | str) -> Image:
        """Find an image by reference, manifest digest, config ID or an ID prefix (>= 4 hex)."""
        entries = self._entries()
        if isinstance(ref, str):
            digest = self._match_id(ref.strip(), entries)
            if digest:
                return self.load(digest)
            ref = Reference.parse(ref.strip())
        canon = str(ref)
        for e in entries:
            if _ref_of(e) == canon:
                return self.load(e["digest"])
        if ref.digest:
            for e in entries:  # name@digest: the digest stored under that name (any tag)
                r = _ref_of(e)
                if e["digest"] == ref.digest and (r is None or Reference.parse(r).name == ref.name):
                    return self.load(e["digest"])
        raise ImageNotFound(f"image {canon}: not in the store")

    def list(self) -> list[Image]:
        seen: dict[str, None] = {}
        for e in self._entries():
            seen.setdefault(e["digest"], None)
        return [self.load(d) for d in seen]

    def tag(self, src: Reference | str, new_ref: Reference | str) -> Image:
        image = self.resolve(src)
        new = _as_ref(new_ref)
        if new.digest:
            raise InvalidReference(f"tag target {new}: must be a name with a tag, not a digest")
        body = self.content.read_bytes(image.digest)
        return self.add_manifest(body, [new])

    def remove(self, ref: Reference | str) -> list[str]:
        """Untag `ref`; a digest or ID removes every reference to that image. Returns the
        references removed. Blobs and layers are freed by `prune`."""
        image = self.resolve(ref)
        by_name: str | None = None
        if isinstance(ref, Reference) or self._match_id(ref.strip(), self._entries()) is None:
            parsed = _as_ref(ref)
            by_name = str(parsed) if parsed.tag else None
        removed: list[str] = []
        with self._index_update() as entries:
            keep = []
            for e in entries:
                if e["digest"] == image.digest and (by_name is None or _ref_of(e) == by_name):
                    removed.append(_ref_of(e) or e["digest"])
                else:
                    keep.append(e)
            entries[:] = keep
        return removed

    def prune(self) -> int:
        """Delete blobs and unpacked layers no stored image or snapshot uses, and stray
        partial writes. Returns bytes freed."""
        with self._index_update() as entries:  # hold the index lock: no tag appears meanwhile
            keep_blobs: set[str] = set()
            keep_layers: set[str] = set(self.snapshots.diff_ids_in_use())
            for e in entries:
                keep_blobs.add(e["digest"])
                with contextlib.suppress(ImageError):
                    image = self.load(e["digest"])
                    keep_blobs.add(image.id)
                    keep_blobs.update(image.layers)
                    keep_layers.update(image.diff_ids)
            freed = 0
            for digest in list(self.content.digests()):
                if digest not in keep_blobs:
                    freed += self.content.delete(digest)
            for diff_id in self.layer_store.diff_ids():
                if diff_id not in keep_layers:
                    freed += self.layer_store.remove(diff_id)
            freed += self.layer_store.remove_partial()
            for entry in os.scandir(self.paths.ingest):
                with contextlib.suppress(OSError):
                    freed += entry.stat().st_size
                    os.unlink(entry.path)
        return freed

    def disk_usage(self) -> dict[str, int]:
        blobs = sum(self.content.size(d) for d in self.content.digests())
        return {"blobs": blobs, "layers": tree_size(self.paths.layers)}

    # -- conveniences implemented in sibling modules ------------------------------------

    def import_archive(self, path: Path, name: str | None = None) -> list[Image]:
        return archive.import_archive(self, Path(path), name=name)

    def export(self, ref: Reference | str, path: Path, format: str = "oci-archive") -> None:
        archive.export_archive(self, ref, Path(path), format=format)

    def bootstrap_debian(self, name: str, suite: str = "bookworm", include: Sequence[str] = (),
                         **kwargs) -> Image:
        return bootstrap.bootstrap_debian(self, name, suite=suite, include=include, **kwargs)

    def bootstrap_busybox(self, name: str = "busybox", **kwargs) -> Image:
        return bootstrap.bootstrap_busybox(self, name, **kwargs)


def _as_ref(ref: Reference | str) -> Reference:
    return ref if isinstance(ref, Reference) else Reference.parse(ref)


def _ref_of(entry: dict) -> str | None:
    return (entry.get("annotations") or {}).get(REF_NAME)
