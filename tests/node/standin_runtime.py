"""A stand-in for `shoal.runtime.Runtime` used only while the real runtime has not landed.

It runs each container as a real process in the pod's real network namespace
(`ip netns exec`), in a private mount namespace (`unshare -m`) chrooted into the real
overlay snapshot, with the intent's bind mounts — enough for the node agent's behaviour
(status, restarts, probes, backoff, deletion) to be exercised for real. It has no cgroup
limits (no OOM), no shim (processes are children of the test process) and plain-text logs.
The end-to-end tests prefer `shoal.runtime.Runtime` whenever it is importable.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shlex
import signal
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any


class StandInRuntime:
    def __init__(self) -> None:
        self.containers: dict[str, dict] = {}

    async def create(self, intent: dict, image_config: dict) -> str:
        cid = intent["id"]
        if intent["command"] and "/" in intent["command"][0] and not (Path(intent["rootfs"]) / intent["command"][0].lstrip("/")).exists():
            raise RuntimeError(f'runc create failed: unable to start container process: exec: '
                               f'"{intent["command"][0]}": stat {intent["command"][0]}: no such file or directory: unknown')
        self.containers[cid] = {"intent": intent, "config": image_config or {}, "state": "created", "proc": None,
                                "exit_code": None, "started_at": None, "finished_at": None}
        return cid

    def _argv(self, c: dict) -> list[str]:
        intent, config = c["intent"], c["config"]
        entry = intent["command"] or config.get("Entrypoint") or []
        args = intent["args"] if intent["args"] is not None else ([] if intent["command"] else config.get("Cmd") or [])
        return list(entry) + list(args)

    def _env(self, c: dict) -> list[str]:
        env = dict(e.split("=", 1) for e in c["config"].get("Env") or [])
        env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        env.update(c["intent"]["env"])
        env["HOSTNAME"] = c["intent"]["hostname"]
        return [f"{k}={v}" for k, v in env.items()]

    async def start(self, cid: str) -> None:
        c = self.containers[cid]
        intent = c["intent"]
        rootfs = Path(intent["rootfs"])
        lines = ["set -e", f"mount -t proc proc {shlex.quote(str(rootfs / 'proc'))}"]
        extra = [SimpleNamespace(destination=d, source=str(intent[k]), read_only=False)
                 for d, k in (("/etc/hosts", "etc_hosts"), ("/etc/resolv.conf", "resolv_conf")) if intent.get(k)]
        for m in list(intent["mounts"]) + extra:
            dest = rootfs / m.destination.lstrip("/")
            src = Path(m.source)
            if src.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
            else:
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.touch(exist_ok=True)
            opt = ",ro" if m.read_only else ""
            lines.append(f"mount --bind {shlex.quote(str(src))} {shlex.quote(str(dest))}")
            if opt:
                lines.append(f"mount -o remount,bind,ro {shlex.quote(str(dest))}")
        argv = ["/bin/busybox", "env", "-i", *self._env(c), *self._argv(c)]
        lines.append("exec chroot " + shlex.quote(str(rootfs)) + " " + " ".join(shlex.quote(a) for a in argv))
        log_path = Path(intent["log_path"])
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(log_path, "ab")
        netns = Path(intent["network"]).name
        proc = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", netns, "unshare", "-m", "--propagation", "private", "sh", "-c", "\n".join(lines),
            stdout=log, stderr=log, stdin=asyncio.subprocess.DEVNULL, start_new_session=True)
        log.close()
        c.update(proc=proc, state="running", started_at=dt.datetime.now(dt.timezone.utc))
        c["waiter"] = asyncio.create_task(self._reap(c))

    async def _reap(self, c: dict) -> None:
        code = await c["proc"].wait()
        c.update(state="exited", exit_code=128 - code if code < 0 else code,
                 finished_at=dt.datetime.now(dt.timezone.utc))

    async def wait(self, cid: str, timeout: float | None = None) -> Any:
        c = self.containers[cid]
        if c.get("waiter") is not None:
            await asyncio.wait_for(asyncio.shield(c["waiter"]), timeout)
        return await self.status(cid)

    async def status(self, cid: str) -> Any:
        c = self.containers[cid]
        pid = c["proc"].pid if c["proc"] is not None else 0
        return SimpleNamespace(id=cid, state=c["state"], pid=pid, exit_code=c["exit_code"],
                               started_at=c["started_at"], finished_at=c["finished_at"], oom_killed=False, reason="",
                               labels=c["intent"].get("labels") or {})

    async def list(self) -> list[Any]:
        return [await self.status(cid) for cid in list(self.containers)]

    async def stop(self, cid: str, grace_seconds: float) -> Any:
        c = self.containers.get(cid)
        if c is None or c["state"] != "running":
            return None
        os.kill(c["proc"].pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(c["waiter"]), grace_seconds or 0.01)
        except asyncio.TimeoutError:
            os.killpg(c["proc"].pid, signal.SIGKILL)
            await c["waiter"]
        return await self.status(cid)

    async def kill(self, cid: str, sig: int) -> None:
        os.kill(self.containers[cid]["proc"].pid, sig)

    async def delete(self, cid: str, force: bool = False) -> None:
        c = self.containers.get(cid)
        if c is None:
            return
        if c["state"] == "running":
            os.killpg(c["proc"].pid, signal.SIGKILL)
            await c["waiter"]
        self.containers.pop(cid, None)

    async def exec(self, cid: str, args: list[str], *, timeout: float | None = None, **_: Any) -> tuple[int, bytes, bytes]:
        c = self.containers[cid]
        proc = await asyncio.create_subprocess_exec(
            "nsenter", "-t", str(c["proc"].pid), "-m", "-n", "-r", "-w", "/bin/busybox", "env", "-i", *self._env(c), *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        return proc.returncode or 0, out, err

    async def stats(self, cid: str) -> dict:
        return {"memory_bytes": 0, "cpu_usage_ns": int(time.process_time_ns()), "pids": 1}

    async def cleanup_all(self) -> None:
        for cid in list(self.containers):
            await self.delete(cid, force=True)


def make_intent(fields: dict) -> dict:
    return dict(fields)
