"""`Runtime`: container lifecycle on runc with conmon as the shim.

Design: the disk is the truth. A Runtime object holds no container state; every
call re-reads the files under its root (see `paths`) and asks runc. So a Runtime
created after a daemon restart (or in another process, like the CLI) sees and drives
the containers an earlier one created: that is re-adoption, with nothing to replay.

Parts: `shim` starts conmon, `runc` wraps the runc CLI, `execs` runs `runc exec`,
`attach` relays a terminal, `logs` reads CRI logs, `cgroups` reads stats and clears cgroups.

Concurrency: calls are safe from one event loop; a per-id lock serializes create and
delete of the same id inside one process, and runc locks each container across
processes. Blocking work (spec building, file writes) runs in threads.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import os
import re
import shutil
import signal as signal_mod
import subprocess
import time
from pathlib import Path
from typing import Any, AsyncIterator, Mapping, Sequence

from shoal.runtime import attach, cgroups, execs, logs as logs_mod, shim
from shoal.runtime.errors import (
    ContainerExists, ContainerNotFound, ContainerStateError, ExecTimeout, RuncError, SpecError,
)
from shoal.runtime.intent import NETWORK_HOST, ContainerIntent
from shoal.runtime.paths import RuntimePaths
from shoal.runtime.runc import Runc
from shoal.runtime.spec import oci_spec
from shoal.runtime.spec.process import env_pairs
from shoal.runtime.spec.users import resolve_user
from shoal.runtime.status import CREATED, EXITED, RUNNING, UNKNOWN, ContainerStatus, LogLine

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
DEFAULT_LOG_SIZE_MAX = 10 * 1024 * 1024
DEFAULT_HOSTS = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"


def _utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc)


def _signal_name(sig: str | int) -> str:
    """'TERM', 'SIGTERM', 15 -> 'SIGTERM' (validated)."""
    if isinstance(sig, int) or str(sig).isdigit():
        return signal_mod.Signals(int(sig)).name
    name = str(sig).upper()
    name = name if name.startswith("SIG") else f"SIG{name}"
    try:
        signal_mod.Signals[name]
    except KeyError:
        raise SpecError("stop_signal", f"unknown signal {sig!r}") from None
    return name


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive for our purposes
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class Runtime:
    """Containers under one root directory (settings.containers_dir)."""

    def __init__(self, root: Path, *, cgroup_parent: str = "shoal", runtime_binary: str = "runc",
                 log_size_max: int = DEFAULT_LOG_SIZE_MAX) -> None:
        self.paths = RuntimePaths(Path(root).absolute())
        self.cgroup_parent = cgroup_parent.strip("/")
        self.runtime_binary = runtime_binary
        self.log_size_max = log_size_max
        self.runc = Runc(runtime_binary, self.paths.runc_root)
        self._locks: dict[str, asyncio.Lock] = {}

    def _lock(self, cid: str) -> asyncio.Lock:
        return self._locks.setdefault(cid, asyncio.Lock())

    # -- create / start -------------------------------------------------------------------

    async def create(self, intent: ContainerIntent, image_config: Mapping[str, Any] | None = None) -> str:
        """Write the bundle and run conmon + `runc create`; the container is `created`."""
        cid = intent.id
        if not ID_PATTERN.match(cid):
            raise SpecError("id", f"expected [A-Za-z0-9][A-Za-z0-9_.-]{{0,127}}, got {cid!r}")
        async with self._lock(cid):
            await asyncio.to_thread(self.paths.ensure)
            try:
                self.paths.container(cid).mkdir()
            except FileExistsError:
                raise ContainerExists(cid) from None
            try:
                # A create that failed while `runc create` was still running (conmon gave
                # up on a loaded machine) can leave runc state behind after our cleanup;
                # it would make this create fail with "already exists". Clear it first.
                if (self.paths.runc_root / cid).exists():
                    await self.runc.delete(cid, force=True)
                log_path = await asyncio.to_thread(self._write_bundle, intent, dict(image_config or {}))
                argv = shim.conmon_argv(
                    self.paths, cid, runtime_binary=self.runtime_binary, log_path=log_path,
                    log_size_max=self.log_size_max, tty=intent.tty, stdin=intent.stdin,
                    stdin_once=intent.stdin_once, name=intent.name)
                await shim.start_conmon(argv, self.paths.shim_log(cid), self.paths.container(cid))
            except BaseException:
                await self._remove_everything(cid)
                raise
        return cid

    def _write_bundle(self, intent: ContainerIntent, image_config: dict[str, Any]) -> Path:
        cid = intent.id
        if not Path(intent.rootfs).is_absolute() or not Path(intent.rootfs).is_dir():
            raise SpecError("rootfs", f"expected an absolute path to a directory, got {str(intent.rootfs)!r}")
        overrides: dict[str, Any] = {}
        if intent.etc_hosts is None:
            hosts = self.paths.hosts(cid)
            hostname = intent.hostname or cid[:63]
            if intent.network == NETWORK_HOST:  # the host's names, as Docker does for --network host
                try:
                    shutil.copyfile("/etc/hosts", hosts)
                except OSError:
                    hosts.write_text(DEFAULT_HOSTS)
            else:
                hosts.write_text(DEFAULT_HOSTS + f"127.0.1.1\t{hostname}\n")
            overrides["etc_hosts"] = hosts
        if intent.resolv_conf is None:
            resolv = self.paths.resolv_conf(cid)
            try:
                shutil.copyfile("/etc/resolv.conf", resolv)
            except OSError:
                resolv.write_text("")
            overrides["resolv_conf"] = resolv
        if overrides:
            intent = dataclasses.replace(intent, **overrides)
        spec = oci_spec(intent, image_config, cgroup_parent=self.cgroup_parent)
        log_path = Path(intent.log_path) if intent.log_path else self.paths.default_log(cid)
        if intent.log_path and log_path.exists():
            log_path.replace(log_path.with_name(log_path.name + ".previous"))
        log_path.parent.mkdir(parents=True, exist_ok=True)
        stop_signal = _signal_name(intent.stop_signal or image_config.get("StopSignal") or "SIGTERM")
        meta = {
            "id": cid,
            "name": intent.name,
            "stop_signal": stop_signal,
            "log_path": str(log_path),
            "cgroups_path": spec["linux"]["cgroupsPath"],
            "created_at": time.time(),
            "image": intent.annotations.get("io.shoal.image") if intent.annotations else None,
            "command": spec["process"]["args"],
            "labels": dict(intent.labels),
            "tty": intent.tty,
            "stdin": intent.stdin,
        }
        self.paths.config(cid).write_text(json.dumps(spec, indent=1))
        self.paths.meta(cid).write_text(json.dumps(meta))
        return log_path

    async def start(self, cid: str) -> None:
        self._meta(cid)
        started = time.time()  # before: a short-lived process may exit before runc returns
        await self.runc.start(cid)
        self.paths.started_at(cid).write_text(str(started))

    async def run(self, intent: ContainerIntent, image_config: Mapping[str, Any] | None = None) -> str:
        cid = await self.create(intent, image_config)
        try:
            await self.start(cid)
        except BaseException:
            await self.delete(cid, force=True)
            raise
        return cid

    # -- observe --------------------------------------------------------------------------

    def _meta(self, cid: str) -> dict[str, Any]:
        try:
            return json.loads(self.paths.meta(cid).read_text())
        except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
            raise ContainerNotFound(cid) from None

    def log_path(self, cid: str) -> Path:
        return Path(self._meta(cid)["log_path"])

    def _conmon_pid(self, cid: str) -> int | None:
        try:
            return int(self.paths.conmon_pid(cid).read_text().strip())
        except (OSError, ValueError):
            return None

    def _exit_status(self, cid: str) -> tuple[int, float] | None:
        path = self.paths.exit_file(cid)
        try:
            text = path.read_text().strip()
            mtime = path.stat().st_mtime
        except OSError:
            return None
        if not text.lstrip("-").isdigit():
            return None  # being written
        return int(text), mtime

    async def status(self, cid: str) -> ContainerStatus:
        return await self._status(cid, await self._runc_state_unless_exited(cid))

    async def _runc_state_unless_exited(self, cid: str) -> dict[str, Any] | None:
        if self._exit_status(cid) is not None:
            return None  # not needed
        return await self.runc.state(cid)

    async def _status(self, cid: str, state: dict[str, Any] | None) -> ContainerStatus:
        """Status from the files plus runc's view (`state`: runc state/list entry or None)."""
        meta = self._meta(cid)
        base = dict(
            id=cid, name=meta.get("name"), created_at=_utc(meta["created_at"]),
            image=meta.get("image"), command=tuple(meta.get("command") or ()), labels=meta.get("labels") or {},
        )
        try:
            base["started_at"] = _utc(float(self.paths.started_at(cid).read_text()))
        except (OSError, ValueError):
            pass
        exited = self._exit_status(cid)
        if exited is not None:
            code, when = exited
            # conmon's marker; the memory cgroup's own counter (until delete) as a second witness
            oom = self.paths.oom(cid).exists() or cgroups.oom_kill_count(meta.get("cgroups_path") or "") > 0
            reason = "OOMKilled" if oom else ("Completed" if code == 0 else "Error")
            return ContainerStatus(state=EXITED, exit_code=code, finished_at=_utc(when), oom_killed=oom,
                                   reason=reason, **base)
        if state is None:
            if _pid_alive(self._conmon_pid(cid)):
                return ContainerStatus(state=CREATED, reason="Creating", **base)
            return ContainerStatus(state=UNKNOWN, reason="runc and conmon have no record of it", **base)
        runc_status = state.get("status")
        pid = state.get("pid") or None
        if runc_status == "running":
            return ContainerStatus(state=RUNNING, pid=pid, **base)
        if runc_status == "created":
            return ContainerStatus(state=CREATED, pid=pid, **base)
        if runc_status == "stopped":
            if not _pid_alive(self._conmon_pid(cid)):
                return ContainerStatus(state=UNKNOWN, reason="stopped, and its shim is gone without an exit code",
                                       **base)
            # conmon is about to write the exit file; give it a moment
            for _ in range(20):
                await asyncio.sleep(0.025)
                if self._exit_status(cid) is not None:
                    return await self.status(cid)
            return ContainerStatus(state=UNKNOWN, reason="stopped without an exit code (shim gone?)", **base)
        return ContainerStatus(state=UNKNOWN, pid=pid, reason=f"runc state {runc_status}", **base)

    async def list(self) -> list[ContainerStatus]:
        """Every container under root, with one `runc list` for all of them."""
        result: list[ContainerStatus] = []
        if not self.paths.root.is_dir():
            return result
        ids = [e.name for e in sorted(self.paths.root.iterdir()) if (e / "meta.json").is_file()]
        if not ids:
            return result
        states = {c["id"]: c for c in await self.runc.list_states()} if self.paths.runc_root.is_dir() else {}
        for cid in ids:
            try:
                result.append(await self._status(cid, states.get(cid)))
            except ContainerNotFound:
                continue
        return result

    async def wait(self, cid: str, timeout: float | None = None) -> ContainerStatus:
        """Until the container has exited; `asyncio.TimeoutError` after `timeout` seconds."""
        self._meta(cid)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._exit_status(cid) is not None:
                return await self.status(cid)
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise asyncio.TimeoutError(f"container {cid} still running after {timeout}s")
            pid = self._conmon_pid(cid)
            if pid and _pid_alive(pid):
                await self._wait_pid(pid, min(remaining or 1.0, 1.0))
            else:
                st = await self.status(cid)
                if st.state in (EXITED, UNKNOWN):
                    return st
                await asyncio.sleep(0.02)

    async def _wait_pid(self, pid: int, timeout: float) -> None:
        """Sleep until process `pid` exits (pidfd) or `timeout` passes."""
        try:
            fd = os.pidfd_open(pid)
        except (OSError, AttributeError):
            await asyncio.sleep(min(timeout, 0.02))
            return
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        loop.add_reader(fd, lambda: done.done() or done.set_result(None))
        try:
            await asyncio.wait_for(done, timeout)
        except asyncio.TimeoutError:
            pass
        finally:
            loop.remove_reader(fd)
            os.close(fd)

    # -- signals --------------------------------------------------------------------------

    async def kill(self, cid: str, signal: str | int = "SIGKILL") -> None:
        self._meta(cid)
        try:
            await self.runc.kill(cid, _signal_name(signal))
        except RuncError as exc:
            if "not running" in str(exc) or "does not exist" in str(exc) or "process already finished" in str(exc):
                raise ContainerStateError(f"container {cid} is not running") from None
            raise

    async def stop(self, cid: str, grace_seconds: float = 10.0) -> ContainerStatus:
        """Stop signal (image StopSignal or SIGTERM), then SIGKILL after `grace_seconds`."""
        meta = self._meta(cid)
        st = await self.status(cid)
        if st.state == EXITED:
            return st
        if st.state == CREATED:
            # never started: runc cannot signal a created container's user process; kill its init
            await self._kill_quiet(cid, "SIGKILL")
            return await self.wait(cid, timeout=10)
        await self._kill_quiet(cid, meta.get("stop_signal") or "SIGTERM")
        try:
            return await self.wait(cid, timeout=max(grace_seconds, 0.0))
        except asyncio.TimeoutError:
            await self._kill_quiet(cid, "SIGKILL")
            return await self.wait(cid, timeout=30)

    async def _kill_quiet(self, cid: str, sig: str) -> None:
        try:
            await self.runc.kill(cid, _signal_name(sig))
        except RuncError:
            pass

    # -- delete ---------------------------------------------------------------------------

    async def delete(self, cid: str, force: bool = False) -> None:
        """Remove runc state, bundle, cgroup, exit file and the default log; nothing stays.

        A log at an intent's own `log_path` is the caller's and stays.
        """
        async with self._lock(cid):
            self._meta(cid)
            st = await self.status(cid)
            if st.state in (RUNNING, CREATED) and not force:
                raise ContainerStateError(f"container {cid} is {st.state}; stop it first or use force")
            if st.state in (RUNNING, CREATED):
                await self._kill_quiet(cid, "SIGKILL")
                try:
                    await self.wait(cid, timeout=10)
                except asyncio.TimeoutError:
                    pass
            await self._remove_everything(cid)
        self._locks.pop(cid, None)

    async def _remove_everything(self, cid: str) -> None:
        """Best effort, for delete and for a failed create."""
        cgroups_path = f"/{self.cgroup_parent}/{cid}"
        try:
            cgroups_path = self._meta(cid).get("cgroups_path") or cgroups_path
        except ContainerNotFound:
            pass
        try:
            await self.runc.delete(cid, force=True)
        except RuncError:
            pass
        pid = self._conmon_pid(cid)
        if pid and _pid_alive(pid):
            await self._wait_pid(pid, 2.0)
        await asyncio.to_thread(self._remove_files, cid, cgroups_path)

    def _remove_files(self, cid: str, cgroups_path: str) -> None:
        cgroups.remove(cgroups_path, attempts=40)  # up to 2 s for the last task to leave
        self.paths.exit_file(cid).unlink(missing_ok=True)
        # a log_path given in the intent belongs to the caller (kept for `logs --previous`)
        shutil.rmtree(self.paths.container(cid), ignore_errors=True)
        sock = self.paths.sockets / cid
        if sock.is_symlink() or sock.exists():
            sock.unlink(missing_ok=True)

    async def cleanup_all(self) -> None:
        """Kill and delete every container under root (8 at a time); remove the cgroup parent."""
        limit = asyncio.Semaphore(8)

        async def remove(cid: str) -> None:
            async with limit:
                try:
                    await self.delete(cid, force=True)
                except ContainerNotFound:
                    pass

        await asyncio.gather(*(remove(st.id) for st in await self.list()))
        if self.paths.runc_root.is_dir():
            for cid in await self.runc.list_ids():
                await self.runc.delete(cid, force=True)
        await asyncio.to_thread(cgroups.remove, f"/{self.cgroup_parent}")

    # -- exec -----------------------------------------------------------------------------

    def _exec_process(self, cid: str, args: Sequence[str], *, tty: bool,
                      env: Mapping[str, str] | Sequence[str] | None, user: str | None) -> dict[str, Any]:
        if not args:
            raise SpecError("exec.command", "expected a command")
        spec = json.loads(self.paths.config(cid).read_text())
        proc = dict(spec["process"])
        proc["args"] = [str(a) for a in args]
        proc["terminal"] = tty
        if env:
            merged = dict(e.split("=", 1) if "=" in e else (e, "") for e in proc.get("env", []))
            merged.update(env_pairs(env, "exec.env"))
            proc["env"] = [f"{k}={v}" for k, v in merged.items()]
        if user:
            resolved = resolve_user(Path(spec["root"]["path"]), user, "exec.user")
            proc["user"] = {"uid": resolved.uid, "gid": resolved.gid}
        return proc

    def _write_process_file(self, cid: str, proc: dict[str, Any]) -> Path:
        path = self.paths.container(cid) / f"exec-{os.getpid()}-{time.monotonic_ns()}.json"
        path.write_text(json.dumps(proc))
        return path

    async def exec(self, cid: str, args: Sequence[str], *, tty: bool = False,
                   env: Mapping[str, str] | Sequence[str] | None = None, user: str | None = None,
                   stdin: bytes | None = None, timeout: float | None = None) -> tuple[int, bytes, bytes]:
        """Run `args` in the running container; (exit code, stdout, stderr).

        With tty=True the process gets a terminal (a pty we hold), its output comes back
        as stdout (with the terminal's \\r\\n) and stderr is empty.
        """
        st = await self.status(cid)
        if st.state != RUNNING:
            raise ContainerStateError(f"container {cid} is {st.state}, exec needs it running")
        proc_spec = self._exec_process(cid, args, tty=tty, env=env, user=user)
        proc_file = await asyncio.to_thread(self._write_process_file, cid, proc_spec)
        pid_file = proc_file.with_suffix(".pid")
        argv = self.runc.argv("exec", "--process", str(proc_file), "--pid-file", str(pid_file), cid)
        try:
            try:
                if tty:
                    return await execs.run_on_pty(argv, stdin, timeout)
                return await execs.run_with_pipes(argv, stdin, timeout)
            except asyncio.TimeoutError:
                execs.kill_pid_from(pid_file)  # the process inside, not only runc
                raise ExecTimeout(f"exec {list(args)!r} in {cid} timed out after {timeout}s") from None
        finally:
            proc_file.unlink(missing_ok=True)
            pid_file.unlink(missing_ok=True)

    def exec_interactive(self, cid: str, args: Sequence[str], *, tty: bool = True, stdin: bool = True,
                         env: Mapping[str, str] | Sequence[str] | None = None, user: str | None = None) -> int:
        """Run `args` attached to the caller's own terminal/stdio (CLI `exec -it`); blocks; exit code.

        With tty=True runc makes a pty and relays it to our stdin/stdout, which must be a terminal.
        """
        self._meta(cid)
        proc_spec = self._exec_process(cid, args, tty=tty, env=env, user=user)
        proc_file = self._write_process_file(cid, proc_spec)
        try:
            return subprocess.run(self.runc.argv("exec", "--process", str(proc_file), cid),
                                  stdin=None if stdin else subprocess.DEVNULL).returncode
        finally:
            proc_file.unlink(missing_ok=True)

    def attach_interactive(self, cid: str, *, start: bool = False) -> None:
        """Relay the caller's stdin/stdout/stderr to the container through conmon; blocks
        until the container's output ends. `start`: start a created container once attached,
        so no output is missed (`run -it`). Only for callers with a terminal or pipes of
        their own (the CLI), never inside the daemon's event loop.
        """

        meta = self._meta(cid)
        sock = attach.connect(self.paths.container(cid) / "attach")
        try:
            if start:
                started = time.time()
                subprocess.run(self.runc.argv("start", cid), check=True, capture_output=True)
                self.paths.started_at(cid).write_text(str(started))
            attach.attach_terminal(self.paths.container(cid), sock, tty=bool(meta.get("tty")),
                                   stdin=bool(meta.get("stdin")))
        except subprocess.CalledProcessError as exc:
            raise RuncError("runc start", exc.stderr.decode(errors="replace"), exc.returncode) from None
        finally:
            sock.close()

    # -- logs and stats -------------------------------------------------------------------

    async def logs(self, cid: str, *, follow: bool = False, tail: int | None = None,
                   since: dt.datetime | None = None, previous: bool = False) -> AsyncIterator[LogLine]:
        """CRI log lines; `previous` reads the log an earlier container left at the same log_path."""
        path = self.log_path(cid)
        if previous:
            path = path.with_name(path.name + ".previous")
            follow = False

        async def running() -> bool:
            try:
                return (await self.status(cid)).state in (RUNNING, CREATED)
            except ContainerNotFound:
                return False

        async for line in logs_mod.stream_logs(path, follow=follow, tail=tail, since=since, is_running=running):
            yield line

    async def rotate_log(self, cid: str) -> Path:
        """Move the log to `<log>.1` (replacing an older one) and have conmon reopen the path.

        kubelet's rotation, for a caller that enforces a size (conmon's own
        `log_size_max` cap drops old lines instead of keeping them). `logs` reads both.
        """
        path = self.log_path(cid)
        ctl = self.paths.container(cid) / "ctl"
        await asyncio.to_thread(path.replace, logs_mod.rotated_path(path))
        # conmon's control fifo: "<event> <height> <width>\n"; event 2 = reopen the log file
        try:
            fd = os.open(ctl, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:  # no reader: conmon is gone, the container has exited
            path.touch()
            if (await self.status(cid)).state in (RUNNING, CREATED):
                raise RuncError("conmon reopen-log", str(exc)) from None
            return path
        try:
            os.write(fd, b"2 0 0\n")
        finally:
            os.close(fd)
        return path

    async def stats(self, cid: str) -> dict[str, int | None]:
        meta = self._meta(cid)
        return await asyncio.to_thread(cgroups.stats, meta["cgroups_path"])
