"""Kubernetes' channel protocol over WebSocket (`v5.channel.k8s.io`, `v4.channel.k8s.io`),
the wire under `pods/exec` and `pods/attach`.

Each binary message is one channel byte then data: 0 stdin (client -> server),
1 stdout, 2 stderr, 3 the final `Status` as JSON (server -> client), 4 terminal
resize `{"Width": W, "Height": H}` (client -> server); text frames are read as their
UTF-8 bytes, as Kubernetes reads them. v5 adds channel 255: the
message `[255, N]` says the client closed its stream N (stdin's EOF). A message
that fits none of these (text, empty, unknown channel, resize that is not JSON) is
ignored, so a malformed frame ends nothing but itself; a frame over
`MAX_MESSAGE_BYTES` closes that one connection.

`serve` upgrades the request, starts the session, relays until the process's output
ends (then sends the exit Status and closes) or the client goes away, and always ends
the session with `ProcessIO.kill`. Two tasks per session: the output pump and the
client reader; both are cancelled and awaited before `serve` returns.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, AsyncIterator, Protocol, Sequence

from aiohttp import WSMessage, WSMsgType, web

from shoal.api import errors
from shoal.tasks import cancel_and_wait

log = logging.getLogger("shoal.apiserver.channels")

PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
FIRST_SIZE_WAIT_S = 1.0


class ProcessIO(Protocol):
    """One exec or attach session, seen from the API server."""

    async def start(self) -> None:
        """Start the process (exec) or connect to the container (attach)."""

    async def write_stdin(self, data: bytes) -> None: ...

    async def close_stdin(self) -> None: ...

    async def resize(self, width: int, height: int) -> None: ...

    def output(self) -> AsyncIterator[tuple[int, bytes]]:
        """(STDOUT or STDERR, data) until the process's output ends."""
        ...

    async def wait(self) -> int | None:
        """The exit code (None for an attach, which has none of its own)."""
        ...

    async def kill(self) -> None:
        """End the session and everything it started; idempotent."""
        ...


def exit_status(code: int | None, command: Sequence[str]) -> dict[str, Any]:
    """The Status kubectl reads from the error channel for an exit code (it exits with
    the code it finds in the ExitCode cause)."""
    if not code:
        return {"metadata": {}, "status": "Success"}
    return {
        "metadata": {}, "status": "Failure",
        "message": f"command terminated with non-zero exit code: error executing command "
                   f"[{' '.join(command)}], exit code {code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


def parse_resize(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a resize message, or None when it is not one."""
    try:
        size = json.loads(data)
        width, height = int(size.get("Width", 0)), int(size.get("Height", 0))
    except (ValueError, AttributeError, TypeError):
        return None
    if not (0 < width < 65536 and 0 < height < 65536):
        return None
    return width, height


async def serve(request: web.Request, proc: ProcessIO, *, command: Sequence[str],
                tty: bool = False) -> web.StreamResponse:
    """Upgrade, start `proc`, relay; see the module docstring. With `tty` the process
    starts once the client's first resize has arrived (kubectl sends it right after
    connecting; at most FIRST_SIZE_WAIT_S), so it starts with the client's size."""
    ws = web.WebSocketResponse(protocols=PROTOCOLS, autoping=True, heartbeat=None,
                               max_msg_size=MAX_MESSAGE_BYTES)
    ready = ws.can_prepare(request)
    if not ready.ok or ready.protocol is None:
        await proc.kill()
        raise errors.BadRequest(
            "this server serves pods/exec and pods/attach over WebSocket with one of "
            f"the subprotocols {', '.join(PROTOCOLS)}; SPDY is not supported")
    v5 = ready.protocol.startswith("v5")
    try:
        await ws.prepare(request)
        early = await _first_size(ws, proc) if tty else []
        await proc.start()
        for msg in early:
            await _deliver(msg, proc, v5=v5)
        code = await _relay(ws, proc, v5=v5)
        if code is not _GONE and not ws.closed:
            await ws.send_bytes(bytes([ERROR]) + json.dumps(exit_status(code, command)).encode())
            await ws.close()
    except (ConnectionResetError, ConnectionError):
        pass  # the client went away while we wrote
    finally:
        await proc.kill()
    return ws


_GONE: Any = object()


async def _relay(ws: web.WebSocketResponse, proc: ProcessIO, *, v5: bool) -> Any:
    """Pump output to the client and client messages to the process. Returns the exit
    code, or _GONE when the client closed first."""

    async def pump() -> None:
        async for channel, data in proc.output():
            await ws.send_bytes(bytes([channel]) + data)

    output = asyncio.create_task(pump(), name="channel-output")
    reader = asyncio.create_task(_read_client(ws, proc, v5=v5), name="channel-input")
    try:
        done, _ = await asyncio.wait({output, reader}, return_when=asyncio.FIRST_COMPLETED)
        if output in done:
            output.result()
            return await proc.wait()
        return _GONE
    finally:
        await cancel_and_wait(reader, output)


async def _first_size(ws: web.WebSocketResponse, proc: ProcessIO) -> list[WSMessage]:
    """Read until the first resize (applied before the start) or FIRST_SIZE_WAIT_S;
    return the other messages read, for delivery after the start."""
    early: list[WSMessage] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + FIRST_SIZE_WAIT_S
    while (left := deadline - loop.time()) > 0:
        try:
            msg = await ws.receive(timeout=left)
        except asyncio.TimeoutError:
            break
        if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
            break
        payload = _payload(msg) or b""
        if payload[:1] == bytes([RESIZE]):
            size = parse_resize(payload[1:])
            if size is not None:
                await proc.resize(*size)
                break
        early.append(msg)
    return early


def _payload(msg: WSMessage) -> bytes | None:
    """A message's bytes: binary, or text (the official Python client sends str data as
    text frames, which Kubernetes reads the same way)."""
    if msg.type == WSMsgType.BINARY:
        return msg.data or None
    if msg.type == WSMsgType.TEXT:
        return msg.data.encode() or None
    return None


async def _deliver(msg: WSMessage, proc: ProcessIO, *, v5: bool) -> None:
    payload = _payload(msg)
    if payload is None:
        return
    channel, data = payload[0], payload[1:]
    if channel == STDIN:
        if data:
            await proc.write_stdin(data)
    elif channel == RESIZE:
        size = parse_resize(data)
        if size is not None:
            await proc.resize(*size)
    elif channel == CLOSE and v5 and data[:1] == bytes([STDIN]):
        await proc.close_stdin()


async def _read_client(ws: web.WebSocketResponse, proc: ProcessIO, *, v5: bool) -> None:
    async for msg in ws:
        await _deliver(msg, proc, v5=v5)
