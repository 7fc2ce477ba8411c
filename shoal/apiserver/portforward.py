"""`pods/portforward` in the three forms clients speak, on one handler.

- kubectl 1.31+ (`SPDY/3.1+portforward.k8s.io`, the default since 1.31): a WebSocket
  whose binary messages carry SPDY/3.1 frames; kubectl then opens an error and a data
  stream per local connection (`spdyforward`).
- kubectl's fallback, and older kubectl: a plain HTTP/1.1 `Upgrade: SPDY/3.1` with
  `X-Stream-Protocol-Version: portforward.k8s.io` (kubelet's handshake: the header is
  required, the answer names the chosen version), then the same SPDY streams.
- The official clients' channel form (`v4.channel.k8s.io` / `portforward.k8s.io`
  WebSocket subprotocols), below: the query names the pod's ports
  (`ports=80&ports=8080` or `ports=80,8080`); port i owns channel 2i for data (both
  ways) and 2i+1 for errors (server -> client). The server's first message on each
  channel is the channel byte and the port number, two bytes little-endian. Then data
  flows as `[2i] + bytes`; a failure to reach the port is told on the error channel as
  text. The WebSocket closes once every port's connection has ended or the client
  closes it.

The pod is checked first (no such pod, not running: a Status kubectl prints); a request
that is no upgrade at all gets 400 `Upgrade request required`, as Kubernetes answers.
Errors on the error stream/channel read as kubelet's (`podports.forward_error`).

Concurrency: one handler task per session; the channel form has two relay tasks per
port (client -> pod, pod -> client), the SPDY form one task per forwarded connection
(`spdyforward`). Every task is cancelled and every pod connection closed before the
handler returns, however the session ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiohttp import WSMsgType, web

from shoal.api import errors
from shoal.apiserver import podports, spdyforward
from shoal.apiserver.spdysession import UpgradedTransport, WebSocketTransport
from shoal.apiserver.verbs import Target
from shoal.tasks import cancel_and_wait

log = logging.getLogger("shoal.apiserver.portforward")

PROTOCOLS = ("v4.channel.k8s.io", "portforward.k8s.io")
SPDY_TUNNEL_PROTOCOL = "SPDY/3.1+" + spdyforward.PROTOCOL
SPDY_UPGRADE = "SPDY/3.1"
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
READ_CHUNK = 65536

PodPorts = podports.PodPorts


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


def is_spdy_upgrade(headers: Any) -> bool:
    """A plain HTTP Upgrade to SPDY/3.1 (kubelet's test: both headers contain it)."""
    return "upgrade" in headers.get("Connection", "").lower() and \
        SPDY_UPGRADE.lower() in headers.get("Upgrade", "").lower()


def negotiate_stream_protocol(headers: Any) -> str:
    """kubelet's handshake on `X-Stream-Protocol-Version` (comma-separated, repeatable):
    the first version the client names that we serve, else the error it gives."""
    offered = [p.strip() for value in headers.getall("X-Stream-Protocol-Version", ())
               for p in value.split(",") if p.strip()]
    if not offered:
        raise errors.BadRequest("unable to upgrade: X-Stream-Protocol-Version is required")
    if spdyforward.PROTOCOL not in offered:
        raise errors.Forbidden(f"unable to upgrade: unable to negotiate protocol: client supports "
                               f"[{' '.join(offered)}], server accepts [{spdyforward.PROTOCOL}]")
    return spdyforward.PROTOCOL


class PortForwardHandler:
    """The `add_subresource` handler for pods/portforward over a `PodPorts`."""

    def __init__(self, ports: PodPorts) -> None:
        self.ports = ports

    async def __call__(self, request: web.Request, target: Target) -> web.StreamResponse:
        if request.method not in ("GET", "POST"):
            raise errors.MethodNotAllowed(f"{request.method} is not allowed on pods/portforward")
        namespace, name = target.namespace or "default", target.name or ""
        uid = await self.ports.check_ports(namespace, name)
        ws = web.WebSocketResponse(protocols=(SPDY_TUNNEL_PROTOCOL, *PROTOCOLS), autoping=True,
                                   heartbeat=None, max_msg_size=MAX_MESSAGE_BYTES)
        ready = ws.can_prepare(request)
        if ready.ok and ready.protocol == SPDY_TUNNEL_PROTOCOL:
            await ws.prepare(request)
            await spdyforward.SpdyPortForward(WebSocketTransport(ws), self.ports, namespace, name, uid).serve()
            return ws
        if ready.ok and ready.protocol is not None:
            ports = parse_ports(request.query)
            await ws.prepare(request)
            session = _Session(ws, self.ports, namespace, name, uid, ports)
            try:
                await session.run()
            finally:
                await session.close()
            return ws
        if ready.ok or not is_spdy_upgrade(request.headers):
            raise errors.BadRequest(
                "Upgrade request required: pods/portforward is served over WebSocket (subprotocol "
                f"{SPDY_TUNNEL_PROTOCOL} or {' or '.join(PROTOCOLS)}) or an HTTP Upgrade to {SPDY_UPGRADE}")
        version = negotiate_stream_protocol(request.headers)
        transport = await UpgradedTransport.upgrade(request, {
            "Connection": "Upgrade", "Upgrade": SPDY_UPGRADE, "X-Stream-Protocol-Version": version})
        await spdyforward.SpdyPortForward(transport, self.ports, namespace, name, uid).serve()
        return transport.response


class _Session:
    def __init__(self, ws: web.WebSocketResponse, ports: PodPorts, namespace: str, pod: str, uid: str,
                 numbers: list[int]) -> None:
        self.ws = ws
        self.ports = ports
        self.namespace, self.pod, self.uid = namespace, pod, uid
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
                await self.ws.send_bytes(bytes([2 * i + 1]) + podports.forward_error(self.pod, self.uid, port, exc).encode())
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
