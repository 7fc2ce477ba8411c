"""Cluster DNS: record rules (pure) and the UDP/TCP server with forwarding (on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
from dnslib import QTYPE, RCODE, RR, A, DNSRecord

from shoal.config import Settings
from shoal.network import ClusterDNS, EndpointView, ServiceDirectory, ServicePort, ServiceView
from shoal.network.dns_answers import answer

WEB = ServiceView("default", "web", "10.202.1.10", ports=(ServicePort(80, name="http"),),
                  endpoints=(EndpointView("10.201.1.2", {"http": 8080}),))
DB = ServiceView("data", "db", None, ports=(ServicePort(5432, name="pg"),), endpoints=(
    EndpointView("10.201.1.7", {"pg": 5432}, hostname="db-0"),
    EndpointView("10.201.1.5", {"pg": 5432}),
    EndpointView("10.201.1.9", {"pg": 5432}, ready=False),
))
DIRECTORY = ServiceDirectory([WEB, DB])


def ask(name: str, qtype: str = "A") -> DNSRecord:
    reply = answer(DNSRecord.question(name, qtype), DIRECTORY, domain="cluster.local")
    assert reply is not None
    return reply


def ips(reply: DNSRecord) -> list[str]:
    return [str(rr.rdata) for rr in reply.rr if rr.rtype == QTYPE.A]


def test_service_a_records():
    assert ips(ask("web.default.svc.cluster.local")) == ["10.202.1.10"]
    assert ips(ask("WEB.Default.svc.cluster.local.")) == ["10.202.1.10"]
    assert ips(ask("db.data.svc.cluster.local")) == ["10.201.1.5", "10.201.1.7"]  # headless: ready pods
    assert ips(ask("db-0.db.data.svc.cluster.local")) == ["10.201.1.7"]
    assert ips(ask("10-201-1-5.db.data.svc.cluster.local")) == ["10.201.1.5"]
    assert ips(ask("10-201-1-3.default.pod.cluster.local")) == ["10.201.1.3"]


def test_srv_for_named_ports():
    reply = ask("_http._tcp.web.default.svc.cluster.local", "SRV")
    assert [(rr.rdata.port, str(rr.rdata.target)) for rr in reply.rr] == [(80, "web.default.svc.cluster.local.")]
    headless = ask("_pg._tcp.db.data.svc.cluster.local", "SRV")
    targets = sorted(str(rr.rdata.target) for rr in headless.rr)
    assert targets == ["10-201-1-5.db.data.svc.cluster.local.", "db-0.db.data.svc.cluster.local."]
    assert sorted(str(rr.rdata) for rr in headless.ar) == ["10.201.1.5", "10.201.1.7"]


def test_unknown_names_are_nxdomain_with_soa_and_other_names_are_forwarded():
    for name in ("nosuch.default.svc.cluster.local", "_nope._tcp.web.default.svc.cluster.local",
                 "web.cluster.local", "a.b.c.d.e.svc.cluster.local"):
        reply = ask(name)
        assert reply.header.rcode == RCODE.NXDOMAIN, name
        assert reply.auth and reply.auth[0].rtype == QTYPE.SOA
    nodata = ask("web.default.svc.cluster.local", "AAAA")
    assert nodata.header.rcode == RCODE.NOERROR and not nodata.rr
    assert ask("svc.cluster.local").header.rcode == RCODE.NOERROR
    assert answer(DNSRecord.question("example.com"), DIRECTORY, domain="cluster.local") is None


class FakeUpstream(asyncio.DatagramProtocol):
    """A resolver on 127.0.0.1 that answers every A query with 192.0.2.77 (or stays silent)."""

    def __init__(self, silent: bool = False) -> None:
        self.silent = silent
        self.queries: list[str] = []

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data, addr) -> None:
        query = DNSRecord.parse(data)
        self.queries.append(str(query.q.qname))
        if not self.silent:
            reply = query.reply()
            reply.add_answer(RR(query.q.qname, QTYPE.A, rdata=A("192.0.2.77"), ttl=60))
            self.transport.sendto(reply.pack(), addr)


@pytest.fixture
async def upstream():
    transport, proto = await asyncio.get_running_loop().create_datagram_endpoint(
        FakeUpstream, local_addr=("127.0.0.1", 0))
    proto.port = transport.get_extra_info("sockname")[1]
    yield proto
    transport.close()


def closed_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def dns_factory():
    servers: list[ClusterDNS] = []

    async def start(upstreams, timeout=2.0, directory=DIRECTORY) -> ClusterDNS:
        dns = ClusterDNS(Settings(), directory, host="127.0.0.1", port=0, upstreams=upstreams, forward_timeout=timeout)
        await dns.start()
        servers.append(dns)
        return dns

    yield start
    for dns in servers:
        await dns.stop()


async def query(dns: ClusterDNS, name: str, qtype: str = "A", *, tcp: bool = False) -> DNSRecord:
    raw = await asyncio.to_thread(DNSRecord.question(name, qtype).send, "127.0.0.1", dns.port, tcp=tcp, timeout=5)
    return DNSRecord.parse(raw)


async def test_server_answers_over_udp_and_tcp_and_forwards_other_names(dns_factory, upstream):
    dns = await dns_factory([("127.0.0.1", upstream.port)])
    for tcp in (False, True):
        assert ips(await query(dns, "web.default.svc.cluster.local", tcp=tcp)) == ["10.202.1.10"]
        assert (await query(dns, "nosuch.default.svc.cluster.local", tcp=tcp)).header.rcode == RCODE.NXDOMAIN
    assert ips(await query(dns, "example.test")) == ["192.0.2.77"]
    assert upstream.queries == ["example.test."]  # cluster names never leave the server


async def test_unreachable_upstream_gives_servfail_quickly(dns_factory, upstream):
    dns = await dns_factory([("127.0.0.1", closed_udp_port())])
    started = time.monotonic()
    assert (await query(dns, "example.test")).header.rcode == RCODE.SERVFAIL
    assert time.monotonic() - started < 0.5  # refused at once, no waiting for the timeout

    upstream.silent = True
    silent = await dns_factory([("127.0.0.1", upstream.port)], timeout=0.3)
    started = time.monotonic()
    assert (await query(silent, "example.test")).header.rcode == RCODE.SERVFAIL
    assert time.monotonic() - started < 1.5


async def test_large_udp_answers_are_truncated_and_complete_over_tcp(dns_factory):
    many = ServiceView("default", "big", None, endpoints=tuple(
        EndpointView(f"10.201.1.{i}", {}) for i in range(2, 80)))
    dns = await dns_factory([], directory=ServiceDirectory([many]))
    udp = DNSRecord.parse(await asyncio.to_thread(
        DNSRecord.question("big.default.svc.cluster.local").send, "127.0.0.1", dns.port, timeout=5))
    assert udp.header.tc == 1 and not udp.rr
    assert len(ips(await query(dns, "big.default.svc.cluster.local", tcp=True))) == 78
