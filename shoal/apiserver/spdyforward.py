"""`pods/portforward` over SPDY/3.1, as kubectl speaks it and the kubelet serves it.

Per forwarded connection kubectl opens two streams with the headers `streamType`
(`error` or `data`), `port` and `requestID` (the same for both). A stream with a
missing or bad header is reset (kubelet's check, before the reply); otherwise it gets a
SYN_REPLY and waits for its partner. Once a pair is complete the server dials the port
inside the pod (`PodPorts.open_port`) and relays: client data -> pod (the client's FIN
half-closes the pod connection), pod data -> client until the pod closes. Then both
streams end with FIN, which is what kubectl waits for before it closes its local
connection. A port that cannot be reached gets kubelet's message on the error stream
(kubectl prints it and, since client-go 1.31, ends the whole forward). A pair not
complete within `STREAM_CREATION_TIMEOUT_S` gets an error too (kubelet's default).

Concurrency: the session's reader (`SpdySession.run`) plus one task per complete pair;
`serve` cancels every pair task and closes every pod connection before it returns,
however the session ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from shoal.api import errors
from shoal.apiserver import podports, spdy
from shoal.apiserver.spdysession import ByteTransport, SpdySession, SpdyStream
from shoal.tasks import cancel_and_wait

log = logging.getLogger("shoal.apiserver.spdyforward")

PROTOCOL = "portforward.k8s.io"
STREAM_CREATION_TIMEOUT_S = 30.0
READ_CHUNK = 32 * 1024


@dataclass(frozen=True)
class StreamRequest:
    """What a port-forward stream's headers ask for."""

    request_id: str
    stream_type: str  # "error" or "data"
    port: int


def parse_stream_headers(stream_id: int, headers: spdy.Headers) -> StreamRequest:
    """A stream's headers -> StreamRequest; ValueError with kubelet's words otherwise.
    Without `requestID` (clients before 1.6) the pair is guessed from the stream id,
    as kubelet does: error stream N, data stream N+2."""
    port_text = spdy.header(headers, "port")
    if not port_text:
        raise ValueError('"port" header is required')
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"unable to parse {port_text!r} as a port") from None
    if not 0 < port < 65536:
        raise ValueError(f"port {port_text!r} must be > 0 and < 65536")
    stream_type = spdy.header(headers, "streamType")
    if not stream_type:
        raise ValueError('"streamType" header is required')
    if stream_type not in ("error", "data"):
        raise ValueError(f"invalid stream type {stream_type!r}")
    request_id = spdy.header(headers, "requestID")
    if not request_id:
        request_id = str(stream_id if stream_type == "error" else stream_id - 2)
    return StreamRequest(request_id, stream_type, port)


@dataclass
class _Pair:
    request_id: str
    error: SpdyStream | None = None
    data: SpdyStream | None = None
    timer: asyncio.TimerHandle | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class SpdyPortForward:
    """One kubectl port-forward connection to one pod."""

    def __init__(self, transport: ByteTransport, ports: podports.PodPorts, namespace: str, pod: str, uid: str) -> None:
        self.ports = ports
        self.namespace, self.pod, self.uid = namespace, pod, uid
        self.session = SpdySession(transport, self._accept)
        self.pairs: dict[str, _Pair] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    async def serve(self) -> None:
        try:
            await self.session.run()
        finally:
            for pair in self.pairs.values():
                if pair.timer is not None:
                    pair.timer.cancel()
            await cancel_and_wait(list(self.tasks))
            self.pairs.clear()
            await self.session.close()

    def _spawn(self, coro, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _accept(self, stream: SpdyStream) -> None:
        try:
            request = parse_stream_headers(stream.stream_id, stream.headers)
        except ValueError as exc:
            log.info("port-forward stream %d refused: %s", stream.stream_id, exc)
            self._spawn(stream.send_reset(spdy.REFUSED_STREAM), "portforward-refuse")
            return
        self._spawn(self._add(stream, request), "portforward-stream")

    async def _add(self, stream: SpdyStream, request: StreamRequest) -> None:
        await stream.reply()
        pair = self.pairs.get(request.request_id)
        if pair is None:
            pair = self.pairs[request.request_id] = _Pair(request.request_id)
            pair.timer = asyncio.get_running_loop().call_later(
                STREAM_CREATION_TIMEOUT_S, lambda: self._spawn(self._timed_out(pair), "portforward-timeout"))
        if request.stream_type == "error":
            stream.discard_input()  # the client only reads it
        if getattr(pair, request.stream_type) is not None:
            await self._fail(pair, f"error processing stream for request {request.request_id}: "
                                   f"{request.stream_type} stream already assigned")
            await stream.send_reset(spdy.PROTOCOL_ERROR)
            return
        setattr(pair, request.stream_type, stream)
        if pair.error is not None and pair.data is not None:
            if pair.timer is not None:
                pair.timer.cancel()
            self._spawn(self._forward(pair, request.port), "portforward-pair")

    async def _timed_out(self, pair: _Pair) -> None:
        if self.pairs.get(pair.request_id) is pair and (pair.error is None or pair.data is None):
            await self._fail(pair, f"timed out waiting for streams of request {pair.request_id}")
            await self._end(pair)

    async def _fail(self, pair: _Pair, message: str) -> None:
        if pair.error is not None:
            await pair.error.write(message.encode())

    async def _end(self, pair: _Pair) -> None:
        for stream in (pair.data, pair.error):
            if stream is not None:
                await stream.close()
                self.session.forget(stream)
        self.pairs.pop(pair.request_id, None)

    async def _forward(self, pair: _Pair, port: int) -> None:
        data = pair.data
        assert data is not None
        try:
            try:
                reader, writer = await self.ports.open_port(self.namespace, self.pod, port)
            except (OSError, asyncio.TimeoutError, errors.StatusError) as exc:
                await self._fail(pair, podports.forward_error(self.pod, self.uid, port, exc))
                return
            try:
                await _relay(data, reader, writer)
            finally:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
        finally:
            await self._end(pair)


async def _relay(stream: SpdyStream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Relay until the pod's side ends or the client resets the stream."""

    async def client_to_pod() -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while chunk := await stream.read():
                writer.write(chunk)
                await writer.drain()
            if not stream.reset.is_set() and writer.can_write_eof():
                writer.write_eof()  # the client's FIN: half-close, keep reading the pod's answer

    async def pod_to_client() -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while chunk := await reader.read(READ_CHUNK):
                await stream.write(chunk)

    up = asyncio.create_task(client_to_pod(), name="portforward-up")
    down = asyncio.create_task(pod_to_client(), name="portforward-down")
    reset = asyncio.create_task(stream.reset.wait(), name="portforward-reset")
    try:
        await asyncio.wait({down, reset}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        await cancel_and_wait(up, down, reset)
