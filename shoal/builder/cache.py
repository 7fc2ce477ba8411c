"""The layer cache: cache key -> the layer a step produced (or "no layer").

Keys are computed by the builder (`imageconfig.chain_id` of the parent chain, the
instruction with its args/env resolved, and the content hash of files it reads); this
module only stores and finds them. One small JSON file per key under
`<cache_dir>/keys/`, written to a temp name and renamed, so concurrent builds (threads
or processes) never see a partial entry; the last writer of a key wins, and both
writers wrote an equivalent result. An entry whose blob is no longer in the image store
(pruned) is a miss. Cache mounts (`RUN --mount=type=cache`) live in
`<cache_dir>/mounts/<id-hash>/`, outside every layer.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from shoal.fsutil import write_atomic

LayerSpec = tuple[str, str, int, str]


class LayerCache:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.keys_dir = self.root / "keys"
        self.mounts_dir = self.root / "mounts"
        self.keys_dir.mkdir(parents=True, exist_ok=True)
        self.mounts_dir.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.keys_dir / (key.removeprefix("sha256:") + ".json")

    def get(self, key: str, store) -> dict | None:
        """{"layer": LayerSpec | None} if cached and its blob is still stored."""
        try:
            entry = json.loads(self._path(key).read_text())
        except (OSError, ValueError):
            return None
        layer = entry.get("layer")
        if layer is not None:
            entry["layer"] = tuple(layer)
            if not store.content.has(layer[0]):
                return None
        return entry

    def put(self, key: str, layer: LayerSpec | None) -> None:
        write_atomic(self._path(key), json.dumps({"layer": list(layer) if layer else None}))

    def mount_dir(self, cache_id: str) -> Path:
        path = self.mounts_dir / hashlib.sha256(cache_id.encode()).hexdigest()[:32]
        path.mkdir(exist_ok=True)
        return path
