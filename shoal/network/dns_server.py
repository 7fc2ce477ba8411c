"""ClusterDNS: the cluster DNS server (asyncio, UDP and TCP) with forwarding.

It answers names under the cluster domain from a `ServiceLookup` (see dns_answers.py)
and forwards every other query, byte for byte, to the host's resolvers (the
`nameserver` lines of /etc/resolv.conf, or `upstreams=`), over the transport the client
used. Each forward has a total budget of `forward_timeout` seconds across all
upstreams; an unreachable upstream (ICMP refused) is skipped at once; when none answers
in time the client gets SERVFAIL - quickly, never a hang. Upstreams that are this
server's own address are dropped (no loops).

Production: `ClusterDNS(settings, lookup, host=net.gateway, port=settings.dns_port)`
listens on the bridge's gateway address, so each shoal instance has its own address
and pods reach it as their `nameserver`. Binding a specific address works next to
other DNS servers on the host unless one holds the wildcard address on port 53 without
SO_REUSEADDR (a system dnsmasq); then `start()` raises OSError (EADDRINUSE).

UDP replies larger than the client's limit (512 bytes, or its EDNS0 size) are sent
truncated (TC bit, no records), so the client retries over TCP.

Concurrency: each query is its own task; `stop()` closes the sockets and cancels the
queries in flight.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Sequence
from pathlib import Path

from dnslib import QTYPE, RCODE, DNSError, DNSRecord

from shoal.config import Settings
from shoal.network.directory import ServiceLookup
from shoal.network.dns_answers import answer
from shoal.tasks import cancel_and_wait

log = logging.getLogger(__name__)

Upstream = tuple[str, int]


def host_resolvers(path: Path = Path("/etc/resolv.conf")) -> list[Upstream]:
    """The nameservers of a resolv.conf, as (address, 53)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            found.append((fields[1], 53))
    return found


class _UdpServer(asyncio.DatagramProtocol):
    def __init__(self, dns: "ClusterDNS") -> None:
        self._dns = dns
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:  # type: ignore[override]
        self._dns._spawn(self._reply(data, addr))

    async def _reply(self, data: bytes, addr) -> None:
        response = await self._dns.resolve(data, tcp=False)
        if response is not None and self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(response, addr)


class _UdpClient(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr) -> None:  # type: ignore[override]
        if not self.done.done():
            self.done.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.done.done():
            self.done.set_exception(exc)


class ClusterDNS:
    """DNS for `*.svc.<cluster_domain>`; forwards other names to the host's resolvers."""

    def __init__(
        self,
        settings: Settings,
        lookup: ServiceLookup,
        *,
        host: str,
        port: int | None = None,
        upstreams: Sequence[Upstream] | None = None,
        forward_timeout: float = 2.0,
    ) -> None:
        self._domain = settings.cluster_domain
        self._lookup = lookup
        self.host = host
        self.port = settings.dns_port if port is None else port
        resolvers = list(upstreams) if upstreams is not None else host_resolvers()
        self._upstreams = [u for u in resolvers if u != (host, self.port)]
        self._forward_timeout = forward_timeout
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._udp, _ = await loop.create_datagram_endpoint(
            lambda: _UdpServer(self), local_addr=(self.host, self.port))
        self.port = self._udp.get_extra_info("sockname")[1]  # port 0: the one the kernel chose
        try:
            self._tcp = await asyncio.start_server(self._serve_tcp, self.host, self.port, reuse_address=True)
        except BaseException:
            self._udp.close()
            raise

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
        await cancel_and_wait(list(self._tasks))
        if self._tcp is not None:
            await self._tcp.wait_closed()
        self._udp = self._tcp = None

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            while True:
                try:
                    head = await asyncio.wait_for(reader.readexactly(2), timeout=10)
                    data = await asyncio.wait_for(reader.readexactly(struct.unpack("!H", head)[0]), timeout=10)
                except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError):
                    return
                response = await self.resolve(data, tcp=True)
                if response is None:
                    return
                writer.write(struct.pack("!H", len(response)) + response)
                await writer.drain()
        finally:
            if task is not None:
                self._tasks.discard(task)
            writer.close()

    async def resolve(self, data: bytes, *, tcp: bool) -> bytes | None:
        """The wire reply to a wire query; None when the query cannot be parsed at all."""
        try:
            query = DNSRecord.parse(data)
        except (DNSError, struct.error, IndexError, ValueError):
            return None
        if not query.questions:
            reply = query.reply()
            reply.header.rcode = RCODE.FORMERR
            return reply.pack()
        local = answer(query, self._lookup, domain=self._domain)
        if local is None:
            forwarded = await self._forward(data, tcp=tcp)
            if forwarded is not None:
                return forwarded
            local = query.reply(ra=1)
            local.header.rcode = RCODE.SERVFAIL
        packed = local.pack()
        limit = _udp_limit(query)
        if not tcp and len(packed) > limit:
            truncated = query.reply(ra=1, aa=1)
            truncated.header.tc = 1
            packed = truncated.pack()
        return packed

    async def _forward(self, data: bytes, *, tcp: bool) -> bytes | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._forward_timeout
        for upstream in self._upstreams:
            left = deadline - loop.time()
            if left <= 0:
                break
            try:
                if tcp:
                    return await asyncio.wait_for(_ask_tcp(upstream, data), timeout=left)
                return await asyncio.wait_for(_ask_udp(upstream, data), timeout=left)
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as exc:
                log.debug("upstream %s:%s failed: %r", upstream[0], upstream[1], exc)
        return None


def _udp_limit(query: DNSRecord) -> int:
    for rr in query.ar:
        if rr.rtype == QTYPE.OPT:
            return max(512, min(int(rr.rclass), 4096))
    return 512


async def _ask_udp(upstream: Upstream, data: bytes) -> bytes:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(_UdpClient, remote_addr=upstream)
    try:
        transport.sendto(data)
        return await proto.done
    finally:
        transport.close()


async def _ask_tcp(upstream: Upstream, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(*upstream)
    try:
        writer.write(struct.pack("!H", len(data)) + data)
        await writer.drain()
        size = struct.unpack("!H", await reader.readexactly(2))[0]
        return await reader.readexactly(size)
    finally:
        writer.close()
