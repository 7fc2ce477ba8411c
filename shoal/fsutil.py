"""Small file-system helpers shared by every layer (imports nothing from shoal)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: bytes | str, mode: int = 0o644, *, durable: bool = False) -> None:
    """Write via a uniquely named temporary file in the same directory and rename it over
    `path`: a concurrent reader (another shoal command, kubectl, a restarted daemon) sees
    the old content or the whole new one, never a half-written file, and two writers
    never share a temporary. The file is private until `mode` is set, so a key is never
    readable by others, even briefly. `durable` fsyncs the data before the rename (for
    indexes that must survive a power cut, not only a crash of ours)."""
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(raw)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
