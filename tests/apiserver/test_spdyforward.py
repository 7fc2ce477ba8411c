"""Port-forward over a SPDY session (shoal.apiserver.spdyforward) in one process: a
client speaking the frames kubectl's spdystream sends over an in-memory byte pipe, and
a real TCP server on loopback standing in for the pod's port. Asserts the kubelet's
protocol rules: SYN_REPLY before data, stream pairing by requestID, FIN on both streams
when the pod closes, kubelet's error text on the error stream, bad headers reset,
PINGs echoed, garbage ending only that session, and no task left behind."""

from __future__ import annotations

import asyncio
import socket

from shoal.apiserver import spdy, spdyforward



class Pipe:
    """Both ends of an in-memory byte transport."""

    def __init__(self) -> None:
        self.to_server: asyncio.Queue[bytes] = asyncio.Queue()
        self.to_client: asyncio.Queue[bytes] = asyncio.Queue()
        self.closed = False

    # server side (ByteTransport)
    async def read(self) -> bytes:
        return await self.to_server.get()

    async def write(self, data: bytes) -> None:
        if self.closed:
            raise ConnectionResetError("closed")
        self.to_client.put_nowait(data)

    async def close(self) -> None:
        self.closed = True
        self.to_client.put_nowait(b"")


class Client:
    """kubectl's side, frame by frame."""

    def __init__(self, pipe: Pipe) -> None:
        self.pipe = pipe
        self.encoder, self.decoder = spdy.FrameEncoder(), spdy.FrameDecoder()
        self.frames: list[spdy.Frame] = []

    def send(self, *frames: spdy.Frame) -> None:
        for frame in frames:
            self.pipe.to_server.put_nowait(self.encoder.encode(frame))

    def send_raw(self, data: bytes) -> None:
        self.pipe.to_server.put_nowait(data)

    def hang_up(self) -> None:
        self.pipe.to_server.put_nowait(b"")

    async def next(self) -> spdy.Frame | None:
        while not self.frames:
            data = await asyncio.wait_for(self.pipe.to_client.get(), 5)
            if not data:
                return None
            self.frames += self.decoder.feed(data)
        return self.frames.pop(0)

    async def until(self, predicate) -> list[spdy.Frame]:
        seen = []
        while True:
            frame = await self.next()
            assert frame is not None, f"connection ended; saw {seen}"
            seen.append(frame)
            if predicate(frame):
                return seen

    def open_pair(self, first_id: int, port: int, request_id: str) -> None:
        headers = {"port": [str(port)], "requestid": [request_id]}
        self.send(spdy.SynStream(first_id, {**headers, "streamtype": ["error"]}),
                  spdy.Data(first_id, b"", fin=True),  # kubectl closes its half of the error stream at once
                  spdy.SynStream(first_id + 2, {**headers, "streamtype": ["data"]}))


class LoopbackPorts:
    """PodPorts whose pod is 127.0.0.1 (the real node dials inside the pod's netns)."""

    def __init__(self) -> None:
        self.opened = 0

    async def open_port(self, namespace: str, pod: str, port: int):
        self.opened += 1
        return await asyncio.open_connection("127.0.0.1", port)

    async def check_ports(self, namespace: str, pod: str) -> str:
        return "uid-1"


async def echo_upper(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    data = await reader.read()  # until the client's half-close
    writer.write(data.upper())
    await writer.drain()
    writer.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def start(ports: LoopbackPorts) -> tuple[Client, asyncio.Task]:
    pipe = Pipe()
    forward = spdyforward.SpdyPortForward(pipe, ports, "default", "web", "uid-1")
    return Client(pipe), asyncio.create_task(forward.serve())


async def finish(client: Client, served: asyncio.Task) -> None:
    client.hang_up()
    await asyncio.wait_for(served, 5)
    await asyncio.sleep(0)
    left = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()
            and t.get_name().startswith("portforward")]
    assert left == []


def run(coro):
    return asyncio.run(coro)


def data_of(frames: list[spdy.Frame], stream_id: int) -> bytes:
    return b"".join(f.data for f in frames if isinstance(f, spdy.Data) and f.stream_id == stream_id)


def test_a_pair_relays_both_ways_and_ends_both_streams():
    async def main():
        server = await asyncio.start_server(echo_upper, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client, served = await start(LoopbackPorts())
        client.open_pair(1, port, "0")
        client.send(spdy.Data(3, b"hello "), spdy.Data(3, b"pod"), spdy.Data(3, b"", fin=True))
        seen = await client.until(lambda f: isinstance(f, spdy.Data) and f.stream_id == 1 and f.fin)
        assert [f for f in seen if isinstance(f, spdy.SynReply)] == [spdy.SynReply(1), spdy.SynReply(3)]
        assert data_of(seen, 3) == b"HELLO POD"
        assert data_of(seen, 1) == b""  # no error
        assert any(isinstance(f, spdy.Data) and f.stream_id == 3 and f.fin for f in seen)
        await finish(client, served)
        server.close()
        await server.wait_closed()

    run(main())


def test_many_pairs_in_parallel():
    async def main():
        server = await asyncio.start_server(echo_upper, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client, served = await start(LoopbackPorts())
        for i in range(20):
            client.open_pair(1 + 4 * i, port, str(i))
        for i in range(20):
            client.send(spdy.Data(3 + 4 * i, f"request {i}".encode(), fin=True))
        ended, frames = set(), []
        while len(ended) < 20:
            frame = await client.next()
            frames.append(frame)
            if isinstance(frame, spdy.Data) and frame.fin and frame.stream_id % 4 == 1:
                ended.add(frame.stream_id)
        for i in range(20):
            assert data_of(frames, 3 + 4 * i) == f"REQUEST {i}".encode()
        await finish(client, served)
        server.close()

    run(main())


def test_a_closed_port_gets_kubelets_error_on_the_error_stream():
    async def main():
        client, served = await start(LoopbackPorts())
        port = closed_port()
        client.open_pair(1, port, "0")
        seen = await client.until(lambda f: isinstance(f, spdy.Data) and f.stream_id == 1 and f.fin)
        assert data_of(seen, 1).decode() == (
            f"error forwarding port {port} to pod web, uid uid-1: failed to connect to localhost:{port} "
            "inside the pod's network namespace: connection refused")
        await finish(client, served)

    run(main())


def test_bad_stream_headers_are_reset_and_the_session_goes_on():
    async def main():
        server = await asyncio.start_server(echo_upper, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client, served = await start(LoopbackPorts())
        client.send(spdy.SynStream(1, {"streamtype": ["data"]}),  # no port
                    spdy.SynStream(3, {"port": ["0"], "streamtype": ["data"]}),
                    spdy.SynStream(5, {"port": ["80"], "streamtype": ["sideways"]}),
                    spdy.SynStream(4, {"port": ["80"], "streamtype": ["data"]}),  # even: the server's ids
                    spdy.Ping(7))
        seen = [await client.next() for _ in range(5)]
        assert spdy.Ping(7) in seen
        assert sorted((f.stream_id, f.status) for f in seen if isinstance(f, spdy.RstStream)) == [
            (1, spdy.REFUSED_STREAM), (3, spdy.REFUSED_STREAM), (4, spdy.PROTOCOL_ERROR), (5, spdy.REFUSED_STREAM)]
        client.open_pair(9, port, "x")
        client.send(spdy.Data(11, b"still", fin=True))
        seen = await client.until(lambda f: isinstance(f, spdy.Data) and f.stream_id == 9 and f.fin)
        assert data_of(seen, 11) == b"STILL"
        await finish(client, served)
        server.close()

    run(main())


def test_garbage_ends_the_session_with_goaway_and_closes_pod_connections():
    async def main():
        held = asyncio.Event()
        closed = asyncio.Event()

        async def hold(reader, writer):
            held.set()
            await reader.read()
            closed.set()
            writer.close()

        server = await asyncio.start_server(hold, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client, served = await start(LoopbackPorts())
        client.open_pair(1, port, "0")
        await asyncio.wait_for(held.wait(), 5)
        client.send_raw(b"\x80\x03\x00\x01\x00\x00\x00\x08" + b"\xff" * 8)  # SYN_STREAM that does not inflate
        seen = await client.until(lambda f: isinstance(f, spdy.GoAway))
        assert seen[-1] == spdy.GoAway(3, spdy.GOAWAY_PROTOCOL_ERROR)
        await asyncio.wait_for(served, 5)
        await asyncio.wait_for(closed.wait(), 5)  # the pod's connection was closed
        assert await client.next() is None
        server.close()

    run(main())


def test_a_client_that_vanishes_mid_request_leaves_nothing():
    async def main():
        held = asyncio.Event()

        async def never_answers(reader, writer):
            held.set()
            await reader.read()
            writer.close()

        server = await asyncio.start_server(never_answers, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client, served = await start(LoopbackPorts())
        client.open_pair(1, port, "0")
        client.send(spdy.Data(3, b"GET / HTTP/1.0\r\n"))
        await asyncio.wait_for(held.wait(), 5)
        await finish(client, served)  # asserts no portforward task is left
        server.close()

    run(main())


def test_a_pair_that_never_completes_times_out(monkeypatch):
    monkeypatch.setattr(spdyforward, "STREAM_CREATION_TIMEOUT_S", 0.2)

    async def main():
        client, served = await start(LoopbackPorts())
        client.send(spdy.SynStream(1, {"port": ["80"], "requestid": ["0"], "streamtype": ["error"]}))
        seen = await client.until(lambda f: isinstance(f, spdy.Data) and f.stream_id == 1 and f.fin)
        assert data_of(seen, 1) == b"timed out waiting for streams of request 0"
        await finish(client, served)

    run(main())
