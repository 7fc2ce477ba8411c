"""Pure translation: names, filter chains, endpoints, TLS, routes (no Envoy needed)."""

from __future__ import annotations

from shoal.mesh.meshconfig import REGISTRY_ONLY, MeshConfig
from shoal.mesh.source import PODS
from shoal.mesh.translate import model, protos, translate
from tests.mesh.fixtures import cluster, peer_auth

MESH = MeshConfig()


def resources_for(state, pod="client", ns="default", mesh=MESH):
    identity = model.proxy_identity(state.get(PODS, ns, pod), state)
    return translate(state, identity, mesh).by_type()


def as_dict(resources, type_url, name):
    return protos.to_dict(resources[type_url][name])


def test_clusters_are_named_like_istio():
    res = resources_for(cluster(), pod="web-1")
    assert set(res[protos.CLUSTER]) == {
        "PassthroughCluster", "BlackHoleCluster", "InboundPassthroughClusterIpv4",
        "outbound|80||web.default.svc.cluster.local",
        "outbound|9090||web.default.svc.cluster.local",
        "outbound|5432||db.data.svc.cluster.local",
        "inbound|8080||",
        "inbound|9090||",  # the service's grpc-api targetPort, though the pod declares no port
    }
    assert set(res[protos.ROUTE]) == {"80", "9090"}
    assert set(res[protos.LISTENER]) == {"virtualOutbound", "virtualInbound"}


def test_outbound_listener_has_a_chain_per_vip_port_and_passthrough_default():
    res = resources_for(cluster())
    listener = as_dict(res, protos.LISTENER, "virtualOutbound")
    assert listener["address"]["socket_address"]["port_value"] == 15001
    assert listener["listener_filters"][0]["name"] == "envoy.filters.listener.original_dst"
    chains = {c["name"]: c for c in listener["filter_chains"]}
    assert set(chains) == {"10.96.0.10_80", "10.96.0.10_9090", "10.96.0.20_5432"}
    http = chains["10.96.0.10_80"]
    assert http["filter_chain_match"] == {
        "destination_port": 80, "prefix_ranges": [{"address_prefix": "10.96.0.10", "prefix_len": 32}]}
    hcm = http["filters"][0]["typed_config"]
    assert hcm["rds"]["route_config_name"] == "80"
    tcp = chains["10.96.0.20_5432"]["filters"][0]
    assert tcp["name"] == "envoy.filters.network.tcp_proxy"
    assert tcp["typed_config"]["cluster"] == "outbound|5432||db.data.svc.cluster.local"
    default = listener["default_filter_chain"]["filters"][0]["typed_config"]
    assert default["cluster"] == "PassthroughCluster"


def test_registry_only_sends_unknown_destinations_to_blackhole():
    res = resources_for(cluster(), mesh=MeshConfig(outbound_traffic_policy=REGISTRY_ONLY))
    listener = as_dict(res, protos.LISTENER, "virtualOutbound")
    assert listener["default_filter_chain"]["filters"][0]["typed_config"]["cluster"] == "BlackHoleCluster"
    route = as_dict(res, protos.ROUTE, "80")
    assert route["virtual_hosts"][-1]["routes"][0]["direct_response"]["status"] == 502


def test_routes_have_virtual_hosts_with_all_service_names():
    res = resources_for(cluster())
    route = as_dict(res, protos.ROUTE, "80")
    vhost = route["virtual_hosts"][0]
    assert vhost["name"] == "web.default.svc.cluster.local:80"
    for domain in ("web", "web:80", "web.default", "web.default.svc.cluster.local",
                   "10.96.0.10", "10.96.0.10:80"):
        assert domain in vhost["domains"]
    assert vhost["routes"][0]["route"]["cluster"] == "outbound|80||web.default.svc.cluster.local"
    # the short name is only for clients in the same namespace
    other = resources_for(cluster(), pod="db", ns="data")
    assert "web" not in as_dict(other, protos.ROUTE, "80")["virtual_hosts"][0]["domains"]


def test_outbound_cluster_uses_mtls_with_the_servers_spiffe_id():
    res = resources_for(cluster())
    c = as_dict(res, protos.CLUSTER, "outbound|80||web.default.svc.cluster.local")
    assert c["type"] == "EDS"
    assert c["eds_cluster_config"]["service_name"] == "outbound|80||web.default.svc.cluster.local"
    mtls = c["transport_socket_matches"][0]
    assert mtls["match"] == {"tlsMode": "istio"}
    ctx = mtls["transport_socket"]["typed_config"]["common_tls_context"]
    assert ctx["tls_certificate_sds_secret_configs"][0]["name"] == "default"
    validation = ctx["combined_validation_context"]
    assert validation["validation_context_sds_secret_config"]["name"] == "ROOTCA"
    assert validation["default_validation_context"]["match_typed_subject_alt_names"] == [
        {"san_type": "URI", "matcher": {"exact": "spiffe://cluster.local/ns/default/sa/web"}}]
    # grpc port speaks HTTP/2 upstream, http does not
    grpc = as_dict(res, protos.CLUSTER, "outbound|9090||web.default.svc.cluster.local")
    assert "typed_extension_protocol_options" in grpc
    assert "typed_extension_protocol_options" not in c


def test_endpoints_are_ready_pods_and_only_sidecar_pods_get_mtls():
    res = resources_for(cluster())
    cla = as_dict(res, protos.ENDPOINT, "outbound|80||web.default.svc.cluster.local")
    eps = {e["endpoint"]["address"]["socket_address"]["address"]: e
           for e in cla["endpoints"][0]["lb_endpoints"]}
    assert set(eps) == {"10.0.0.3", "10.0.0.4"}  # web-3 is not ready
    assert eps["10.0.0.3"]["endpoint"]["address"]["socket_address"]["port_value"] == 8080
    assert eps["10.0.0.3"]["metadata"]["filter_metadata"][
        "envoy.transport_socket_match"] == {"tlsMode": "istio"}
    assert "metadata" not in eps["10.0.0.4"]


def test_endpoints_with_mtls_disabled_are_reached_in_plaintext():
    state = cluster(peer_auth("web", "default", selector={"app": "web"}, ports={8080: "DISABLE"}))
    cla = as_dict(resources_for(state), protos.ENDPOINT, "outbound|80||web.default.svc.cluster.local")
    assert all("metadata" not in e for e in cla["endpoints"][0]["lb_endpoints"])


def test_endpoints_object_wins_over_selector():
    eps = ("endpoints", {"metadata": {"name": "web", "namespace": "default"}, "subsets": [{
        "addresses": [{"ip": "10.0.0.3", "targetRef": {"kind": "Pod", "name": "web-1"}}],
        "ports": [{"name": "http", "port": 8080}, {"name": "grpc-api", "port": 9090}]}]})
    res = resources_for(cluster(eps))
    cla = as_dict(res, protos.ENDPOINT, "outbound|80||web.default.svc.cluster.local")
    addrs = [e["endpoint"]["address"]["socket_address"] for e in cla["endpoints"][0]["lb_endpoints"]]
    assert addrs == [{"address": "10.0.0.3", "port_value": 8080}]


def test_inbound_strict_requires_client_certificate_and_sets_xfcc():
    res = resources_for(cluster(), pod="web-1")
    listener = as_dict(res, protos.LISTENER, "virtualInbound")
    assert listener["address"]["socket_address"]["port_value"] == 15006
    chains = [c for c in listener["filter_chains"] if c["filter_chain_match"].get("destination_port") == 8080]
    assert len(chains) == 1
    tls = chains[0]["transport_socket"]["typed_config"]
    assert tls["require_client_certificate"] is True
    hcm = chains[0]["filters"][0]["typed_config"]
    assert hcm["forward_client_cert_details"] == "SANITIZE_SET"
    assert hcm["set_current_client_cert_details"] == {"uri": True}
    assert hcm["route_config"]["virtual_hosts"][0]["routes"][0]["route"]["cluster"] == "inbound|8080||"
    inbound = as_dict(res, protos.CLUSTER, "inbound|8080||")
    assert inbound["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"][
        "socket_address"] == {"address": "127.0.0.1", "port_value": 8080}
    assert [f["name"] for f in listener["listener_filters"]] == ["envoy.filters.listener.original_dst"]


def test_inbound_permissive_has_tls_and_plaintext_chains():
    state = cluster(peer_auth("default", "default", "PERMISSIVE"))
    listener = as_dict(resources_for(state, pod="web-1"), protos.LISTENER, "virtualInbound")
    chains = {c["name"]: c for c in listener["filter_chains"]}
    assert chains["inbound|8080-mtls"]["filter_chain_match"]["transport_protocol"] == "tls"
    assert "istio" in chains["inbound|8080-mtls"]["filter_chain_match"]["application_protocols"]
    assert chains["inbound|8080-plaintext"]["filter_chain_match"]["transport_protocol"] == "raw_buffer"
    assert "transport_socket" not in chains["inbound|8080-plaintext"]
    assert "envoy.filters.listener.tls_inspector" in [f["name"] for f in listener["listener_filters"]]


def test_inbound_disable_is_plaintext_only_for_that_port():
    state = cluster(peer_auth("web", "default", selector={"app": "web"}, ports={8080: "DISABLE"}))
    listener = as_dict(resources_for(state, pod="web-1"), protos.LISTENER, "virtualInbound")
    chains = [c for c in listener["filter_chains"] if c["filter_chain_match"].get("destination_port") == 8080]
    assert [c["name"] for c in chains] == ["inbound|8080-plaintext"]
    # the rest of the workload stays STRICT
    assert "transport_socket" in listener["default_filter_chain"]


def test_translation_is_deterministic():
    a = resources_for(cluster())
    b = resources_for(cluster())
    for type_url in a:
        for name in a[type_url]:
            assert a[type_url][name].SerializeToString(deterministic=True) == \
                b[type_url][name].SerializeToString(deterministic=True)


def test_oldest_service_decides_the_protocol_of_a_shared_target_port():
    from tests.mesh.fixtures import service
    newer = service("web-raw", "10.96.0.30", {"app": "web"}, [{"name": "tcp", "port": 9000, "targetPort": 8080}])
    newer[1]["metadata"]["creationTimestamp"] = "2030-01-01T00:00:00Z"
    state = cluster(newer)
    state.get("services", "default", "web")["metadata"]["creationTimestamp"] = "2020-01-01T00:00:00Z"
    identity = model.proxy_identity(state.get(PODS, "default", "web-1"), state)
    assert {p.port: p.protocol for p in identity.ports}[8080] == "http"


def test_port_protocol_rules():
    assert model.port_protocol("http-web") == "http"
    assert model.port_protocol("grpc") == "grpc"
    assert model.port_protocol("tcp-db") == "tcp"
    assert model.port_protocol("", None) == "tcp"
    assert model.port_protocol("web", "kubernetes.io/h2c") == "h2c"
    assert model.port_protocol("tcp", "http") == "http"


def test_node_id_round_trip():
    node = model.node_id("10.0.0.2", "client", "default")
    assert node == "sidecar~10.0.0.2~client.default~default.svc.cluster.local"
    assert model.parse_node_id(node) == ("10.0.0.2", "client", "default")
