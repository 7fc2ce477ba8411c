"""Pod streaming subresources as Kubernetes serves them: `pods/log`, `pods/exec`,
`pods/attach` (here and in `channels`) and `pods/portforward` (`portforward`).

The handlers here speak HTTP/WebSocket only; what runs in the pod comes through the
`PodStreams` protocol, which the node implements (`shoal.node.streams`) and the daemon
passes to `install`, which serves them through `ApiServer.add_subresource`. The API
server never reaches the runtime itself.

Wire formats (Kubernetes' semantics, written from its docs):
- `pods/log`: a chunked `text/plain` body, one line per log entry, with
  `timestamps=true` an RFC 3339 time and a space in front; `limitBytes` cuts the body
  at that many bytes; `follow` keeps the body open until the container stops or the
  client goes away.
- `pods/exec` and `pods/attach`: a WebSocket (`channels.PROTOCOLS`, see
  `shoal.apiserver.channels`): stdin, stdout, stderr, the final `Status` and resize
  as channels 0-4; v5 adds the client's stdin close. The server sends the Status once
  the process has ended, then closes. SPDY is not served: a request without a
  WebSocket upgrade gets 400 (after the pod and container were checked, so kubectl's
  SPDY fallback prints the same error Kubernetes gives).

Errors before the upgrade (no such pod, container waiting or not running, bad
parameter) are `StatusError`s raised by the `PodStreams` implementation or the
parsers here, rendered as a Kubernetes Status by the server's error middleware.

Concurrency: one handler task per stream, plus (exec/attach) one task pumping the
process's output and one reading the client; a log follower has a watcher that ends it
when the client's connection closes (aiohttp does not cancel handlers). Whatever way a
stream ends, the handler calls `ProcessIO.kill` or closes the log iterator, so nothing
the stream started outlives the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from dataclasses import dataclass
from typing import Any, AsyncIterator, Protocol

from aiohttp import web

from shoal import timestamps
from shoal.api import errors
from shoal.apiserver import channels, portforward
from shoal.apiserver.http import ApiServer
from shoal.apiserver.verbs import Target
from shoal.tasks import cancel_and_wait

DISCONNECT_POLL_S = 0.5


@dataclass(frozen=True)
class LogOptions:
    """The query of `pods/log`, parsed (Kubernetes' PodLogOptions)."""

    container: str | None = None
    follow: bool = False
    previous: bool = False
    timestamps: bool = False
    tail_lines: int | None = None
    since: dt.datetime | None = None
    limit_bytes: int | None = None


@dataclass(frozen=True)
class LogEntry:
    """One line of a container's log, without its newline."""

    time: dt.datetime
    text: str


@dataclass(frozen=True)
class ExecOptions:
    """The query of `pods/exec` and `pods/attach`, parsed (PodExecOptions/PodAttachOptions)."""

    container: str | None
    command: tuple[str, ...]
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool


ProcessIO = channels.ProcessIO
"""One exec or attach session, prepared by `open_exec`/`open_attach`, not yet started."""


class PodStreams(portforward.PodPorts, Protocol):
    """What the API server needs from the node for the streaming subresources.

    Each `open_*` checks the pod and container first and raises a `StatusError` worded
    as Kubernetes words it when they cannot be served; it starts nothing the caller
    would have to stop: exec/attach sessions start with `ProcessIO.start`, a log
    iterator reads only as it is iterated (and stops when closed)."""

    async def open_logs(self, namespace: str, pod: str, options: LogOptions) -> AsyncIterator[LogEntry]: ...

    async def open_exec(self, namespace: str, pod: str, options: ExecOptions) -> ProcessIO: ...

    async def open_attach(self, namespace: str, pod: str, options: ExecOptions) -> ProcessIO: ...


# -- parameters (pure) -------------------------------------------------------------------


def _bool(query: Any, name: str, default: bool = False) -> bool:
    value = query.get(name)
    if value is None:
        return default
    if value.lower() in ("true", "1", ""):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise errors.BadRequest(f"{name}: expected true or false, got {value!r}")


def _int(query: Any, name: str, minimum: int) -> int | None:
    value = query.get(name)
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        raise errors.BadRequest(f"{name}: expected an integer, got {value!r}") from None
    if number < minimum:
        raise errors.BadRequest(f"{name}: must be greater than or equal to {minimum}, got {number}")
    return number


def parse_log_options(query: Any, now: dt.datetime) -> LogOptions:
    """The `pods/log` query -> LogOptions; a bad value raises BadRequest naming the field."""
    since_seconds = _int(query, "sinceSeconds", 1)
    since_time = query.get("sinceTime")
    if since_seconds is not None and since_time is not None:
        raise errors.BadRequest("at most one of sinceTime or sinceSeconds may be specified")
    since = None
    if since_seconds is not None:
        since = now - dt.timedelta(seconds=since_seconds)
    elif since_time is not None:
        since = timestamps.parse_time_or_none(since_time)
        if since is None:
            raise errors.BadRequest(f"sinceTime: expected an RFC 3339 time, got {since_time!r}")
    return LogOptions(
        container=query.get("container") or None,
        follow=_bool(query, "follow"),
        previous=_bool(query, "previous"),
        timestamps=_bool(query, "timestamps"),
        tail_lines=_int(query, "tailLines", 0),
        since=since,
        limit_bytes=_int(query, "limitBytes", 1),
    )


def parse_exec_options(query: Any, *, attach: bool) -> ExecOptions:
    """The `pods/exec`/`pods/attach` query -> ExecOptions (stdout and stderr default to
    true, stdin and tty to false, as in Kubernetes)."""
    command = tuple(query.getall("command", ()))
    if not attach and not command:
        raise errors.BadRequest("command: you must specify at least one command for the container")
    opts = ExecOptions(
        container=query.get("container") or None,
        command=command,
        stdin=_bool(query, "stdin"),
        stdout=_bool(query, "stdout", default=True),
        stderr=_bool(query, "stderr", default=True),
        tty=_bool(query, "tty"),
    )
    if not (opts.stdin or opts.stdout or opts.stderr):
        raise errors.BadRequest("you must specify at least 1 of stdin, stdout, stderr")
    return opts


def format_log_time(when: dt.datetime) -> str:
    """Go's RFC3339Nano, which kubelet writes: UTC, the fraction without trailing zeros."""
    utc = when.astimezone(dt.timezone.utc)
    fraction = f"{utc.microsecond:06d}000".rstrip("0")
    return utc.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "") + "Z"


def format_entry(entry: LogEntry, with_time: bool) -> bytes:
    """One log line as `pods/log` writes it."""
    text = entry.text + "\n"
    if with_time:
        text = f"{format_log_time(entry.time)} {text}"
    return text.encode(errors="replace")


def cut(data: bytes, left: int | None) -> tuple[bytes, int | None]:
    """(what may still be written of `data`, bytes left after it) under limitBytes."""
    if left is None:
        return data, None
    data = data[:left]
    return data, left - len(data)


# -- handlers ----------------------------------------------------------------------------


def _method(request: web.Request, allowed: tuple[str, ...]) -> None:
    if request.method not in allowed:
        raise errors.MethodNotAllowed(f"{request.method} is not allowed on this subresource; "
                                      f"expected {' or '.join(allowed)}")


class StreamHandlers:
    """`add_subresource` handlers for the pod streaming subresources over a `PodStreams`."""

    def __init__(self, streams: PodStreams) -> None:
        self.streams = streams

    async def logs(self, request: web.Request, target: Target) -> web.StreamResponse:
        _method(request, ("GET",))
        opts = parse_log_options(request.query, dt.datetime.now(dt.timezone.utc))
        entries = await self.streams.open_logs(target.namespace or "default", target.name or "", opts)
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        resp.enable_chunked_encoding()
        body = asyncio.create_task(self._write_logs(request, resp, entries, opts), name="pod-log")
        watcher = asyncio.create_task(_client_gone(request), name="pod-log-client")
        try:
            await asyncio.wait({body, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if body.done():
                body.result()
        finally:
            await cancel_and_wait(watcher)
            await cancel_and_wait(body)
            close = getattr(entries, "aclose", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await close()
        return resp

    @staticmethod
    async def _write_logs(request: web.Request, resp: web.StreamResponse,
                          entries: AsyncIterator[LogEntry], opts: LogOptions) -> None:
        await resp.prepare(request)
        left = opts.limit_bytes
        async for entry in entries:
            data, left = cut(format_entry(entry, opts.timestamps), left)
            await resp.write(data)
            if left is not None and left <= 0:
                break
        await resp.write_eof()

    async def exec(self, request: web.Request, target: Target) -> web.StreamResponse:
        _method(request, ("GET", "POST"))
        opts = parse_exec_options(request.query, attach=False)
        proc = await self.streams.open_exec(target.namespace or "default", target.name or "", opts)
        return await channels.serve(request, proc, command=opts.command, tty=opts.tty)

    async def attach(self, request: web.Request, target: Target) -> web.StreamResponse:
        _method(request, ("GET", "POST"))
        opts = parse_exec_options(request.query, attach=True)
        proc = await self.streams.open_attach(target.namespace or "default", target.name or "", opts)
        return await channels.serve(request, proc, command=(), tty=opts.tty)


async def _client_gone(request: web.Request) -> None:
    """Returns once the client's connection has closed."""
    while True:
        transport = request.transport
        if transport is None or transport.is_closing():
            return
        await asyncio.sleep(DISCONNECT_POLL_S)


def install(server: ApiServer, streams: PodStreams) -> None:
    """Serve pods/log, pods/exec, pods/attach and pods/portforward on `server` (before
    it serves)."""
    handlers = StreamHandlers(streams)
    server.add_subresource("pods", "log", handlers.logs, ("get",))
    server.add_subresource("pods", "exec", handlers.exec, ("create", "get"))
    server.add_subresource("pods", "attach", handlers.attach, ("create", "get"))
    server.add_subresource("pods", "portforward", portforward.PortForwardHandler(streams), ("create", "get"))
