"""SPDY/3.1 framing (shoal.apiserver.spdy): round trips of every frame type, one
compression context across frames, incremental feeding, and malformed or oversized
input refused."""

from __future__ import annotations

import hashlib
import struct
import zlib

import pytest

from shoal.apiserver import spdy

ALL_FRAMES = [
    spdy.SynStream(1, {"streamtype": ["error"], "port": ["80"], "requestid": ["0"]}, priority=3),
    spdy.SynStream(3, {"streamtype": ["data"], "port": ["80"], "requestid": ["0"]}, fin=True,
                   unidirectional=True, associated_to=1),
    spdy.SynReply(1, {}),
    spdy.SynReply(3, {"x-many": ["a", "b", ""]}, fin=True),
    spdy.HeadersFrame(3, {"status": ["200"]}, fin=True),
    spdy.RstStream(3, spdy.CANCEL),
    spdy.Settings(((0, 4, 100), (1, 7, 65536)), clear=True),
    spdy.Ping(1),
    spdy.GoAway(7, spdy.GOAWAY_PROTOCOL_ERROR),
    spdy.WindowUpdate(3, 4096),
    spdy.Data(3, b"GET / HTTP/1.0\r\n\r\n"),
    spdy.Data(3, b"", fin=True),
]


def test_dictionary_is_spdy3s():
    # the draft's dictionary: 1423 bytes, ends with "enq=0." (kubectl's Go framer uses the same)
    assert len(spdy.DICTIONARY) == 1423
    assert spdy.DICTIONARY.startswith(b"\x00\x00\x00\x07options\x00\x00\x00\x04head")
    assert spdy.DICTIONARY.endswith(b",*,enq=0.")
    assert hashlib.sha256(spdy.DICTIONARY).hexdigest() == \
        "51d27341373f923f3cd88e1eb7162aeaa3723d7585ff2399201dc06498407f02"


def test_every_frame_round_trips_through_one_context_per_direction():
    encoder, decoder = spdy.FrameEncoder(), spdy.FrameDecoder()
    wire = b"".join(encoder.encode(f) for f in ALL_FRAMES)
    assert decoder.feed(wire) == ALL_FRAMES


def test_header_blocks_share_the_compression_context():
    encoder = spdy.FrameEncoder()
    headers = {"streamtype": ["data"], "port": ["8080"], "requestid": ["12"]}
    first = encoder.encode(spdy.SynStream(1, headers))
    second = encoder.encode(spdy.SynStream(3, headers))
    assert len(second) < len(first)  # the second block refers back to the first
    fresh = spdy.FrameDecoder()
    with pytest.raises(spdy.SpdyError, match="does not inflate"):
        fresh.feed(second)  # without the first block's history it cannot be read
    decoder = spdy.FrameDecoder()
    assert decoder.feed(first + second) == [spdy.SynStream(1, headers), spdy.SynStream(3, headers)]


def test_frames_fed_a_byte_at_a_time():
    encoder, decoder = spdy.FrameEncoder(), spdy.FrameDecoder()
    wire = b"".join(encoder.encode(f) for f in ALL_FRAMES)
    got = []
    for i in range(len(wire)):
        got += decoder.feed(wire[i:i + 1])
    assert got == ALL_FRAMES


def test_header_names_are_lowercased_and_values_nul_joined():
    block = spdy.encode_header_block({"StreamType": ["data"], "x": ["1", "2"]})
    assert spdy.parse_header_block(block) == {"streamtype": ["data"], "x": ["1", "2"]}
    assert spdy.header({"streamtype": ["data"]}, "streamType") == "data"
    assert spdy.header({}, "port") is None


def _control(kind: int, payload: bytes, version: int = 3, flags: int = 0) -> bytes:
    return struct.pack(">HHI", 0x8000 | version, kind, (flags << 24) | len(payload)) + payload


def _compressed(block: bytes) -> bytes:
    deflate = zlib.compressobj(zdict=spdy.DICTIONARY)
    return deflate.compress(block) + deflate.flush(zlib.Z_SYNC_FLUSH)


@pytest.mark.parametrize("wire, message", [
    (_control(spdy.SYN_STREAM, b"\x00" * 10 + _compressed(spdy.encode_header_block({}))), "stream 0"),
    (_control(spdy.SYN_STREAM, b"\x00\x00\x00\x01"), "SYN_STREAM frame of 4 bytes"),
    (_control(spdy.SYN_STREAM, struct.pack(">IIBB", 1, 0, 0, 0) + b"not zlib at all"), "does not inflate"),
    (_control(spdy.SYN_STREAM, struct.pack(">IIBB", 1, 0, 0, 0)
              + _compressed(b"\x00\x00\x00\x01\x00\x00\x00\x04Port\x00\x00\x00\x0280")), "not lowercase"),
    (_control(spdy.SYN_STREAM, struct.pack(">IIBB", 1, 0, 0, 0)
              + _compressed(b"\x00\x00\x00\x02" + b"\x00\x00\x00\x01a\x00\x00\x00\x00" * 2)), "appears twice"),
    (_control(spdy.SYN_STREAM, struct.pack(">IIBB", 1, 0, 0, 0)
              + _compressed(b"\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00")), "empty name"),
    (_control(spdy.SYN_STREAM, struct.pack(">IIBB", 1, 0, 0, 0)
              + _compressed(b"\xff\xff\xff\xff")), "claims 4294967295 headers"),
    (_control(spdy.SYN_STREAM, struct.pack(">IIBB", 1, 0, 0, 0)
              + _compressed(b"\x00\x00\x00\x01\x00\x00\x00\x09abcdefgh")), "truncated"),
    (_control(spdy.PING, b"\x00\x00\x00\x01", version=2), "SPDY version 2"),
    (_control(spdy.PING, b"\x00\x00\x01"), "PING frame of 3 bytes"),
    (_control(spdy.RST_STREAM, struct.pack(">II", 1, 0)), "status 0"),
    (_control(spdy.SETTINGS, struct.pack(">I", 5)), "claims 5 entries"),
    (_control(spdy.WINDOW_UPDATE, struct.pack(">II", 1, 0)), "delta of 0"),
    (_control(spdy.GOAWAY, b"\x00" * 4), "GOAWAY frame of 4 bytes"),
    (struct.pack(">II", 0, 1) + b"x", "data frame on stream 0"),
])
def test_malformed_frames_are_refused(wire, message):
    with pytest.raises(spdy.SpdyError, match=message):
        spdy.FrameDecoder().feed(wire)


def test_oversized_frames_are_refused_before_they_are_buffered():
    decoder = spdy.FrameDecoder(max_control_frame=1024, max_data_frame=4096)
    with pytest.raises(spdy.SpdyError, match="control frame of 2000 bytes is over the limit of 1024"):
        decoder.feed(struct.pack(">HHI", 0x8003, spdy.SYN_STREAM, 2000))  # header only: no body sent yet
    with pytest.raises(spdy.SpdyError, match="data frame of 5000 bytes is over the limit of 4096"):
        spdy.FrameDecoder(max_data_frame=4096).feed(struct.pack(">II", 1, 5000))


def test_a_header_block_that_inflates_too_far_is_refused():
    huge = spdy.encode_header_block({"x": ["a" * 200_000]})  # compresses to a few hundred bytes
    wire = _control(spdy.SYN_STREAM, struct.pack(">IIBB", 1, 0, 0, 0) + _compressed(huge))
    assert len(wire) < 2000
    with pytest.raises(spdy.SpdyError, match="inflates past 65536 bytes"):
        spdy.FrameDecoder().feed(wire)


def test_unknown_control_frames_are_skipped_and_partial_frames_kept():
    decoder = spdy.FrameDecoder()
    ping = spdy.FrameEncoder().encode(spdy.Ping(5))
    assert decoder.feed(_control(0x0F, b"whatever") + ping[:5]) == []
    assert decoder.feed(ping[5:]) == [spdy.Ping(5)]


def test_encoder_refuses_what_cannot_be_framed():
    encoder = spdy.FrameEncoder()
    with pytest.raises(ValueError):
        encoder.encode(spdy.Data(0, b"x"))
    with pytest.raises(ValueError):
        encoder.encode(spdy.Data(1, b"x" * (1 << 24)))
    with pytest.raises(TypeError):
        encoder.encode("not a frame")  # type: ignore[arg-type]
