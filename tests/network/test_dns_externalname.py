"""ExternalName Services in the cluster DNS: a CNAME to spec.externalName (pure)."""

from __future__ import annotations

from dnslib import QTYPE, RCODE, DNSRecord

from shoal.network import ServiceDirectory, ServicePort, ServiceView, service_view
from shoal.network.dns_answers import answer

WEB = ServiceView("default", "web", "10.202.1.10", ports=(ServicePort(80, name="http"),))
OUTSIDE = service_view({"metadata": {"name": "db", "namespace": "prod"},
                        "spec": {"type": "ExternalName", "externalName": "db.example.com."}})
INSIDE = service_view({"metadata": {"name": "alias", "namespace": "prod"},
                       "spec": {"type": "ExternalName", "externalName": "web.default.svc.cluster.local"}})
DIRECTORY = ServiceDirectory([WEB, OUTSIDE, INSIDE])


def ask(name: str, qtype: str = "A") -> DNSRecord:
    reply = answer(DNSRecord.question(name, qtype), DIRECTORY, domain="cluster.local")
    assert reply is not None
    return reply


def test_view_of_an_external_name_service_has_no_address():
    assert OUTSIDE.external_name == "db.example.com" and OUTSIDE.cluster_ip is None and OUTSIDE.endpoints == ()


def test_external_name_answers_a_cname_for_every_type():
    for qtype in ("A", "AAAA", "CNAME", "SRV"):
        reply = ask("db.prod.svc.cluster.local", qtype)
        assert reply.header.rcode == RCODE.NOERROR
        assert [(QTYPE[rr.rtype], str(rr.rdata)) for rr in reply.rr] == [("CNAME", "db.example.com.")]


def test_a_cname_into_the_cluster_domain_carries_the_target_address():
    reply = ask("alias.prod.svc.cluster.local")
    assert [(QTYPE[rr.rtype], str(rr.rname), str(rr.rdata)) for rr in reply.rr] == [
        ("CNAME", "alias.prod.svc.cluster.local.", "web.default.svc.cluster.local."),
        ("A", "web.default.svc.cluster.local.", "10.202.1.10")]
