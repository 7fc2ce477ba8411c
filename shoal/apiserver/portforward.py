"""`pods/portforward` over WebSocket, Kubernetes' channel form (what the official Python
client and other WebSocket clients speak).

Wire format (`v4.channel.k8s.io` / `portforward.k8s.io` subprotocol): the query names
the pod's ports (`ports=80&ports=8080` or `ports=80,8080`); port i owns channel 2i for
data (both ways) and 2i+1 for errors (server -> client). The server's first message on
each channel is the channel byte and the port number, two bytes little-endian. Then
data flows as `[2i] + bytes`; a failure to reach the port, or its end, is told on the
error channel as text. The WebSocket closes once every port's connection has ended or
the client closes it.

Not served: kubectl's own port-forward protocols. kubectl 1.30+ asks for the
subprotocol `SPDY/3.1+portforward.k8s.io` (SPDY frames tunnelled in WebSocket) and then
falls back to plain SPDY; both need a SPDY/3.1 implementation, which shoal does not
have. Such a request gets 400 with a message that says so.

Concurrency: one handler task per session and two relay tasks per port (client -> pod,
pod -> client); every task is cancelled and every pod connection closed before the
handler returns, however the session ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Any, Protocol

from aiohttp import WSMsgType, web

from shoal.api import errors
from shoal.apiserver.verbs import Target
from shoal.tasks import cancel_and_wait

log = logging.getLogger("shoal.apiserver.portforward")

PROTOCOLS = ("v4.channel.k8s.io", "portforward.k8s.io")
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
READ_CHUNK = 65536


class PodPorts(Protocol):
    """What `pods/portforward` needs from the node."""

    async def open_port(self, namespace: str, pod: str, port: int) -> tuple[asyncio.StreamReader,
                                                                            asyncio.StreamWriter]:
        """A TCP connection to `port` of the pod (its own localhost, as kubelet
        connects). Raises StatusError when the pod cannot be served; OSError when the
        port refuses."""
        ...

    async def check_ports(self, namespace: str, pod: str) -> None:
        """Raise StatusError (Kubernetes' words) when the pod cannot be port-forwarded."""
        ...


def parse_ports(query: Any) -> list[int]:
    """The `ports` query -> port numbers; bad values raise BadRequest naming the field."""
    values = query.getall("ports", ()) or query.getall("port", ())
    if not values:
        raise errors.BadRequest('ports: query parameter "ports" is required')
    ports: list[int] = []
    for value in values:
        for text in value.split(","):
            text = text.strip()
            try:
                port = int(text)
            except ValueError:
                raise errors.BadRequest(f"ports: expected port numbers, got {text!r}") from None
            if not 0 < port < 65536:
                raise errors.BadRequest(f"ports: port {port} must be between 1 and 65535")
            ports.append(port)
    return ports


def port_header(channel: int, port: int) -> bytes:
    """The first message on a channel: its number, then the port little-endian."""
    return bytes([channel]) + port.to_bytes(2, "little")


class PortForwardHandler:
    """The `add_subresource` handler for pods/portforward over a `PodPorts`."""

    def __init__(self, ports: PodPorts) -> None:
        self.ports = ports

    async def __call__(self, request: web.Request, target: Target) -> web.StreamResponse:
        if request.method not in ("GET", "POST"):
            raise errors.MethodNotAllowed(f"{request.method} is not allowed on pods/portforward")
        namespace, name = target.namespace or "default", target.name or ""
        await self.ports.check_ports(namespace, name)
        ws = web.WebSocketResponse(protocols=PROTOCOLS, autoping=True, heartbeat=None,
                                   max_msg_size=MAX_MESSAGE_BYTES)
        ready = ws.can_prepare(request)
        if not ready.ok or ready.protocol is None:
            raise errors.BadRequest(
                "this server serves pods/portforward over WebSocket with the subprotocol "
                f"{' or '.join(PROTOCOLS)} only; SPDY (and kubectl's SPDY/3.1+portforward.k8s.io "
                "tunnel) is not supported")
        ports = parse_ports(request.query)
        await ws.prepare(request)
        session = _Session(ws, self.ports, namespace, name, ports)
        try:
            await session.run()
        finally:
            await session.close()
        return ws


class _Session:
    def __init__(self, ws: web.WebSocketResponse, ports: PodPorts, namespace: str, pod: str,
                 numbers: list[int]) -> None:
        self.ws = ws
        self.ports = ports
        self.namespace, self.pod = namespace, pod
        self.numbers = numbers
        self.writers: dict[int, asyncio.StreamWriter] = {}  # data channel -> pod connection
        self.tasks: list[asyncio.Task[None]] = []

    async def run(self) -> None:
        for i, port in enumerate(self.numbers):
            await self.ws.send_bytes(port_header(2 * i, port))
            await self.ws.send_bytes(port_header(2 * i + 1, port))
        for i, port in enumerate(self.numbers):
            try:
                reader, writer = await self.ports.open_port(self.namespace, self.pod, port)
            except (OSError, asyncio.TimeoutError, errors.StatusError) as exc:
                await self.ws.send_bytes(bytes([2 * i + 1]) + forward_error(self.pod, port, exc).encode())
                continue
            self.writers[2 * i] = writer
            self.tasks.append(asyncio.create_task(self._from_pod(2 * i, reader), name="portforward-out"))
        if not self.tasks:
            return
        from_client = asyncio.create_task(self._from_client(), name="portforward-in")
        pods_done = asyncio.gather(*self.tasks)
        try:
            await asyncio.wait({from_client, pods_done}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await cancel_and_wait(from_client)
            pods_done.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pods_done

    async def _from_pod(self, channel: int, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(READ_CHUNK):
                await self.ws.send_bytes(bytes([channel]) + data)

    async def _from_client(self) -> None:
        async for msg in self.ws:
            if msg.type != WSMsgType.BINARY or len(msg.data) < 2:
                continue  # not a data message: ignored, as a malformed frame must not end the session
            writer = self.writers.get(msg.data[0])
            if writer is None or writer.is_closing():
                continue
            writer.write(msg.data[1:])
            with contextlib.suppress(ConnectionError, OSError):
                await writer.drain()

    async def close(self) -> None:
        await cancel_and_wait(self.tasks)
        for writer in self.writers.values():
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        if not self.ws.closed:
            with contextlib.suppress(Exception):
                await self.ws.close()


def forward_error(pod: str, port: int, exc: BaseException) -> str:
    """The error-channel text for a port that could not be reached (kubelet's wording)."""
    if isinstance(exc, errors.StatusError):
        reason = exc.message
    elif isinstance(exc, OSError) and exc.errno:
        reason = f"failed to connect to localhost:{port} inside the pod's network namespace: " \
                 f"{os.strerror(exc.errno).lower()}"
    elif isinstance(exc, asyncio.TimeoutError):
        reason = f"failed to connect to localhost:{port} inside the pod's network namespace: timed out"
    else:
        reason = str(exc)
    return f"error forwarding port {port} to pod {pod}: {reason}"
