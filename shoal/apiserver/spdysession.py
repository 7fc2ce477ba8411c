"""The server side of a SPDY/3.1 connection: streams over a byte transport.

`SpdySession.run` reads the transport, decodes frames (`shoal.apiserver.spdy`) and
keeps the stream table; `accept(stream)` (the caller's) sees each new stream the client
opens and either replies (`stream.reply()`) or resets it. It answers the client's
PINGs (kubectl sends one every 10 s), ignores SETTINGS, WINDOW_UPDATE and HEADERS
(kubectl's spdystream has no flow control, so neither side keeps windows), and ends
on the transport's EOF, a GOAWAY, or a framing error (after sending GOAWAY with
PROTOCOL_ERROR); then every stream reads EOF and counts as reset.

Two transports: `WebSocketTransport` (kubectl's `SPDY/3.1+portforward.k8s.io`: the
frames ride in binary WebSocket messages, which are a byte stream, not frame
boundaries) and `UpgradedTransport` (a plain HTTP/1.1 `Upgrade: SPDY/3.1`, taken over
from aiohttp with the hook its own WebSocket uses, `RequestHandler.set_parser`).

Concurrency: one reader (`run`); writers are the stream users, serialised by one
lock because the header compression context must see frames in wire order. Inbound
data waits in a bounded queue per stream: a stream whose reader is slow stops the
session's reader (head-of-line, as in spdystream) instead of buffering without end;
streams nobody will read (`discard_input`) drop what arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Callable, Protocol

from aiohttp import WSMsgType, web

from shoal.apiserver import spdy

log = logging.getLogger("shoal.apiserver.spdysession")

INBOUND_QUEUE = 32
WRITE_CHUNK = 64 * 1024


class ByteTransport(Protocol):
    async def read(self) -> bytes:
        """The next bytes from the client; b"" at its end."""
        ...

    async def write(self, data: bytes) -> None: ...

    async def close(self) -> None: ...


class SpdyStream:
    """One stream the client opened; see `SpdySession`."""

    def __init__(self, session: "SpdySession", frame: spdy.SynStream) -> None:
        self.session = session
        self.stream_id = frame.stream_id
        self.headers = frame.headers
        self._inbound: asyncio.Queue[bytes | None] = asyncio.Queue(INBOUND_QUEUE)
        self._discard = False
        self.remote_closed = False
        self.local_closed = False
        self.reset = asyncio.Event()
        if frame.fin:
            self._remote_fin()

    def header(self, name: str) -> str | None:
        return spdy.header(self.headers, name)

    # -- from the session's reader --
    async def _deliver(self, data: bytes) -> None:
        if data and not self._discard and not self.remote_closed:
            await self._inbound.put(data)

    def _remote_fin(self) -> None:
        if not self.remote_closed:
            self.remote_closed = True
            with contextlib.suppress(asyncio.QueueFull):  # when full, read() sees the end once drained
                self._inbound.put_nowait(None)

    def _reset_by_peer(self) -> None:
        self.reset.set()
        self.local_closed = True
        self._remote_fin()

    # -- for the stream's user --
    def discard_input(self) -> None:
        """Drop whatever the client sends on this stream from now on."""
        self._discard = True
        while not self._inbound.empty():
            self._inbound.get_nowait()
        if self.remote_closed:
            self._inbound.put_nowait(None)
        # a reader blocked in put() on the full queue has been let through; it drops the rest

    async def read(self) -> bytes:
        """The next data; b"" once the client has finished (FIN) or reset the stream."""
        if self.reset.is_set() and self._inbound.empty():
            return b""
        if self.remote_closed and self._inbound.empty():
            return b""
        chunk = await self._inbound.get()
        if chunk is None:
            self._inbound.put_nowait(None)  # every later read sees the end too
            return b""
        return chunk

    async def reply(self) -> None:
        await self.session.send(spdy.SynReply(self.stream_id, {}))

    async def write(self, data: bytes) -> None:
        if self.local_closed:
            return
        for start in range(0, len(data), WRITE_CHUNK):
            await self.session.send(spdy.Data(self.stream_id, data[start:start + WRITE_CHUNK]))

    async def close(self) -> None:
        """Our half is done: an empty data frame with FIN (once)."""
        if not self.local_closed:
            self.local_closed = True
            await self.session.send(spdy.Data(self.stream_id, b"", fin=True))
        self.session.forget_if_done(self)

    async def send_reset(self, status: int = spdy.CANCEL) -> None:
        if not self.reset.is_set():
            self.local_closed = True
            self.reset.set()
            await self.session.send(spdy.RstStream(self.stream_id, status))
        self.session.forget(self)


class SpdySession:
    """One SPDY/3.1 connection, server side (stream ids from the client are odd)."""

    def __init__(self, transport: ByteTransport, accept: Callable[[SpdyStream], None], *,
                 decoder: spdy.FrameDecoder | None = None) -> None:
        self.transport = transport
        self.accept = accept
        self.decoder = decoder or spdy.FrameDecoder()
        self.encoder = spdy.FrameEncoder()
        self.streams: dict[int, SpdyStream] = {}
        self.last_stream_id = 0
        self.closed = False
        self._write_lock = asyncio.Lock()

    async def send(self, frame: spdy.Frame) -> None:
        if self.closed:
            return
        async with self._write_lock:
            try:
                await self.transport.write(self.encoder.encode(frame))
            except (ConnectionError, OSError, RuntimeError):
                self.closed = True  # the client is gone; run() ends on the EOF

    def forget(self, stream: SpdyStream, *, discard: bool = True) -> None:
        """Drop a stream from the table; with `discard` (its user is done with it) what
        it still holds or receives is dropped."""
        if discard:
            stream.discard_input()
        if self.streams.get(stream.stream_id) is stream:
            del self.streams[stream.stream_id]

    def forget_if_done(self, stream: SpdyStream) -> None:
        if stream.local_closed and stream.remote_closed:
            self.forget(stream, discard=False)  # both halves ended: nothing more can arrive

    async def run(self) -> None:
        """Serve until the client ends the connection (see the module docstring)."""
        try:
            while not self.closed:
                data = await self.transport.read()
                if not data:
                    break
                try:
                    frames = self.decoder.feed(data)
                except spdy.SpdyError as exc:
                    log.info("closing a SPDY session: %s", exc)
                    await self.send(spdy.GoAway(self.last_stream_id, spdy.GOAWAY_PROTOCOL_ERROR))
                    break
                for frame in frames:
                    if not await self._dispatch(frame):
                        return
        finally:
            self.closed = True
            for stream in list(self.streams.values()):
                stream._reset_by_peer()
            self.streams.clear()

    async def _dispatch(self, frame: spdy.Frame) -> bool:
        """Handle one frame; False ends the session."""
        if isinstance(frame, spdy.Data):
            stream = self.streams.get(frame.stream_id)
            if stream is not None:
                await stream._deliver(frame.data)
                if frame.fin:
                    stream._remote_fin()
                    self.forget_if_done(stream)
        elif isinstance(frame, spdy.SynStream):
            if frame.stream_id % 2 == 0 or frame.stream_id <= self.last_stream_id:
                await self.send(spdy.RstStream(frame.stream_id, spdy.PROTOCOL_ERROR))
                return True
            self.last_stream_id = frame.stream_id
            stream = SpdyStream(self, frame)
            self.streams[frame.stream_id] = stream
            self.accept(stream)
        elif isinstance(frame, spdy.RstStream):
            stream = self.streams.pop(frame.stream_id, None)
            if stream is not None:
                stream._reset_by_peer()
        elif isinstance(frame, spdy.Ping):
            if frame.ping_id % 2 == 1:  # the client's (odd): echo it; ours would be even
                await self.send(frame)
        elif isinstance(frame, spdy.GoAway):
            return False
        return True  # SETTINGS, WINDOW_UPDATE, HEADERS, SYN_REPLY: nothing to do for a server

    async def close(self) -> None:
        """Say GOAWAY (if the connection is still up) and close the transport."""
        if not self.closed:
            await self.send(spdy.GoAway(self.last_stream_id, spdy.GOAWAY_OK))
            self.closed = True
        with contextlib.suppress(Exception):
            await self.transport.close()


class WebSocketTransport:
    """SPDY bytes in WebSocket binary messages (kubectl's tunnel). A text message is
    a protocol error, as for kubectl's own end of the tunnel: it ends the stream."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws

    async def read(self) -> bytes:
        while True:
            msg = await self.ws.receive()
            if msg.type == WSMsgType.BINARY:
                if msg.data:
                    return msg.data
                continue
            return b""  # close, error, or text: the end

    async def write(self, data: bytes) -> None:
        await self.ws.send_bytes(data)

    async def close(self) -> None:
        await self.ws.close()


class _UpgradedParser:
    """Stands in for aiohttp's payload parser after an upgrade: feeds the raw bytes to
    a StreamReader (which pauses the socket when its buffer is full)."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.reader.feed_data(data)
        return False, b""

    def feed_eof(self) -> None:
        self.reader.feed_eof()


class UpgradedTransport:
    """The socket of a request answered with 101 Switching Protocols (plain SPDY)."""

    def __init__(self, request: web.Request, response: web.StreamResponse, reader: asyncio.StreamReader) -> None:
        self.request = request
        self.response = response
        self.reader = reader

    @classmethod
    async def upgrade(cls, request: web.Request, headers: dict[str, str]) -> "UpgradedTransport":
        """Answer 101 with `headers` and take the connection over from aiohttp."""
        reader = asyncio.StreamReader(limit=1 << 20)
        transport = request.transport
        if transport is None:
            raise ConnectionResetError("the client went away before the upgrade")
        reader.set_transport(transport)
        response = web.StreamResponse(status=101, headers=headers)
        response.force_close()
        request.protocol.set_parser(_UpgradedParser(reader))  # type: ignore[arg-type]
        request.protocol.keep_alive(False)
        await response.prepare(request)
        await response.write(b"")  # aiohttp holds headers back until the first write: send them now
        return cls(request, response, reader)

    async def read(self) -> bytes:
        try:
            return await self.reader.read(1 << 16)
        except (ConnectionError, OSError):
            return b""

    async def write(self, data: bytes) -> None:
        transport = self.request.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("the client went away")
        await self.response.write(data)

    async def close(self) -> None:
        transport = self.request.transport
        if transport is not None:
            transport.close()
