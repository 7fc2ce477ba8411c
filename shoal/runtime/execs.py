"""Running `runc exec` for a result: with pipes, or on a pty we hold (exec with a TTY).

`runc exec` in the foreground relays the process's stdio through its own; for a TTY it
makes the pty itself and needs its stdin to be a terminal, so we give it the slave side
of a pty and read the master. A timeout raises `asyncio.TimeoutError` after killing runc;
the caller kills the process inside (its pid is in runc's --pid-file).
"""

from __future__ import annotations

import asyncio
import os
import pty
import signal
from pathlib import Path


def kill_pid_from(pid_file: Path) -> None:
    try:
        os.kill(int(pid_file.read_text().strip()), signal.SIGKILL)
    except (OSError, ValueError):
        pass


async def run_with_pipes(argv: list[str], stdin: bytes | None, timeout: float | None) -> tuple[int, bytes, bytes]:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return proc.returncode or 0, out, err


async def run_on_pty(argv: list[str], stdin: bytes | None, timeout: float | None) -> tuple[int, bytes, bytes]:
    """Output comes back as stdout, with the terminal's \\r\\n; stderr is empty."""
    master, slave = pty.openpty()
    try:
        proc = await asyncio.create_subprocess_exec(*argv, stdin=slave, stdout=slave, stderr=slave,
                                                    start_new_session=True)
    finally:
        os.close(slave)
    if stdin:
        os.write(master, stdin)

    def drain() -> bytes:
        out = bytearray()
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO once every slave fd is closed
                break
            if not chunk:
                break
            out.extend(chunk)
        return bytes(out)

    reader = asyncio.ensure_future(asyncio.to_thread(drain))
    try:
        code = await asyncio.wait_for(proc.wait(), timeout)
        out = await asyncio.wait_for(reader, 5)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    finally:
        os.close(master)
    return code, out, b""
