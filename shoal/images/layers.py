"""The layer store: each layer unpacked once, by diff_id, into `layers/<hex>/`.

An unpack runs in a fresh `layers/.tmp-*` directory, is synced to disk (syncfs), and is
renamed into place only when complete and verified; so a `layers/<hex>` directory that
exists is whole, and a crash leaves only a `.tmp-*` directory that `prune` removes.
Two threads or processes unpacking the same layer both succeed: the loser of the
rename drops its copy.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import shutil
import tempfile
from pathlib import Path

from shoal.images.content import ContentStore
from shoal.images.paths import StorePaths
from shoal.images.unpack import unpack_layer

log = logging.getLogger(__name__)

_libc = ctypes.CDLL(None, use_errno=True)


def _syncfs(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        _libc.syncfs(fd)
    finally:
        os.close(fd)


class LayerStore:
    def __init__(self, paths: StorePaths, content: ContentStore):
        self.paths = paths
        self.content = content

    def path(self, diff_id: str) -> Path:
        return self.paths.layer(diff_id)

    def has(self, diff_id: str) -> bool:
        return self.paths.layer(diff_id).is_dir()

    def ensure(self, layer_digest: str, diff_id: str) -> Path:
        """The unpacked directory of this layer, unpacking its blob first if needed."""
        final = self.paths.layer(diff_id)
        if final.is_dir():
            return final
        blob = self.content.path(layer_digest)
        tmp = Path(tempfile.mkdtemp(dir=self.paths.layers, prefix=".tmp-"))
        try:
            os.chmod(tmp, 0o755)
            result = unpack_layer(blob, tmp, diff_id)
            if result.skipped_devices:
                log.info("layer %s: skipped %d device nodes (%s...)", diff_id,
                         len(result.skipped_devices), result.skipped_devices[0])
            _syncfs(tmp)
            try:
                os.rename(tmp, final)
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
                shutil.rmtree(tmp, ignore_errors=True)  # someone else finished first
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return final

    def remove(self, diff_id: str) -> int:
        path = self.paths.layer(diff_id)
        if not path.is_dir():
            return 0
        size = tree_size(path)
        shutil.rmtree(path, ignore_errors=True)
        return size

    def diff_ids(self) -> list[str]:
        return ["sha256:" + e.name for e in os.scandir(self.paths.layers)
                if e.is_dir(follow_symlinks=False) and len(e.name) == 64]

    def remove_partial(self) -> int:
        freed = 0
        for e in os.scandir(self.paths.layers):
            if e.name.startswith(".tmp-"):
                freed += tree_size(Path(e.path))
                shutil.rmtree(e.path, ignore_errors=True)
        return freed


def tree_size(path: Path) -> int:
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        for name in filenames + dirnames:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total
