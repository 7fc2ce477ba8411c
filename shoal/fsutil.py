"""Small file-system helpers shared by every layer (imports nothing from shoal)."""

from __future__ import annotations

import os
from pathlib import Path


def write_atomic(path: Path, data: bytes | str, mode: int = 0o644) -> None:
    """Write via a temporary file in the same directory and rename it over `path`: a
    concurrent reader (another shoal command, kubectl, a restarted daemon) sees the old
    content or the whole new one, never a half-written file. `mode` applies from the
    first byte, so a private key is never readable by others, even briefly."""
    raw = data.encode() if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
