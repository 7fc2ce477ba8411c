"""A thin async wrapper over the `runc` command line, bound to one state root.

Every call is one runc process; failures become `RuncError` carrying runc's stderr.
runc serializes concurrent operations on one container itself (a file lock per
container), so callers need no extra locking for correctness.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

from shoal.runtime.errors import RuncError


def pick_runtime_binary(cgroup_root: Path = Path("/sys/fs/cgroup")) -> str:
    """crun on a pure cgroup v2 host when installed (faster, what Podman picks), else runc.

    A v1 or hybrid host (this project's machines) needs runc: crun refuses hybrid mode.
    """
    unified = (cgroup_root / "cgroup.controllers").exists()
    return "crun" if unified and shutil.which("crun") else "runc"


class Runc:
    def __init__(self, binary: str, state_root: Path) -> None:
        self.binary = binary
        self.state_root = state_root

    def argv(self, *args: str) -> list[str]:
        return [self.binary, "--root", str(self.state_root), *args]

    async def call(self, *args: str, stdin: bytes | None = None) -> bytes:
        proc = await asyncio.create_subprocess_exec(
            *self.argv(*args),
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate(stdin)
        if proc.returncode != 0:
            raise RuncError(f"runc {args[0]}", _runc_message(err), proc.returncode)
        return out

    async def state(self, cid: str) -> dict[str, Any] | None:
        """runc's view of the container, or None when runc does not know it."""
        try:
            return json.loads(await self.call("state", cid))
        except RuncError as exc:
            if "does not exist" in str(exc) or "not exist" in str(exc):
                return None
            raise

    async def start(self, cid: str) -> None:
        await self.call("start", cid)

    async def kill(self, cid: str, signal: str, *, all_processes: bool = False) -> None:
        await self.call("kill", *(["--all"] if all_processes else []), cid, signal)

    async def delete(self, cid: str, *, force: bool = False) -> None:
        try:
            await self.call("delete", *(["--force"] if force else []), cid)
        except RuncError as exc:
            if "does not exist" not in str(exc):
                raise

    async def list_states(self) -> list[dict[str, Any]]:
        """`runc list`: id, pid, status, bundle... of every container in this root."""
        out = await self.call("list", "--format", "json")
        return json.loads(out or b"null") or []

    async def list_ids(self) -> list[str]:
        return [c["id"] for c in await self.list_states()]


def _runc_message(stderr: bytes) -> str:
    """runc logs logfmt lines (time=... level=error msg="..."); keep the msg parts."""
    text = stderr.decode(errors="replace").strip()
    messages = []
    for line in text.splitlines():
        marker = 'msg="'
        if marker in line:
            body = line.split(marker, 1)[1]
            messages.append(body.rsplit('"', 1)[0].replace('\\"', '"'))
        elif line.strip():
            messages.append(line.strip())
    return "; ".join(messages) or text
