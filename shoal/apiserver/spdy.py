"""SPDY/3.1 framing (sans I/O): bytes in -> frames, frames -> bytes.

The wire under kubectl's port-forward (and the SPDY fallback of exec/attach): kubectl
1.32 speaks it inside WebSocket binary messages (subprotocol
`SPDY/3.1+portforward.k8s.io`) or over a plain HTTP Upgrade to `SPDY/3.1`. No
maintained Python library speaks SPDY/3.1 (PyPI's `spdy-py` 0.2.0, 2021, only reads
some frames and never writes; `python-spdylay` binds a C library gone from Debian), so
this module is ours, written from the SPDY/3.1 draft and checked against what
kubectl's Go framer (moby/spdystream) sends.

Frames (all big-endian): a control frame is `1 | version(15) | type(16) |
flags(8) | length(24) | payload`; a data frame is `0 | stream-id(31) | flags(8) |
length(24) | data`. SYN_STREAM, SYN_REPLY and HEADERS carry a name/value header block
(`count(32)`, then per header `len(32) name len(32) value`, several values of a name
joined by NUL), zlib-compressed with SPDY/3's dictionary. Each direction has ONE
compression context for the whole connection, every block ending in a Z_SYNC_FLUSH:
so a `FrameDecoder` and a `FrameEncoder` live as long as the connection and must see
every header block of their direction, in order.

Contract: `FrameDecoder.feed(data)` returns the complete frames buffered so far (an
incomplete tail is kept for the next call); anything malformed raises `SpdyError`
(the session must then end: after a broken header block the compression context is
lost). Limits refuse oversized input before it is buffered: a control frame over
`max_control_frame` bytes (64 KiB), a data frame over `max_data_frame` (1 MiB; kubectl
writes 32 KiB at most), a header block that inflates past `max_header_block` (64 KiB). Unknown control frame types are skipped, as the
spec says. Flow control (WINDOW_UPDATE, SETTINGS' initial window) is parsed but is
the session's business; kubectl's spdystream neither sends nor honours windows.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from typing import Union

VERSION = 3

SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02

# RST_STREAM status codes
PROTOCOL_ERROR, INVALID_STREAM, REFUSED_STREAM, UNSUPPORTED_VERSION, CANCEL = 1, 2, 3, 4, 5
INTERNAL_ERROR, FLOW_CONTROL_ERROR, STREAM_IN_USE, STREAM_ALREADY_CLOSED = 6, 7, 8, 9
FRAME_TOO_LARGE = 11
# GOAWAY status codes
GOAWAY_OK, GOAWAY_PROTOCOL_ERROR, GOAWAY_INTERNAL_ERROR = 0, 1, 2

MAX_LENGTH = (1 << 24) - 1  # the 24-bit length field
MAX_STREAM_ID = (1 << 31) - 1

_HEADER_WORDS = (
    "options head post put delete trace accept accept-charset accept-encoding accept-language "
    "accept-ranges age allow authorization cache-control connection content-base content-encoding "
    "content-language content-length content-location content-md5 content-range content-type date "
    "etag expect expires from host if-match if-modified-since if-none-match if-range "
    "if-unmodified-since last-modified location max-forwards pragma proxy-authenticate "
    "proxy-authorization range referer retry-after server te trailer transfer-encoding upgrade "
    "user-agent vary via warning www-authenticate method get status"
).split() + ["200 OK"] + "version HTTP/1.1 url public set-cookie keep-alive origin".split()
_DICTIONARY_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 "
    "Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 "
    "Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, "
    "Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,application/xml,"
    "application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=gzip,deflate,sdch"
    "charset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)
DICTIONARY = b"".join(len(w).to_bytes(4, "big") + w.encode() for w in _HEADER_WORDS) + _DICTIONARY_TAIL.encode()
"""SPDY/3's zlib dictionary (section 2.6.10.1 of the draft): 65 length-prefixed words,
then a run of status codes, reasons, dates and media types; 1423 bytes."""

Headers = dict[str, list[str]]


class SpdyError(Exception):
    """The peer broke SPDY/3.1 framing; the session cannot go on."""


@dataclass(frozen=True)
class SynStream:
    stream_id: int
    headers: Headers
    associated_to: int = 0
    priority: int = 0
    fin: bool = False
    unidirectional: bool = False


@dataclass(frozen=True)
class SynReply:
    stream_id: int
    headers: Headers = field(default_factory=dict)
    fin: bool = False


@dataclass(frozen=True)
class HeadersFrame:
    stream_id: int
    headers: Headers
    fin: bool = False


@dataclass(frozen=True)
class RstStream:
    stream_id: int
    status: int


@dataclass(frozen=True)
class Settings:
    entries: tuple[tuple[int, int, int], ...] = ()  # (flags, id, value)
    clear: bool = False


@dataclass(frozen=True)
class Ping:
    ping_id: int


@dataclass(frozen=True)
class GoAway:
    last_good_stream_id: int
    status: int = GOAWAY_OK


@dataclass(frozen=True)
class WindowUpdate:
    stream_id: int
    delta: int


@dataclass(frozen=True)
class Data:
    stream_id: int
    data: bytes
    fin: bool = False


Frame = Union[SynStream, SynReply, HeadersFrame, RstStream, Settings, Ping, GoAway, WindowUpdate, Data]


def header(headers: Headers, name: str) -> str | None:
    """The first value of a header (names are lowercase on the wire)."""
    values = headers.get(name.lower())
    return values[0] if values else None


# -- header blocks -------------------------------------------------------------------


def encode_header_block(headers: Headers) -> bytes:
    """The uncompressed name/value block; names lowercased, values NUL-joined."""
    out = [len(headers).to_bytes(4, "big")]
    for name, values in headers.items():
        raw_name = name.lower().encode()
        raw_value = "\0".join(values).encode()
        out += [len(raw_name).to_bytes(4, "big"), raw_name, len(raw_value).to_bytes(4, "big"), raw_value]
    return b"".join(out)


def parse_header_block(block: bytes) -> Headers:
    """An uncompressed name/value block -> headers; raises SpdyError on any fault
    (truncated, empty or upper-case name, duplicate name, non-UTF-8)."""
    view = memoryview(block)
    pos = 0

    def take(n: int) -> bytes:
        nonlocal pos
        if pos + n > len(view):
            raise SpdyError("header block truncated")
        chunk = bytes(view[pos:pos + n])
        pos += n
        return chunk

    count = int.from_bytes(take(4), "big")
    if count * 8 > len(view) - pos:
        raise SpdyError(f"header block claims {count} headers in {len(view)} bytes")
    headers: Headers = {}
    for _ in range(count):
        name_bytes = take(int.from_bytes(take(4), "big"))
        value_bytes = take(int.from_bytes(take(4), "big"))
        try:
            name, value = name_bytes.decode(), value_bytes.decode()
        except UnicodeDecodeError:
            raise SpdyError("header name or value is not UTF-8") from None
        if not name:
            raise SpdyError("header block has an empty name")
        if name != name.lower():
            raise SpdyError(f"header name {name!r} is not lowercase")
        if name in headers:
            raise SpdyError(f"header {name!r} appears twice")
        headers[name] = value.split("\0")
    if pos != len(view):
        raise SpdyError("header block has trailing bytes")
    return headers


# -- decoding --------------------------------------------------------------------------


class FrameDecoder:
    """Bytes of one direction of a connection -> frames (see the module docstring)."""

    def __init__(self, *, max_control_frame: int = 64 * 1024, max_data_frame: int = 1 << 20,
                 max_header_block: int = 64 * 1024) -> None:
        self.max_control_frame = max_control_frame
        self.max_data_frame = max_data_frame
        self.max_header_block = max_header_block
        self._buffer = bytearray()
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames: list[Frame] = []
        while len(self._buffer) >= 8:
            first, second = struct.unpack_from(">II", self._buffer)
            flags, length = second >> 24, second & 0xFFFFFF
            control = bool(first & 0x80000000)
            limit = self.max_control_frame if control else self.max_data_frame
            if length > limit:
                kind = "control" if control else "data"
                raise SpdyError(f"{kind} frame of {length} bytes is over the limit of {limit}")
            if len(self._buffer) < 8 + length:
                break
            payload = bytes(self._buffer[8:8 + length])
            del self._buffer[:8 + length]
            if control:
                frame = self._control((first >> 16) & 0x7FFF, first & 0xFFFF, flags, payload)
                if frame is not None:
                    frames.append(frame)
            else:
                stream_id = first & 0x7FFFFFFF
                if stream_id == 0:
                    raise SpdyError("data frame on stream 0")
                frames.append(Data(stream_id, payload, bool(flags & FLAG_FIN)))
        return frames

    def _inflate_block(self, compressed: bytes) -> Headers:
        try:
            block = self._inflate.decompress(compressed, self.max_header_block + 1)
        except zlib.error as exc:
            raise SpdyError(f"header block does not inflate: {exc}") from None
        if len(block) > self.max_header_block or self._inflate.unconsumed_tail:
            raise SpdyError(f"header block inflates past {self.max_header_block} bytes")
        return parse_header_block(block)

    def _control(self, version: int, kind: int, flags: int, payload: bytes) -> Frame | None:
        if version != VERSION:
            raise SpdyError(f"control frame of SPDY version {version}; only {VERSION} is spoken")

        def need(n: int, name: str, exact: bool = False) -> None:
            if len(payload) < n or (exact and len(payload) != n):
                raise SpdyError(f"{name} frame of {len(payload)} bytes is malformed")

        if kind == SYN_STREAM:
            need(10, "SYN_STREAM")
            stream_id, associated = struct.unpack_from(">II", payload)
            stream_id &= MAX_STREAM_ID
            if stream_id == 0:
                raise SpdyError("SYN_STREAM on stream 0")
            return SynStream(stream_id, self._inflate_block(payload[10:]), associated & MAX_STREAM_ID,
                             payload[8] >> 5, bool(flags & FLAG_FIN), bool(flags & FLAG_UNIDIRECTIONAL))
        if kind in (SYN_REPLY, HEADERS):
            need(4, "SYN_REPLY" if kind == SYN_REPLY else "HEADERS")
            stream_id = struct.unpack_from(">I", payload)[0] & MAX_STREAM_ID
            if stream_id == 0:
                raise SpdyError("header frame on stream 0")
            headers = self._inflate_block(payload[4:])
            cls = SynReply if kind == SYN_REPLY else HeadersFrame
            return cls(stream_id, headers, bool(flags & FLAG_FIN))
        if kind == RST_STREAM:
            need(8, "RST_STREAM", exact=True)
            stream_id, status = struct.unpack(">II", payload)
            if stream_id & MAX_STREAM_ID == 0 or status == 0:
                raise SpdyError("RST_STREAM with stream 0 or status 0")
            return RstStream(stream_id & MAX_STREAM_ID, status)
        if kind == SETTINGS:
            need(4, "SETTINGS")
            count = struct.unpack_from(">I", payload)[0]
            if len(payload) != 4 + 8 * count:
                raise SpdyError(f"SETTINGS frame claims {count} entries in {len(payload)} bytes")
            entries = tuple((word >> 24, word & 0xFFFFFF, value)
                            for word, value in struct.iter_unpack(">II", payload[4:]))
            return Settings(entries, bool(flags & 0x01))
        if kind == PING:
            need(4, "PING", exact=True)
            return Ping(struct.unpack(">I", payload)[0])
        if kind == GOAWAY:
            need(8, "GOAWAY", exact=True)
            last, status = struct.unpack(">II", payload)
            return GoAway(last & MAX_STREAM_ID, status)
        if kind == WINDOW_UPDATE:
            need(8, "WINDOW_UPDATE", exact=True)
            stream_id, delta = struct.unpack(">II", payload)
            if delta & MAX_STREAM_ID == 0:
                raise SpdyError("WINDOW_UPDATE with a delta of 0")
            return WindowUpdate(stream_id & MAX_STREAM_ID, delta & MAX_STREAM_ID)
        return None  # an unknown control frame type: ignored, as SPDY/3 requires


# -- encoding --------------------------------------------------------------------------


class FrameEncoder:
    """Frames -> bytes for one direction of a connection (one compression context)."""

    def __init__(self) -> None:
        self._deflate = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, 15, 9,
                                         zlib.Z_DEFAULT_STRATEGY, DICTIONARY)

    def _deflate_block(self, headers: Headers) -> bytes:
        block = encode_header_block(headers)
        return self._deflate.compress(block) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    @staticmethod
    def _control(kind: int, flags: int, payload: bytes) -> bytes:
        if len(payload) > MAX_LENGTH:
            raise ValueError(f"control frame payload of {len(payload)} bytes does not fit")
        return struct.pack(">HHI", 0x8000 | VERSION, kind, (flags << 24) | len(payload)) + payload

    def encode(self, frame: Frame) -> bytes:
        if isinstance(frame, Data):
            if not 0 < frame.stream_id <= MAX_STREAM_ID or len(frame.data) > MAX_LENGTH:
                raise ValueError("data frame needs a stream id in 1..2^31-1 and at most 2^24-1 bytes")
            return struct.pack(">II", frame.stream_id, ((FLAG_FIN if frame.fin else 0) << 24)
                               | len(frame.data)) + frame.data
        if isinstance(frame, SynStream):
            flags = (FLAG_FIN if frame.fin else 0) | (FLAG_UNIDIRECTIONAL if frame.unidirectional else 0)
            payload = struct.pack(">IIBB", frame.stream_id, frame.associated_to, (frame.priority & 7) << 5, 0)
            return self._control(SYN_STREAM, flags, payload + self._deflate_block(frame.headers))
        if isinstance(frame, (SynReply, HeadersFrame)):
            kind = SYN_REPLY if isinstance(frame, SynReply) else HEADERS
            payload = struct.pack(">I", frame.stream_id) + self._deflate_block(frame.headers)
            return self._control(kind, FLAG_FIN if frame.fin else 0, payload)
        if isinstance(frame, RstStream):
            return self._control(RST_STREAM, 0, struct.pack(">II", frame.stream_id, frame.status))
        if isinstance(frame, Settings):
            body = b"".join(struct.pack(">II", (f << 24) | i, v) for f, i, v in frame.entries)
            return self._control(SETTINGS, 0x01 if frame.clear else 0,
                                 struct.pack(">I", len(frame.entries)) + body)
        if isinstance(frame, Ping):
            return self._control(PING, 0, struct.pack(">I", frame.ping_id))
        if isinstance(frame, GoAway):
            return self._control(GOAWAY, 0, struct.pack(">II", frame.last_good_stream_id, frame.status))
        if isinstance(frame, WindowUpdate):
            return self._control(WINDOW_UPDATE, 0, struct.pack(">II", frame.stream_id, frame.delta))
        raise TypeError(f"not a SPDY frame: {frame!r}")
