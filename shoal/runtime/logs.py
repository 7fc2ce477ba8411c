"""CRI log files: parse, tail, follow.

The format (kubelet's, written by conmon's k8s-file driver):
`<RFC3339Nano time> <stdout|stderr> <P|F> <text>`; P marks a partial line that the
next entries of the same stream continue, F the full (last) piece.

Rotation has two sources: conmon's own cap (`--log-size-max`: it replaces the file
with an empty one, dropping the old lines) and `Runtime.rotate_log` (rename to
`<log>.1`, kept for reading, then conmon reopens). A follower drains the old inode it
still holds, then reopens the path when the inode changes or the file shrinks.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from pathlib import Path
from typing import AsyncIterator, Awaitable, Callable, Iterable, Iterator

from shoal import timestamps
from shoal.runtime.status import LogLine

POLL_INTERVAL_S = 0.1


def parse_time(text: str) -> dt.datetime:
    """RFC3339 with nanoseconds (Z or an offset) -> aware datetime (microseconds kept)."""
    return timestamps.parse_time(text)


def parse_lines(raw_lines: Iterable[str], partial: dict[str, list[str]] | None = None) -> Iterator[LogLine]:
    """Join P pieces per stream; skip malformed lines. Pass the same `partial` dict to
    successive calls (a follower) so a long line split across reads comes out whole."""
    partial = {} if partial is None else partial
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


def rotated_path(path: Path) -> Path:
    """Where `rotate` keeps the previous generation of a log."""
    return path.with_name(path.name + ".1")


def read_all(path: Path) -> list[LogLine]:
    """The kept rotated generation (if any), then the live file."""
    raw: list[str] = []
    for part in (rotated_path(path), path):
        try:
            with open(part, errors="replace") as f:
                raw.extend(f)
        except FileNotFoundError:
            continue
    return list(parse_lines(raw))


async def stream_logs(
    path: Path,
    *,
    follow: bool,
    tail: int | None,
    since: dt.datetime | None,
    is_running: Callable[[], Awaitable[bool]],
) -> AsyncIterator[LogLine]:
    """Lines of `path` (last `tail`, newer than `since`), then, with `follow`, new ones
    until the container has stopped and the file is read to its end."""

    def keep(line: LogLine) -> bool:
        return since is None or line.time >= since

    if not follow:
        lines = [ln for ln in await asyncio.to_thread(read_all, path) if keep(ln)]
        for line in lines[-tail:] if tail is not None and tail > 0 else ([] if tail == 0 else lines):
            yield line
        return

    # Open first, then read what is there through the same fd: no line falls in between.
    f = None
    inode = None
    try:
        f = open(path, errors="replace")
        inode = os.fstat(f.fileno()).st_ino
    except FileNotFoundError:
        pass
    try:
        old = rotated_path(path).read_text(errors="replace")
    except FileNotFoundError:
        old = ""
    pieces: dict[str, list[str]] = {}
    complete, _, pending = (f.read() if f is not None else "").rpartition("\n")
    existing = [ln for ln in parse_lines((old + complete).split("\n"), pieces) if keep(ln)]
    if tail is not None:
        existing = existing[-tail:] if tail > 0 else []
    for line in existing:
        yield line
    final = False
    try:
        while True:
            chunk = f.read() if f is not None else ""
            if chunk:
                pending += chunk
                complete, _, pending = pending.rpartition("\n")
                if complete:
                    for line in parse_lines(complete.split("\n"), pieces):
                        if keep(line):
                            yield line
                continue
            if final:
                return
            running = await is_running()
            try:
                st = os.stat(path)
                rotated = f is None or st.st_ino != inode or st.st_size < f.tell()
            except FileNotFoundError:
                rotated = False
            if rotated:
                # the old inode may still hold lines written since our last read: take them first
                tail_text = f.read() if f is not None else ""
                if f is not None:
                    f.close()
                if tail_text:
                    pending += tail_text
                    complete, _, pending = pending.rpartition("\n")
                    for line in parse_lines(complete.split("\n"), pieces):
                        if keep(line):
                            yield line
                pending = ""
                try:
                    f = open(path, errors="replace")
                    inode = os.fstat(f.fileno()).st_ino
                except FileNotFoundError:
                    f = None
                continue
            if not running:
                final = True  # one last read after the writer stopped, then done
                continue
            await asyncio.sleep(POLL_INTERVAL_S)
    finally:
        if f is not None:
            f.close()
