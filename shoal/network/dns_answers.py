"""Cluster DNS answers (pure): a parsed query and a ServiceLookup in, a reply out.

Names served under `<domain>` (default cluster.local), as Kubernetes' DNS spec says:

- `SVC.NS.svc.<domain>`  A: the ClusterIP; headless: every ready endpoint's IP.
                         ExternalName: a CNAME to spec.externalName for every type
                         (as CoreDNS answers); when the target is itself a name of the
                         cluster domain, its A records follow in the same answer, else
                         the client's resolver chases the CNAME (we forward that query).
                         SRV: one per named port (target: the service name; headless:
                         one per endpoint, target `<host>.SVC.NS.svc.<domain>`).
- `_PORT._PROTO.SVC.NS.svc.<domain>`  SRV for that named port (`_http._tcp.web...`).
- `HOST.SVC.NS.svc.<domain>`  A of the headless endpoint whose hostname is HOST, or
                         whose IP dashed (`10-42-0-5`) is HOST.
- `A-B-C-D.NS.pod.<domain>`  A: A.B.C.D (pod records, computed from the name).
- `<domain>`, `svc.<domain>`, `NS.svc.<domain>`, `pod.<domain>`: exist, no data.
- anything else under `<domain>`: NXDOMAIN. Names outside it: None (the server forwards).

Negative answers (NXDOMAIN and no-data) carry the domain's SOA so resolvers cache them
for `ttl` seconds. Types other than A/SRV (AAAA: we are IPv4-only) get no-data answers.
"""

from __future__ import annotations

import ipaddress

from dnslib import CNAME, QTYPE, RCODE, RR, SOA, SRV, A, DNSRecord

from shoal.network.directory import ServiceLookup
from shoal.network.model import EndpointView, ServiceView

DEFAULT_TTL = 5


def answer(query: DNSRecord, lookup: ServiceLookup, *, domain: str, ttl: int = DEFAULT_TTL) -> DNSRecord | None:
    """The reply to query, or None when its name is outside `domain` (to be forwarded)."""
    q = query.q
    qname = str(q.qname).rstrip(".")
    zone = domain.strip(".").lower()
    lowered = qname.lower()
    if lowered != zone and not lowered.endswith("." + zone):
        return None
    reply = query.reply(ra=1, aa=1)
    labels = lowered[: -len(zone)].rstrip(".").split(".") if lowered != zone else []
    records = _records(labels, q.qtype, lookup, zone=zone, qname=qname, ttl=ttl)
    if records is None:
        reply.header.rcode = RCODE.NXDOMAIN
    else:
        answers, extra = records
        for rr in answers:
            reply.add_answer(rr)
        for rr in extra:
            reply.add_ar(rr)
    if not reply.rr:
        reply.add_auth(_soa(zone, ttl))
    return reply


def _soa(zone: str, ttl: int) -> RR:
    return RR(zone + ".", QTYPE.SOA, ttl=ttl,
              rdata=SOA(f"ns.dns.{zone}.", f"hostmaster.{zone}.", (1, 7200, 1800, 86400, ttl)))


def _records(labels: list[str], qtype: int, lookup: ServiceLookup, *, zone: str, qname: str, ttl: int):
    """(answers, additional) for the name, or None if it does not exist."""
    empty: tuple[list, list] = ([], [])
    n = len(labels)
    if n == 0 or labels == ["svc"] or labels == ["pod"] or (n == 2 and labels[1] in ("svc", "pod")):
        return empty
    if labels[-1] == "pod":
        if n == 3:
            ip = _dashed_ip(labels[0])
            if ip is None:
                return None
            return ([RR(qname, QTYPE.A, ttl=ttl, rdata=A(ip))] if qtype in (QTYPE.A, QTYPE.ANY) else [], [])
        return None
    if labels[-1] != "svc":
        return None
    if n == 3:
        svc = lookup.get_service(labels[1], labels[0])
        if svc is None:
            return None
        if svc.external_name:
            return _cname(svc.external_name, qtype, lookup, zone=zone, qname=qname, ttl=ttl)
        if qtype in (QTYPE.A, QTYPE.ANY):
            return ([RR(qname, QTYPE.A, ttl=ttl, rdata=A(ip)) for ip in _service_ips(svc)], [])
        if qtype == QTYPE.SRV:
            return _srv(svc, None, qname, zone, ttl)
        return empty
    if n == 4:
        svc = lookup.get_service(labels[2], labels[1])
        if svc is None or not svc.headless:
            return None
        ep = next((e for e in svc.ready_endpoints() if _endpoint_host(e) == labels[0]), None)
        if ep is None:
            return None
        return ([RR(qname, QTYPE.A, ttl=ttl, rdata=A(ep.ip))] if qtype in (QTYPE.A, QTYPE.ANY) else [], [])
    if n == 5 and labels[0].startswith("_") and labels[1].startswith("_"):
        svc = lookup.get_service(labels[3], labels[2])
        if svc is None:
            return None
        port_name, proto = labels[0][1:], labels[1][1:].upper()
        if not any(p.name == port_name and p.protocol == proto for p in svc.ports):
            return None
        if qtype in (QTYPE.SRV, QTYPE.ANY):
            return _srv(svc, (port_name, proto), qname, zone, ttl)
        return empty
    return None


def _cname(target: str, qtype: int, lookup: ServiceLookup, *, zone: str, qname: str, ttl: int):
    """The CNAME of an ExternalName service; a target inside the zone is followed once
    (a chain of ExternalNames is left to the client, as a loop guard)."""
    answers = [RR(qname, QTYPE.CNAME, ttl=ttl, rdata=CNAME(target + "."))]
    lowered = target.lower()
    if qtype not in (QTYPE.CNAME,) and lowered.endswith("." + zone):
        labels = lowered[: -len(zone) - 1].split(".")
        if len(labels) == 3 and labels[2] == "svc":
            svc = lookup.get_service(labels[1], labels[0])
            if svc is not None and not svc.external_name and qtype in (QTYPE.A, QTYPE.ANY):
                answers += [RR(target + ".", QTYPE.A, ttl=ttl, rdata=A(ip)) for ip in _service_ips(svc)]
    return answers, []


def _service_ips(svc: ServiceView) -> list[str]:
    if not svc.headless:
        return [svc.cluster_ip]  # type: ignore[list-item]
    return sorted({e.ip for e in svc.ready_endpoints()}, key=lambda ip: ipaddress.IPv4Address(ip))


def _endpoint_host(ep: EndpointView) -> str:
    return ep.hostname.lower() if ep.hostname else ep.ip.replace(".", "-")


def _srv(svc: ServiceView, only: tuple[str, str] | None, qname: str, zone: str, ttl: int):
    service_name = f"{svc.name}.{svc.namespace}.svc.{zone}."
    answers: list[RR] = []
    extra: list[RR] = []
    for sp in svc.ports:
        if not sp.name or (only is not None and (sp.name, sp.protocol) != only):
            continue
        if not svc.headless:
            answers.append(RR(qname, QTYPE.SRV, ttl=ttl, rdata=SRV(0, 100, sp.port, service_name)))
            extra.append(RR(service_name, QTYPE.A, ttl=ttl, rdata=A(svc.cluster_ip)))
            continue
        for ep in svc.ready_endpoints():
            if sp.name not in ep.target_ports:
                continue
            target = f"{_endpoint_host(ep)}.{service_name}"
            answers.append(RR(qname, QTYPE.SRV, ttl=ttl, rdata=SRV(0, 100, ep.target_ports[sp.name], target)))
            extra.append(RR(target, QTYPE.A, ttl=ttl, rdata=A(ep.ip)))
    unique_extra = list({(str(r.rname), str(r.rdata)): r for r in extra}.values())
    return answers, unique_extra


def _dashed_ip(label: str) -> str | None:
    try:
        return str(ipaddress.IPv4Address(label.replace("-", ".")))
    except ValueError:
        return None
