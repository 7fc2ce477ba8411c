"""`shoal mesh status` rows and `shoal mesh check` findings."""

from __future__ import annotations

import datetime

from shoal.mesh import report
from shoal.mesh.proxyconfig import format_table
from shoal.mesh.server import Nack, ProxyStatus
from shoal.mesh.source import ClusterState
from tests.mesh.fixtures import pod

NOW = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)


def status(**kw) -> ProxyStatus:
    values = dict(node_id="n", pod="web-1", namespace="default", connected=True,
                  sent={"CDS": "1", "EDS": "2"}, acked={"CDS": "1", "EDS": "2"}, last_nack=None,
                  cert_expiry=NOW + datetime.timedelta(hours=12),
                  spiffe_id="spiffe://cluster.local/ns/default/sa/web")
    values.update(kw)
    return ProxyStatus(**values)


def test_status_table_shows_sync_and_nacks():
    nacked = status(pod="client", acked={"CDS": "0", "EDS": "2"},
                    last_nack=Nack("CDS", "1", "malformed IP address: not-an-ip", NOW))
    table = format_table(report.status_rows([status(), nacked]))
    lines = table.splitlines()
    assert lines[0].split()[:4] == ["PROXY", "CONNECTED", "CDS", "EDS"]
    assert "web-1.default" in lines[1] and "SYNCED" in lines[1]
    assert "NACKED" in lines[2] and "not-an-ip" in lines[2]


def test_check_finds_unmeshed_pods_nacks_and_expired_certs():
    state = ClusterState.of([
        ("namespaces", {"metadata": {"name": "default", "labels": {"istio-injection": "enabled"}}}),
        pod("legacy", "10.0.0.9", {"app": "legacy"}, sidecar=False),
        pod("web-1", "10.0.0.3", {"app": "web"}),
    ])
    findings = report.check_findings(state, [
        status(),
        status(pod="client", last_nack=Nack("LDS", "7", "bad listener", NOW)),
        status(pod="old", cert_expiry=NOW - datetime.timedelta(seconds=1), connected=False),
    ], NOW)
    text = "\n".join(findings)
    assert "pod default/legacy: in a meshed namespace but has no sidecar" in text
    assert "web-1" not in text
    assert "proxy default/client: LDS version 7 was rejected: bad listener" in text
    assert "proxy default/old: certificate" in text and "expired" in text
    assert "proxy default/old: not connected" in text
