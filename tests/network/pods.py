"""Test helpers: run busybox servers and clients inside pod network namespaces."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path


class ProcessGroup:
    def __init__(self) -> None:
        self._procs: list[asyncio.subprocess.Process] = []
        self._dirs: list[tempfile.TemporaryDirectory] = []

    async def httpd(self, netns: str, body: str, port: int = 80) -> None:
        """busybox httpd in netns serving `body` at /."""
        folder = tempfile.TemporaryDirectory(prefix="shoal-nt-www-")
        self._dirs.append(folder)
        Path(folder.name, "index.html").write_text(body)
        proc = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", netns, "busybox", "httpd", "-f", "-p", f"0.0.0.0:{port}", "-h", folder.name,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        self._procs.append(proc)
        for _ in range(100):
            if await listening(netns, port):
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"httpd in {netns} did not listen on {port}")

    async def stop(self) -> None:
        for proc in self._procs:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
        for folder in self._dirs:
            folder.cleanup()


async def listening(netns: str, port: int) -> bool:
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", netns, "busybox", "netstat", "-ltn",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    out, _ = await proc.communicate()
    return f":{port} " in out.decode()


async def wget(url: str, *, netns: str | None = None, seconds: int = 3) -> tuple[int, str]:
    """(exit code, body or error text) of `timeout N busybox wget -q -O - url`, in netns or on the host."""
    argv = ["timeout", str(seconds), "busybox", "wget", "-q", "-O", "-", url]
    if netns:
        argv = ["ip", "netns", "exec", netns, *argv]
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode or 0, (out or err).decode(errors="replace").strip()


async def in_netns(netns: str, *argv: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", netns, *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")
