"""The node's side of the pod streaming subresources: `shoal.apiserver.streams.PodStreams`
over the runtime (CRI log files, `runc exec`, conmon's attach socket).

Pods and containers are found through the API (`access.resolve_container`), so the
answer is what the pod's status says; errors are `StatusError`s worded as Kubernetes
words them (`container "x" in pod "y" is waiting to start: ...`, `container not found
("x")`, `cannot exec into a container in a completed pod; current phase is Failed`).

Concurrency: every session owns its subprocess (or socket) and the tasks reading it;
nothing runs before `start`; `kill` ends all of it and is idempotent, so the API server
calls it whenever a stream ends. An exec'd process is killed through runc's --pid-file
as well as runc itself: killing `runc exec` alone would leave the process running in
the container.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import pty
import signal
import socket
import struct
import termios
import tty as tty_mod
import uuid
from pathlib import Path
from typing import Any, AsyncIterator, Callable

from shoal.api import errors
from shoal.api.client import ApiClient
from shoal.apiserver.channels import STDERR, STDOUT
from shoal.apiserver.streams import ExecOptions, LogEntry, LogOptions
from shoal.config import Settings
from shoal.node import probes
from shoal.node.access import resolve_container
from shoal.node.errors import ContainerNotFound
from shoal.runtime import Runtime
from shoal.runtime import attach as attach_mod
from shoal.runtime import logs as runtime_logs
from shoal.runtime.errors import ContainerNotFound as RuntimeContainerNotFound
from shoal.tasks import cancel_and_wait

READ_CHUNK = 65536
PID_FILE_WAIT_S = 2.0
PORT_CONNECT_TIMEOUT_S = 10.0


def choose_container(pod: dict[str, Any], container: str | None) -> str:
    """The container a request means, with the API server's errors (400): no guess
    when the pod has several (kubectl picks one itself and says so)."""
    spec = pod.get("spec") or {}
    names = [c["name"] for c in spec.get("containers") or []]
    init_names = [c["name"] for c in spec.get("initContainers") or []]
    name = pod["metadata"]["name"]
    if container is None:
        if len(names) == 1:
            return names[0]
        message = f"a container name must be specified for pod {name}, choose one of: [{' '.join(names)}]"
        if init_names:
            message += f" or one of the init containers: [{' '.join(init_names)}]"
        raise errors.BadRequest(message)
    if container not in names + init_names:
        raise errors.BadRequest(f"container {container} is not valid for pod {name}")
    return container


def check_streamable(pod: dict[str, Any], verb: str) -> None:
    """Kubernetes' refusals before exec/attach reaches the node (400)."""
    name = pod["metadata"]["name"]
    phase = (pod.get("status") or {}).get("phase")
    if phase in ("Succeeded", "Failed"):
        raise errors.BadRequest(f"cannot {verb} a container in a completed pod; current phase is {phase}")
    if not (pod.get("spec") or {}).get("nodeName"):
        raise errors.BadRequest(f"pod {name} does not have a host assigned")


class NodeStreams:
    """PodStreams for the pods of this node."""

    def __init__(self, client: ApiClient, settings: Settings, runtime: Runtime) -> None:
        self.client = client
        self.settings = settings
        self.runtime = runtime

    async def _pod(self, namespace: str, pod: str) -> dict[str, Any]:
        return await self.client.get("pods", namespace, pod)  # NotFound: pods "x" not found

    async def _instance(self, namespace: str, pod: str, name: str, previous: bool = False) -> tuple[str, Path]:
        try:
            return await resolve_container(self.client, self.settings, namespace, pod, name, previous)
        except ContainerNotFound as exc:
            raise errors.BadRequest(str(exc)) from None

    async def _running(self, cid: str) -> bool:
        try:
            return (await self.runtime.status(cid)).running
        except RuntimeContainerNotFound:
            return False

    async def open_logs(self, namespace: str, pod: str, options: LogOptions) -> AsyncIterator[LogEntry]:
        name = choose_container(await self._pod(namespace, pod), options.container)
        cid, path = await self._instance(namespace, pod, name, options.previous)
        follow = options.follow and not options.previous

        async def entries() -> AsyncIterator[LogEntry]:
            async for line in runtime_logs.stream_logs(
                    path, follow=follow, tail=options.tail_lines, since=options.since,
                    is_running=lambda: self._running(cid)):
                yield LogEntry(line.time, line.text)

        return entries()

    async def _running_container(self, namespace: str, pod: str, container: str | None, verb: str) -> str:
        obj = await self._pod(namespace, pod)
        name = choose_container(obj, container)
        check_streamable(obj, verb)
        try:
            cid, _ = await resolve_container(self.client, self.settings, namespace, pod, name)
        except ContainerNotFound:
            cid = None
        if cid is None or not await self._running(cid):
            raise errors.BadRequest(f'container not found ("{name}")')  # kubelet's words
        return cid

    async def open_exec(self, namespace: str, pod: str, options: ExecOptions) -> "ExecSession":
        cid = await self._running_container(namespace, pod, options.container, "exec into")
        bundle = self.runtime.paths.container(cid)
        base = f"exec-{uuid.uuid4().hex[:12]}"
        config = json.loads(await asyncio.to_thread(self.runtime.paths.config(cid).read_text))
        return ExecSession(bundle / f"{base}.json", bundle / f"{base}.pid", config["process"],
                           lambda process, pid: self.runtime.runc.argv(
                               "exec", "--process", str(process), "--pid-file", str(pid), cid),
                           command=options.command, tty=options.tty, stdin=options.stdin)

    async def check_ports(self, namespace: str, pod: str) -> str:
        obj = await self._pod(namespace, pod)
        check_streamable(obj, "forward ports of")
        return obj["metadata"].get("uid") or ""

    async def open_port(self, namespace: str, pod: str, port: int) -> tuple[asyncio.StreamReader,
                                                                            asyncio.StreamWriter]:
        """Connect to 127.0.0.1:port inside the pod's network namespace, as kubelet does
        (so a meshed pod's sidecar capture is not in the way); a host-network pod's port
        is the host's."""
        obj = await self._pod(namespace, pod)
        check_streamable(obj, "forward ports of")
        netns = None
        for name in [c["name"] for c in (obj.get("spec") or {}).get("containers") or []]:
            try:
                cid, _ = await resolve_container(self.client, self.settings, namespace, pod, name)
            except ContainerNotFound:
                continue
            if await self._running(cid):
                config = json.loads(await asyncio.to_thread(self.runtime.paths.config(cid).read_text))
                netns = network_namespace(config)
                break
        else:
            raise errors.BadRequest(f"pod {pod} has no running container to forward ports to")
        return await probes.open_stream("127.0.0.1", port, PORT_CONNECT_TIMEOUT_S, netns=netns)

    async def open_attach(self, namespace: str, pod: str, options: ExecOptions) -> "AttachSession":
        cid = await self._running_container(namespace, pod, options.container, "attach to")
        return AttachSession(self.runtime.paths.container(cid), stdin=options.stdin)


def exec_process(container_process: dict[str, Any], command: tuple[str, ...], *, tty: bool,
                 size: tuple[int, int] | None) -> dict[str, Any]:
    """The OCI process of an exec: the container's own (env, cwd, user, capabilities)
    running `command`; with a tty of `size` (width, height) from its first instant, so
    a command that asks at once (`stty size`) sees the client's terminal."""
    process = dict(container_process)
    process["args"] = list(command)
    process["terminal"] = tty
    process.pop("consoleSize", None)
    if tty and size is not None:
        process["consoleSize"] = {"width": size[0], "height": size[1]}
    return process


def network_namespace(config: dict[str, Any]) -> str | None:
    """The netns path an OCI config joins; None when it shares the host's."""
    for ns in (config.get("linux") or {}).get("namespaces") or []:
        if ns.get("type") == "network":
            return ns.get("path") or None
    return None


def _set_size(fd: int, width: int, height: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


class _Output:
    """(channel, data) from reader tasks, in order per reader; ends when every reader has."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue(maxsize=64)
        self.readers = 0

    async def items(self) -> AsyncIterator[tuple[int, bytes]]:
        ended = 0
        while ended < self.readers:
            item = await self.queue.get()
            if item is None:
                ended += 1
                continue
            yield item


class ExecSession:
    """`runc exec` with pipes, or on a pty we hold (tty: stderr joins stdout, as in
    Kubernetes)."""

    def __init__(self, process_file: Path, pid_file: Path, container_process: dict[str, Any],
                 argv: Callable[[Path, Path], list[str]], *, command: tuple[str, ...], tty: bool,
                 stdin: bool) -> None:
        self.process_file = process_file
        self.pid_file = pid_file
        self.container_process = container_process
        self.argv = argv(process_file, pid_file)
        self.command = command
        self.tty = tty
        self.stdin = stdin
        self.proc: asyncio.subprocess.Process | None = None
        self.master: int | None = None
        self.size: tuple[int, int] | None = None
        self.out = _Output()
        self.tasks: list[asyncio.Task[None]] = []
        self._killed = False

    async def start(self) -> None:
        if self._killed:
            return
        spec = exec_process(self.container_process, self.command, tty=self.tty, size=self.size)
        await asyncio.to_thread(self.process_file.write_text, json.dumps(spec))
        if self.tty:
            master, slave = pty.openpty()
            # our pty only carries bytes to runc, which makes the container's own
            # terminal: raw, so it neither echoes nor translates
            tty_mod.setraw(slave)
            if self.size is not None:
                _set_size(slave, *self.size)
            try:
                self.proc = await asyncio.create_subprocess_exec(
                    *self.argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
            except BaseException:
                os.close(master)
                raise
            finally:
                os.close(slave)
            os.set_blocking(master, False)
            self.master = master
            self._reader(self._read_master(master), STDOUT)
            return
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv, stdin=asyncio.subprocess.PIPE if self.stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True)
        self._reader(self._read_stream(self.proc.stdout), STDOUT)
        self._reader(self._read_stream(self.proc.stderr), STDERR)

    def _reader(self, chunks: AsyncIterator[bytes], channel: int) -> None:
        self.out.readers += 1

        async def run() -> None:
            try:
                async for data in chunks:
                    await self.out.queue.put((channel, data))
            finally:
                await self.out.queue.put(None)

        self.tasks.append(asyncio.create_task(run(), name="exec-reader"))

    @staticmethod
    async def _read_stream(stream: asyncio.StreamReader | None) -> AsyncIterator[bytes]:
        while stream is not None:
            data = await stream.read(READ_CHUNK)
            if not data:
                return
            yield data

    @staticmethod
    async def _read_master(fd: int) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        while True:
            readable = loop.create_future()
            loop.add_reader(fd, lambda: readable.done() or readable.set_result(None))
            try:
                await readable
            finally:
                loop.remove_reader(fd)
            try:
                data = os.read(fd, READ_CHUNK)
            except BlockingIOError:
                continue
            except OSError:  # EIO: runc closed the pty's last slave fd
                return
            if not data:
                return
            yield data

    def output(self) -> AsyncIterator[tuple[int, bytes]]:
        return self.out.items()

    async def write_stdin(self, data: bytes) -> None:
        if not self.stdin:
            return
        if self.master is not None:
            view = memoryview(data)
            while view and self.master is not None:
                try:
                    view = view[os.write(self.master, view):]
                except BlockingIOError:
                    await asyncio.sleep(0.01)
                except OSError:
                    return
            return
        if self.proc is not None and self.proc.stdin is not None and not self.proc.stdin.is_closing():
            self.proc.stdin.write(data)
            with contextlib.suppress(ConnectionResetError, BrokenPipeError):
                await self.proc.stdin.drain()

    async def close_stdin(self) -> None:
        if self.master is not None:
            await self.write_stdin(b"\x04")  # a terminal's EOF
        elif self.proc is not None and self.proc.stdin is not None:
            self.proc.stdin.close()

    async def resize(self, width: int, height: int) -> None:
        if self.master is None or self.proc is None:
            self.size = (width, height)  # before the start: the size it starts with
            return
        _set_size(self.master, width, height)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGWINCH)  # runc copies its terminal's size inward

    async def wait(self) -> int | None:
        assert self.proc is not None
        return await self.proc.wait()

    async def _kill_inside(self) -> None:
        """SIGKILL the exec'd process in the container (runc writes its pid right after
        starting it; give a just-started runc that moment)."""
        deadline = asyncio.get_running_loop().time() + PID_FILE_WAIT_S
        while True:
            try:
                os.kill(int(self.pid_file.read_text().strip()), signal.SIGKILL)
                return
            except (FileNotFoundError, ValueError):
                if self.proc is None or self.proc.returncode is not None:
                    return
                if asyncio.get_running_loop().time() > deadline:
                    return
                await asyncio.sleep(0.05)
            except OSError:
                return

    async def kill(self) -> None:
        if self._killed:
            return
        self._killed = True
        if self.proc is not None and self.proc.returncode is None:
            await self._kill_inside()
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        if self.proc is not None:
            await self.proc.wait()
        await cancel_and_wait(self.tasks)
        if self.master is not None:
            os.close(self.master)
            self.master = None
        self.pid_file.unlink(missing_ok=True)
        self.process_file.unlink(missing_ok=True)


class AttachSession:
    """conmon's attach socket: what we send is the container's stdin; packets back are
    a stream byte (2 stdout, 3 stderr) and data; resize goes through conmon's control
    fifo. `kill` only detaches: the container keeps running."""

    def __init__(self, bundle: Path, *, stdin: bool) -> None:
        self.bundle = bundle
        self.stdin = stdin
        self.sock: socket.socket | None = None
        self._closed = False

    async def start(self) -> None:
        sock = await asyncio.to_thread(attach_mod.connect, self.bundle / "attach")
        sock.setblocking(False)
        if self._closed:
            sock.close()
            return
        self.sock = sock

    async def output(self) -> AsyncIterator[tuple[int, bytes]]:
        loop = asyncio.get_running_loop()
        while self.sock is not None:
            try:
                packet = await loop.sock_recv(self.sock, attach_mod.BUFFER)
            except OSError:
                return
            if not packet:
                return
            yield (STDERR if packet[0] == attach_mod.STREAM_STDERR else STDOUT), packet[1:]

    async def write_stdin(self, data: bytes) -> None:
        if self.stdin and self.sock is not None and not self._closed:
            with contextlib.suppress(OSError):
                await asyncio.get_running_loop().sock_sendall(self.sock, data)

    async def close_stdin(self) -> None:
        if self.stdin and self.sock is not None and not self._closed:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_WR)

    async def resize(self, width: int, height: int) -> None:
        ctl = self.bundle / "ctl"

        def send() -> None:
            fd = os.open(ctl, os.O_WRONLY | os.O_NONBLOCK)
            try:
                os.write(fd, f"1 {height} {width}\n".encode())
            finally:
                os.close(fd)

        with contextlib.suppress(OSError):
            await asyncio.to_thread(send)

    async def wait(self) -> int | None:
        return None

    async def kill(self) -> None:
        if not self._closed:
            self._closed = True
            if self.sock is not None:
                self.sock.close()
