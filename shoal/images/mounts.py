"""Mount-table queries and overlay (un)mounting through util-linux `mount`/`umount`.

`mount_overlay` runs mount(8) with the snapshot directory as its working directory and
relative lowerdir/upperdir/workdir paths (`lower/0:lower/1...`), which keeps the option
string far below the one-page limit of mount(2) even with hundreds of layers (the kernel
resolves relative paths against the caller's cwd; the `lower/<n>` entries are symlinks
to the layer store). Blocking; callers in asyncio run these in a thread.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from shoal.images.errors import SnapshotError

PAGE_LIMIT = 4096


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and len(field[i + 1:i + 4]) == 3 and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mount_points() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [_unescape(line.split()[4]) for line in f if line.strip()]


def is_mounted(path: Path) -> bool:
    return os.path.abspath(path) in mount_points()


def mounts_under(root: Path) -> list[str]:
    base = os.path.abspath(root).rstrip("/") + "/"
    return [p for p in mount_points() if p.startswith(base)]


def overlay_options(lowers: list[str], upper: str, work: str) -> str:
    """Pure: the mount option string; `lowers` are top-most first as overlayfs wants."""
    return f"lowerdir={':'.join(lowers)},upperdir={upper},workdir={work}"


def mount_overlay(cwd: Path, lowers: list[str], upper: str, work: str, target: str) -> None:
    options = overlay_options(lowers, upper, work)
    if len(options) >= PAGE_LIMIT:
        raise SnapshotError(f"overlay options are {len(options)} bytes, over the {PAGE_LIMIT}-byte limit")
    proc = subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", options, target],
        cwd=cwd, capture_output=True, text=True,
    )
    if proc.returncode != 0:
        raise SnapshotError(f"mounting overlay at {cwd / target}: {proc.stderr.strip() or proc.returncode}")


def unmount(path: Path, attempts: int = 5) -> None:
    """Unmount `path` (all stacked mounts); lazy unmount as the last resort."""
    path = Path(os.path.abspath(path))
    for attempt in range(attempts):
        if not is_mounted(path):
            return
        proc = subprocess.run(["umount", str(path)], capture_output=True, text=True)
        if proc.returncode != 0 and is_mounted(path):
            time.sleep(0.05 * (attempt + 1))
    while is_mounted(path):
        proc = subprocess.run(["umount", "-l", str(path)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise SnapshotError(f"unmounting {path}: {proc.stderr.strip()}")
