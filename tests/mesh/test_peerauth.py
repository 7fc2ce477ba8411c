"""PeerAuthentication precedence (Istio's) and validation."""

from __future__ import annotations

from shoal.mesh.meshconfig import MeshConfig
from shoal.mesh.translate.peerauth import effective_mtls, validate_peer_authentication
from tests.mesh.fixtures import cluster, peer_auth

MESH = MeshConfig()
WEB = {"app": "web"}


def mode(*policies, labels=WEB, ns="default", mesh=MESH, port=None):
    policy = effective_mtls(cluster(*policies), mesh, ns, labels)
    return policy.mode if port is None else policy.for_port(port)


def test_default_is_strict_and_configurable():
    assert mode() == "STRICT"
    assert mode(mesh=MeshConfig(default_mtls_mode="PERMISSIVE")) == "PERMISSIVE"


def test_mesh_namespace_workload_port_precedence():
    mesh_wide = peer_auth("default", "istio-system", "PERMISSIVE")
    ns_wide = peer_auth("default", "default", "DISABLE")
    workload = peer_auth("web", "default", "STRICT", selector=WEB, ports={8080: "PERMISSIVE"})
    assert mode(mesh_wide) == "PERMISSIVE"
    assert mode(mesh_wide, ns_wide) == "DISABLE"
    assert mode(mesh_wide, ns_wide, workload) == "STRICT"
    assert mode(mesh_wide, ns_wide, workload, port=8080) == "PERMISSIVE"
    assert mode(mesh_wide, ns_wide, workload, port=9090) == "STRICT"
    # a workload policy does not apply to pods its selector does not match
    assert mode(mesh_wide, ns_wide, workload, labels={"app": "other"}) == "DISABLE"
    # a namespace policy does not leak into other namespaces
    assert mode(mesh_wide, ns_wide, ns="data") == "PERMISSIVE"


def test_unset_inherits_from_the_parent():
    assert mode(peer_auth("default", "default", "PERMISSIVE"),
                peer_auth("web", "default", "UNSET", selector=WEB)) == "PERMISSIVE"
    assert mode(peer_auth("default", "default", "PERMISSIVE"),
                peer_auth("web", "default", None, selector=WEB, ports={80: "UNSET"}),
                port=80) == "PERMISSIVE"


def test_oldest_policy_wins_at_one_level():
    old = peer_auth("b-old", "default", "DISABLE", created="2020-01-01T00:00:00Z")
    new = peer_auth("a-new", "default", "PERMISSIVE", created="2024-01-01T00:00:00Z")
    assert mode(new, old) == "DISABLE"


def test_validation_names_the_field():
    assert validate_peer_authentication(peer_auth("x", "default", "STRICT")[1]) == []
    errors = validate_peer_authentication({"spec": {"mtls": {"mode": "MUTUAL"}}})
    assert [e.path for e in errors] == ["spec.mtls.mode"]
    assert "Unsupported value" in str(errors[0]) and "MUTUAL" in str(errors[0])
    errors = validate_peer_authentication({"spec": {"portLevelMtls": {"http": {"mode": "STRICT"}}}})
    paths = [e.path for e in errors]
    assert "spec.selector" in paths and "spec.portLevelMtls[http]" in paths
