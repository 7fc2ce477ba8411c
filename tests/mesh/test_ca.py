"""The mesh CA: SPIFFE SVIDs, persistence, lifetimes, no key material in reprs."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509

from shoal.mesh.ca import MeshCA
from shoal.mesh.errors import CaError


def test_svid_has_spiffe_uri_and_chains_to_root(tmp_path):
    ca = MeshCA.load_or_create(tmp_path / "mesh", "cluster.local")
    svid = ca.issue_svid("default", "web")
    assert svid.spiffe_id == "spiffe://cluster.local/ns/default/sa/web"
    cert = x509.load_pem_x509_certificate(svid.cert_pem)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.UniformResourceIdentifier) == [svid.spiffe_id]
    root = x509.load_pem_x509_certificate(ca.root_pem)
    cert.verify_directly_issued_by(root)
    life = svid.not_after - svid.not_before
    assert abs(life - datetime.timedelta(hours=24)) < datetime.timedelta(seconds=5)
    assert svid.rotate_at - svid.not_before == life / 2
    assert "PRIVATE" not in repr(svid) and "key_pem" not in repr(svid)
    assert (tmp_path / "mesh" / "root-key.pem").stat().st_mode & 0o777 == 0o600


def test_root_is_reused_and_short_ttls_work(tmp_path):
    first = MeshCA.load_or_create(tmp_path, "example.org")
    again = MeshCA.load_or_create(tmp_path, "example.org")
    assert first.root_pem == again.root_pem
    short = again.issue_svid("ns", "sa", ttl=6)
    assert (short.not_after - short.not_before).total_seconds() == pytest.approx(6, abs=1)
    with pytest.raises(CaError, match="ttl"):
        again.issue_svid("ns", "sa", ttl=0.1)
    with pytest.raises(CaError, match="service_account"):
        again.issue_svid("ns", "")
