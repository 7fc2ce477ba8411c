"""Starting conmon, the per-container shim that owns stdio, logs and the exit code.

conmon (CRI-O's and podman's shim) double-forks and calls `runc create`; it then stays
as the container's parent (a subreaper), writes the CRI-format log with size-based
rotation, writes `<exits>/<id>` with the exit status (128+signal when killed), and
an `oom` file in its persist dir when the memory cgroup OOM-killed the container.
Because it is detached (its own session, reparented to init), a container outlives the
process that created it, and any later Runtime re-adopts it from the files alone.

We learn the outcome of `runc create` through conmon's sync pipe (env _OCI_SYNCPIPE):
one JSON line `{"data": <pid>}` on success or `{"data": -1, "message": ...}`.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path

from shoal.runtime.errors import RuncError
from shoal.runtime.paths import RuntimePaths

CONMON = "conmon"
SYNC_TIMEOUT_S = 30.0


def conmon_argv(paths: RuntimePaths, cid: str, *, runtime_binary: str, log_path: Path,
                log_size_max: int, tty: bool, stdin: bool, stdin_once: bool = False,
                name: str | None) -> list[str]:
    runtime_path = shutil.which(runtime_binary) or runtime_binary
    argv = [
        CONMON, "--api-version", "1",
        "-c", cid, "-u", cid, "-n", name or cid,
        "-r", runtime_path,
        "-b", str(paths.container(cid)),
        "-p", str(paths.container_pid(cid)),
        "-P", str(paths.conmon_pid(cid)),
        "-l", f"k8s-file:{log_path}",
        "--exit-dir", str(paths.exits),
        "--persist-dir", str(paths.container(cid)),
        "--socket-dir-path", str(paths.sockets),
        "--runtime-arg", f"--root={paths.runc_root}",
    ]
    if log_size_max > 0:
        argv += ["--log-size-max", str(log_size_max)]
    if tty:
        argv.append("-t")
    if stdin:
        argv += ["-i"] if stdin_once else ["-i", "--leave-stdin-open"]
    return argv


async def start_conmon(argv: list[str], shim_log: Path, cwd: Path, timeout: float = SYNC_TIMEOUT_S) -> int:
    """Run conmon in `cwd`, wait for `runc create` to finish; the container's init pid.

    conmon also writes an `oom` file into its working directory (a legacy of CRI-O's
    layout), so `cwd` must be the container's own directory.
    """
    read_fd, write_fd = os.pipe()
    os.set_inheritable(write_fd, True)
    try:
        with open(shim_log, "ab") as err:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=err,
                pass_fds=(write_fd,),
                env={**os.environ, "_OCI_SYNCPIPE": str(write_fd)},
                start_new_session=True,
                cwd=cwd,
            )
        os.close(write_fd)
        write_fd = -1
        await proc.wait()  # the first conmon exits at once, its child carries on
        data = await asyncio.wait_for(_read_until_eof_or_line(read_fd), timeout)
    finally:
        if write_fd >= 0:
            os.close(write_fd)
        os.close(read_fd)
    if not data:
        detail = shim_log.read_text(errors="replace")[-2000:] if shim_log.exists() else ""
        raise RuncError("conmon", f"exited without reporting the container: {detail}")
    message = json.loads(data.splitlines()[0])
    pid = int(message.get("data", -1))
    if pid <= 0:
        raise RuncError("runc create", str(message.get("message") or message))
    return pid


async def _read_until_eof_or_line(fd: int) -> bytes:
    loop = asyncio.get_running_loop()
    os.set_blocking(fd, False)
    buf = bytearray()
    done: asyncio.Future[None] = loop.create_future()

    def on_readable() -> None:
        try:
            chunk = os.read(fd, 4096)
        except BlockingIOError:
            return
        if chunk:
            buf.extend(chunk)
        if (not chunk or b"\n" in buf) and not done.done():
            done.set_result(None)

    loop.add_reader(fd, on_readable)
    try:
        await done
    finally:
        loop.remove_reader(fd)
    return bytes(buf)
