"""CRI log files: parse, tail, follow.

The format (kubelet's, written by conmon's k8s-file driver):
`<RFC3339Nano time> <stdout|stderr> <P|F> <text>`; P marks a partial line that the
next entries of the same stream continue, F the full (last) piece.

Following survives rotation: conmon rotates by replacing the file (new inode), so the
follower reopens when the inode changes or the file shrinks.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from pathlib import Path
from typing import AsyncIterator, Awaitable, Callable, Iterable, Iterator

from shoal.runtime.status import LogLine

POLL_INTERVAL_S = 0.1


def parse_time(text: str) -> dt.datetime:
    """RFC3339 with nanoseconds (Z or +00:00) -> aware datetime (microseconds kept)."""
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    main, _, tz = text.partition("+") if "+" in text[10:] else (text, "", "")
    if "." in main:
        base, frac = main.split(".", 1)
        main = f"{base}.{frac[:6].ljust(6, '0')}"
    value = dt.datetime.fromisoformat(main + (f"+{tz}" if tz else ""))
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def parse_lines(raw_lines: Iterable[str]) -> Iterator[LogLine]:
    """Join P pieces per stream; skip malformed lines."""
    partial: dict[str, list[str]] = {}
    for raw in raw_lines:
        raw = raw.rstrip("\n")
        parts = raw.split(" ", 3)
        if len(parts) < 3:
            continue
        stamp, stream, tag = parts[0], parts[1], parts[2]
        text = parts[3] if len(parts) == 4 else ""
        try:
            when = parse_time(stamp)
        except ValueError:
            continue
        if tag.startswith("P"):
            partial.setdefault(stream, []).append(text)
            continue
        pieces = partial.pop(stream, [])
        yield LogLine(when, stream, "".join(pieces) + text)


def read_all(path: Path) -> list[LogLine]:
    try:
        with open(path, errors="replace") as f:
            return list(parse_lines(f))
    except FileNotFoundError:
        return []


async def stream_logs(
    path: Path,
    *,
    follow: bool,
    tail: int | None,
    since: dt.datetime | None,
    is_running: Callable[[], Awaitable[bool]],
) -> AsyncIterator[LogLine]:
    """Lines of `path` (last `tail`, newer than `since`), then new ones while running."""

    def keep(line: LogLine) -> bool:
        return since is None or line.time >= since

    if not follow:
        lines = [ln for ln in await asyncio.to_thread(read_all, path) if keep(ln)]
        for line in lines[-tail:] if tail is not None else lines:
            yield line
        return

    f = None
    inode = None
    pending = ""
    first = True
    final = False
    try:
        while True:
            if f is None:
                try:
                    f = open(path, errors="replace")
                    inode = os.fstat(f.fileno()).st_ino
                except FileNotFoundError:
                    f = None
            chunk = f.read() if f is not None else ""
            if chunk:
                pending += chunk
                complete, _, pending = pending.rpartition("\n")
                if complete:
                    lines = [ln for ln in parse_lines(complete.split("\n")) if keep(ln)]
                    if first and tail is not None:
                        lines = lines[-tail:] if tail else []
                    for line in lines:
                        yield line
                first = False
                continue
            first = False
            if final:
                return
            running = await is_running()
            try:
                st = os.stat(path)
                rotated = f is None or st.st_ino != inode or st.st_size < f.tell()
            except FileNotFoundError:
                rotated = False
            if rotated and f is not None:
                f.close()
                f = None
                pending = ""
                continue
            if not running:
                final = True  # one last read after the writer stopped, then done
                continue
            await asyncio.sleep(POLL_INTERVAL_S)
    finally:
        if f is not None:
            f.close()
