"""Pure translation of DestinationRules into Envoy clusters, endpoints and route hash
policies (every resource also goes through protos.to_proto, i.e. Envoy's schema)."""

from __future__ import annotations

import pytest

from shoal.mesh.errors import TranslateError
from shoal.mesh.meshconfig import MeshConfig
from shoal.mesh.source import DESTINATION_RULES, PODS, ClusterState
from shoal.mesh.translate import Outbound, clusters, model, protos, translate
from tests.mesh.fixtures import pod, service

MESH = MeshConfig()
WEB = "web.default.svc.cluster.local"
C80, C9090 = f"outbound|80||{WEB}", f"outbound|9090||{WEB}"


def dr(spec: dict, name="web", ns="default", created="2024-01-01T00:00:00Z"):
    return (DESTINATION_RULES, {
        "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
        "metadata": {"name": name, "namespace": ns, "creationTimestamp": created},
        "spec": spec})


def state(*extra) -> ClusterState:
    return ClusterState.of([
        pod("client", "10.0.0.2", {"app": "client"}, sa="sleep"),
        pod("other", "10.0.1.2", {"app": "client"}, sa="sleep", ns="other"),
        pod("web-v1", "10.0.0.3", {"app": "web", "version": "v1"}, sa="web", ports=[("http", 8080)]),
        pod("web-v2", "10.0.0.4", {"app": "web", "version": "v2"}, sa="web", ports=[("http", 8080)]),
        pod("web-v2b", "10.0.0.5", {"app": "web", "version": "v2"}, sa="web",
            ports=[("http", 8080)], sidecar=False),
        service("web", "10.96.0.10", {"app": "web"}, [
            {"name": "http", "port": 80, "targetPort": 8080},
            {"name": "tcp-raw", "port": 9090, "targetPort": 9090}]),
        *extra,
    ])


def resources(st, pod_name="client", ns="default", mesh=MESH, shared=None):
    identity = model.proxy_identity(st.get(PODS, ns, pod_name), st)
    return translate(st, identity, mesh, shared).by_type()


def cluster_of(res, name):
    c = protos.to_dict(res[protos.CLUSTER][name])
    c.setdefault("lb_policy", "ROUND_ROBIN")  # the enum's zero value is left out of JSON
    return c


def endpoint_ips(res, name):
    cla = protos.to_dict(res[protos.ENDPOINT][name])
    return sorted(e["endpoint"]["address"]["socket_address"]["address"]
                  for group in cla.get("endpoints", []) for e in group["lb_endpoints"])


def one(spec, name=C80, **kw):
    return cluster_of(resources(state(dr(spec)), **kw), name)


def test_without_a_rule_clusters_keep_istios_defaults():
    c = one({"host": "other"}, C80)  # a rule for another host changes nothing here
    assert c["lb_policy"] == "LEAST_REQUEST"
    assert c["connect_timeout"] == "10s"
    assert c["circuit_breakers"]["thresholds"] == [{
        "max_connections": 4294967295, "max_pending_requests": 4294967295,
        "max_requests": 4294967295, "max_retries": 4294967295, "track_remaining": True}]
    assert [m["name"] for m in c["transport_socket_matches"]] == ["tlsMode-istio", "tlsMode-disabled"]
    assert "outlier_detection" not in c and "transport_socket" not in c


def test_subsets_get_a_cluster_per_port_with_only_their_pods():
    spec = {"host": "web", "subsets": [
        {"name": "v1", "labels": {"version": "v1"}},
        {"name": "v2", "labels": {"version": "v2"}},
        {"name": "none", "labels": {"version": "v9"}}]}
    res = resources(state(dr(spec)))
    for port in (80, 9090):
        for subset in ("v1", "v2", "none"):
            name = f"outbound|{port}|{subset}|{WEB}"
            c = cluster_of(res, name)
            assert c["type"] == "EDS" and c["eds_cluster_config"]["service_name"] == name
    assert endpoint_ips(res, f"outbound|80|v1|{WEB}") == ["10.0.0.3"]
    assert endpoint_ips(res, f"outbound|80|v2|{WEB}") == ["10.0.0.4", "10.0.0.5"]
    assert endpoint_ips(res, f"outbound|80|none|{WEB}") == []
    assert endpoint_ips(res, C80) == ["10.0.0.3", "10.0.0.4", "10.0.0.5"]
    # auto-mTLS per subset, with the subset in Istio's SNI
    v1 = cluster_of(res, f"outbound|80|v1|{WEB}")
    socket = v1["transport_socket_matches"][0]["transport_socket"]["typed_config"]
    assert socket["sni"] == f"outbound_.80_.v1_.{WEB}"


def test_subsets_select_by_pod_labels_when_endpoints_come_from_an_endpoints_object():
    eps = ("endpoints", {"metadata": {"name": "web", "namespace": "default"}, "subsets": [{
        "addresses": [{"ip": "10.0.0.3"}, {"ip": "10.0.0.4"}, {"ip": "10.0.0.9"}],
        "ports": [{"name": "http", "port": 8080}, {"name": "tcp-raw", "port": 9090}]}]})
    spec = {"host": "web", "subsets": [{"name": "v2", "labels": {"version": "v2"}}]}
    res = resources(state(eps, dr(spec)))
    assert endpoint_ips(res, C80) == ["10.0.0.3", "10.0.0.4", "10.0.0.9"]
    assert endpoint_ips(res, f"outbound|80|v2|{WEB}") == ["10.0.0.4"]  # .9 has no pod: no labels


def test_rules_with_a_workload_selector_are_not_applied_to_every_client():
    c = one({"host": "web", "workloadSelector": {"matchLabels": {"app": "client"}},
             "trafficPolicy": {"loadBalancer": {"simple": "RANDOM"}}})
    assert c["lb_policy"] == "LEAST_REQUEST"


def test_subset_policy_overrides_top_level_field_by_field():
    spec = {"host": WEB, "trafficPolicy": {
        "loadBalancer": {"simple": "ROUND_ROBIN"},
        "connectionPool": {"tcp": {"maxConnections": 7}}},
        "subsets": [{"name": "v1", "labels": {"version": "v1"}},
                    {"name": "v2", "labels": {"version": "v2"},
                     "trafficPolicy": {"loadBalancer": {"simple": "RANDOM"}}}]}
    res = resources(state(dr(spec)))
    v1, v2 = (cluster_of(res, f"outbound|80|{s}|{WEB}") for s in ("v1", "v2"))
    assert v1["lb_policy"] == "ROUND_ROBIN" and v2["lb_policy"] == "RANDOM"
    for c in (v1, v2, cluster_of(res, C80)):
        assert c["circuit_breakers"]["thresholds"][0]["max_connections"] == 7


def test_port_level_settings_replace_the_policy_for_that_port_without_inheriting():
    spec = {"host": WEB, "trafficPolicy": {
        "connectionPool": {"tcp": {"maxConnections": 5}},
        "portLevelSettings": [{"port": {"number": 80}, "loadBalancer": {"simple": "RANDOM"}}]},
        "subsets": [{"name": "v1", "labels": {"version": "v1"}, "trafficPolicy": {
            "portLevelSettings": [{"port": {"number": 9090},
                                   "loadBalancer": {"simple": "ROUND_ROBIN"}}]}}]}
    res = resources(state(dr(spec)))
    c80, c9090 = cluster_of(res, C80), cluster_of(res, C9090)
    assert c80["lb_policy"] == "RANDOM"
    assert c80["circuit_breakers"]["thresholds"][0]["max_connections"] == 4294967295
    assert c9090["lb_policy"] == "LEAST_REQUEST"
    assert c9090["circuit_breakers"]["thresholds"][0]["max_connections"] == 5
    v1_9090 = cluster_of(res, f"outbound|9090|v1|{WEB}")
    assert v1_9090["lb_policy"] == "ROUND_ROBIN"
    assert v1_9090["circuit_breakers"]["thresholds"][0]["max_connections"] == 4294967295
    assert cluster_of(res, f"outbound|80|v1|{WEB}")["lb_policy"] == "RANDOM"


@pytest.mark.parametrize("simple,policy", [
    ("ROUND_ROBIN", "ROUND_ROBIN"), ("LEAST_REQUEST", "LEAST_REQUEST"),
    ("LEAST_CONN", "LEAST_REQUEST"), ("RANDOM", "RANDOM"), ("UNSPECIFIED", "LEAST_REQUEST")])
def test_simple_load_balancers(simple, policy):
    c = one({"host": "web", "trafficPolicy": {"loadBalancer": {"simple": simple}}})
    assert c["lb_policy"] == policy


def test_passthrough_is_an_original_dst_cluster_without_endpoints():
    res = resources(state(dr({"host": "web", "trafficPolicy": {
        "loadBalancer": {"simple": "PASSTHROUGH"}}})))
    c = cluster_of(res, C80)
    assert c["type"] == "ORIGINAL_DST" and c["lb_policy"] == "CLUSTER_PROVIDED"
    assert "eds_cluster_config" not in c
    assert C80 not in res[protos.ENDPOINT]


@pytest.mark.parametrize("simple,config", [
    ("ROUND_ROBIN", "round_robin_lb_config"), ("LEAST_REQUEST", "least_request_lb_config"),
    (None, "least_request_lb_config")])
def test_warmup_is_slow_start(simple, config):
    lb = {"warmupDurationSecs": "1m"} | ({"simple": simple} if simple else {})
    c = one({"host": "web", "trafficPolicy": {"loadBalancer": lb}})
    assert c[config] == {"slow_start_config": {"slow_start_window": "60s"}}


@pytest.mark.parametrize("consistent,hashing", [
    ({"httpHeaderName": "x-user"}, [{"header": {"header_name": "x-user"}}]),
    ({"httpCookie": {"name": "session", "path": "/", "ttl": "90s"}},
     [{"cookie": {"name": "session", "path": "/", "ttl": "90s"}}]),
    ({"useSourceIp": True}, [{"connection_properties": {"source_ip": True}}]),
    ({"httpQueryParameterName": "user"}, [{"query_parameter": {"name": "user"}}]),
])
def test_consistent_hash_is_ring_hash_plus_the_default_routes_hash_policy(consistent, hashing):
    res = resources(state(dr({"host": "web", "trafficPolicy": {
        "loadBalancer": {"consistentHash": consistent}}})))
    c = cluster_of(res, C80)
    assert c["lb_policy"] == "RING_HASH"
    assert c["ring_hash_lb_config"] == {"minimum_ring_size": "1024"}
    assert "least_request_lb_config" not in c
    route_config = protos.to_dict(res[protos.ROUTE]["80"])
    vhost = next(v for v in route_config["virtual_hosts"] if v["name"] == f"{WEB}:80")
    assert vhost["routes"][0]["route"]["hash_policy"] == hashing
    # and the functions VirtualService routes use give the same
    shared = Outbound(state(dr({"host": "web", "trafficPolicy": {
        "loadBalancer": {"consistentHash": consistent}}})), MESH)
    web = next(s for s in shared.services if s.fqdn == WEB)
    assert clusters.hash_policy(shared.rules.policy("default", web, 80)) == hashing
    assert clusters.hash_policy(shared.rules.policy("default", web, 80, "no-such-subset")) == hashing


def test_maglev_and_ring_sizes():
    c = one({"host": "web", "trafficPolicy": {"loadBalancer": {"consistentHash": {
        "httpHeaderName": "x", "maglev": {"tableSize": 65537}}}}})
    assert c["lb_policy"] == "MAGLEV" and c["maglev_lb_config"] == {"table_size": "65537"}
    c = one({"host": "web", "trafficPolicy": {"loadBalancer": {"consistentHash": {
        "httpHeaderName": "x", "ringHash": {"minimumRingSize": 64}}}}})
    assert c["lb_policy"] == "RING_HASH" and c["ring_hash_lb_config"] == {"minimum_ring_size": "64"}


def test_no_hash_policy_without_consistent_hash():
    assert clusters.hash_policy({"loadBalancer": {"simple": "RANDOM"}}) == []
    assert clusters.hash_policy({}) == [] and clusters.hash_policy(None) == []
    res = resources(state(dr({"host": "web", "trafficPolicy": {"loadBalancer": {"simple": "RANDOM"}}})))
    vhost = protos.to_dict(res[protos.ROUTE]["80"])["virtual_hosts"][0]
    assert "hash_policy" not in vhost["routes"][0]["route"]


def test_connection_pool_fields():
    c = one({"host": "web", "trafficPolicy": {"connectionPool": {
        "tcp": {"maxConnections": 1, "connectTimeout": "250ms",
                "tcpKeepalive": {"probes": 3, "time": "1m", "interval": "10s"},
                "maxConnectionDuration": "1h"},
        "http": {"http1MaxPendingRequests": 2, "http2MaxRequests": 3, "maxRetries": 4,
                 "maxRequestsPerConnection": 5, "idleTimeout": "30s",
                 "h2UpgradePolicy": "UPGRADE", "maxConcurrentStreams": 9}}}})
    assert c["circuit_breakers"]["thresholds"] == [{
        "max_connections": 1, "max_pending_requests": 2, "max_requests": 3, "max_retries": 4,
        "track_remaining": True}]
    assert c["connect_timeout"] == "0.250s"
    assert c["upstream_connection_options"] == {"tcp_keepalive": {
        "keepalive_probes": 3, "keepalive_time": 60, "keepalive_interval": 10}}
    options = c["typed_extension_protocol_options"][clusters.HTTP_OPTIONS]
    assert options["common_http_protocol_options"] == {
        "idle_timeout": "30s", "max_requests_per_connection": 5, "max_connection_duration": "3600s"}
    assert options["explicit_http_config"] == {"http2_protocol_options": {"max_concurrent_streams": 9}}


def test_h2_upgrade_only_when_asked_and_only_on_http_ports():
    plain = one({"host": "web", "trafficPolicy": {"connectionPool": {"http": {
        "h2UpgradePolicy": "DO_NOT_UPGRADE"}}}})
    assert "typed_extension_protocol_options" not in plain
    tcp = one({"host": "web", "trafficPolicy": {"connectionPool": {"http": {
        "h2UpgradePolicy": "UPGRADE"}}}}, C9090)
    assert "typed_extension_protocol_options" not in tcp
    client = one({"host": "web", "trafficPolicy": {"connectionPool": {"http": {
        "useClientProtocol": True}}}})
    options = client["typed_extension_protocol_options"][clusters.HTTP_OPTIONS]
    assert options["use_downstream_protocol_config"] == {
        "http_protocol_options": {}, "http2_protocol_options": {}}


def test_outlier_detection_fields():
    c = one({"host": "web", "trafficPolicy": {"outlierDetection": {
        "consecutive5xxErrors": 2, "consecutiveGatewayErrors": 0, "interval": "1s",
        "baseEjectionTime": "3m", "maxEjectionPercent": 100, "minHealthPercent": 25}}})
    assert c["outlier_detection"] == {
        "consecutive_5xx": 2, "enforcing_consecutive_5xx": 100,
        "consecutive_gateway_failure": 0, "enforcing_consecutive_gateway_failure": 0,
        "interval": "1s", "base_ejection_time": "180s", "max_ejection_percent": 100,
        "enforcing_success_rate": 0}
    assert c["common_lb_config"] == {"healthy_panic_threshold": {"value": 25.0}}
    # Istio's default minimum health is 0, not Envoy's 50
    c = one({"host": "web", "trafficPolicy": {"outlierDetection": {"consecutive5xxErrors": 1}}})
    assert c["common_lb_config"] == {"healthy_panic_threshold": {}}  # 0.0 prints as {}


def _socket(c):
    return c["transport_socket"]["typed_config"]


def test_tls_istio_mutual_is_mtls_to_every_endpoint():
    c = one({"host": "web", "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}}})
    assert "transport_socket_matches" not in c
    socket = _socket(c)
    assert socket["sni"] == f"outbound_.80_._.{WEB}"
    sans = socket["common_tls_context"]["combined_validation_context"][
        "default_validation_context"]["match_typed_subject_alt_names"]
    assert sans == [{"san_type": "URI", "matcher": {"exact": "spiffe://cluster.local/ns/default/sa/web"}}]
    assert socket["common_tls_context"]["tls_certificate_sds_secret_configs"][0]["name"] == "default"


def test_tls_disable_is_plaintext():
    c = one({"host": "web", "trafficPolicy": {"tls": {"mode": "DISABLE"}}})
    assert "transport_socket_matches" not in c
    assert c["transport_socket"]["name"] == "envoy.transport_sockets.raw_buffer"


def test_tls_simple_and_mutual_originate_the_apps_tls():
    c = one({"host": "web", "trafficPolicy": {"tls": {
        "mode": "SIMPLE", "sni": "web.example.com", "caCertificates": "/etc/certs/ca.pem",
        "subjectAltNames": ["web.example.com"]}}})
    socket = _socket(c)
    assert socket["sni"] == "web.example.com"
    validation = socket["common_tls_context"]["validation_context"]
    assert validation["trusted_ca"] == {"filename": "/etc/certs/ca.pem"}
    assert {"san_type": "DNS", "matcher": {"exact": "web.example.com"}} in validation[
        "match_typed_subject_alt_names"]
    assert "tls_certificates" not in socket["common_tls_context"]
    c = one({"host": "web", "trafficPolicy": {"tls": {
        "mode": "MUTUAL", "clientCertificate": "/c.pem", "privateKey": "/k.pem"}}})
    common = _socket(c)["common_tls_context"]
    assert common["tls_certificates"] == [{"certificate_chain": {"filename": "/c.pem"},
                                           "private_key": {"filename": "/k.pem"}}]
    assert common["validation_context"]["trusted_ca"] == {"filename": clusters.SYSTEM_CA}
    c = one({"host": "web", "trafficPolicy": {"tls": {"mode": "SIMPLE", "insecureSkipVerify": True}}})
    assert "validation_context" not in _socket(c)["common_tls_context"]


# -- lookup -------------------------------------------------------------------------


def lb_seen(st, pod_name, ns):
    return cluster_of(resources(st, pod_name, ns), C80)["lb_policy"]


def test_lookup_client_namespace_then_service_namespace_then_root():
    root = dr({"host": WEB, "trafficPolicy": {"loadBalancer": {"simple": "ROUND_ROBIN"}}},
              name="mesh", ns="istio-system")
    service_ns = dr({"host": "web", "trafficPolicy": {"loadBalancer": {"simple": "RANDOM"}}})
    client_ns = dr({"host": WEB, "trafficPolicy": {"loadBalancer": {"simple": "LEAST_REQUEST",
                                                                     "warmupDurationSecs": "5s"}}},
                   name="mine", ns="other")
    assert lb_seen(state(root), "other", "other") == "ROUND_ROBIN"
    assert lb_seen(state(root, service_ns), "other", "other") == "RANDOM"
    both = state(root, service_ns, client_ns)
    assert "least_request_lb_config" in cluster_of(resources(both, "other", "other"), C80)
    assert lb_seen(both, "client", "default") == "RANDOM"


def test_export_to_hides_a_rule_from_other_namespaces():
    private = dr({"host": "web", "exportTo": ["."],
                  "trafficPolicy": {"loadBalancer": {"simple": "RANDOM"}}})
    st = state(private)
    assert lb_seen(st, "client", "default") == "RANDOM"
    assert lb_seen(st, "other", "other") == "LEAST_REQUEST"
    named = dr({"host": "web", "exportTo": ["other"],
                "trafficPolicy": {"loadBalancer": {"simple": "RANDOM"}}})
    assert lb_seen(state(named), "other", "other") == "RANDOM"
    assert lb_seen(state(named), "client", "default") == "LEAST_REQUEST"


def test_exact_host_beats_wildcards_and_longer_wildcards_beat_shorter():
    star = dr({"host": "*", "trafficPolicy": {"loadBalancer": {"simple": "ROUND_ROBIN"}}}, name="a")
    ns_wild = dr({"host": "*.default.svc.cluster.local",
                  "trafficPolicy": {"loadBalancer": {"simple": "RANDOM"}}}, name="b")
    exact = dr({"host": WEB, "trafficPolicy": {"loadBalancer": {"simple": "LEAST_REQUEST",
                                                                 "warmupDurationSecs": "1s"}}},
               name="c", created="2030-01-01T00:00:00Z")
    assert lb_seen(state(star), "client", "default") == "ROUND_ROBIN"
    assert lb_seen(state(star, ns_wild), "client", "default") == "RANDOM"
    c = cluster_of(resources(state(star, ns_wild, exact)), C80)
    assert "least_request_lb_config" in c


def test_rules_for_one_host_merge_oldest_policy_first_and_all_subsets():
    old = dr({"host": "web", "trafficPolicy": {"loadBalancer": {"simple": "RANDOM"}},
              "subsets": [{"name": "v1", "labels": {"version": "v1"}}]}, name="old")
    new = dr({"host": "web", "trafficPolicy": {"loadBalancer": {"simple": "ROUND_ROBIN"}},
              "subsets": [{"name": "v1", "labels": {"version": "v2"}},
                          {"name": "v2", "labels": {"version": "v2"}}]},
             name="new", created="2025-01-01T00:00:00Z")
    res = resources(state(new, old))
    assert cluster_of(res, C80)["lb_policy"] == "RANDOM"
    assert endpoint_ips(res, f"outbound|80|v1|{WEB}") == ["10.0.0.3"]
    assert endpoint_ips(res, f"outbound|80|v2|{WEB}") == ["10.0.0.4", "10.0.0.5"]


def test_namespaces_that_see_the_same_rules_share_one_set_of_clusters():
    third = pod("third", "10.0.2.2", {"app": "x"}, ns="third")
    # a rule in its service's namespace, exported everywhere: one set for all
    st = state(dr({"host": "web", "trafficPolicy": {"loadBalancer": {"simple": "RANDOM"}}}), third)
    shared = Outbound(st, MESH)
    assert shared.clusters("other") is shared.clusters("third") is shared.clusters("default")
    assert lb_seen(st, "other", "other") == "RANDOM"
    # a rule for web in another namespace: that namespace gets its own clusters
    mine = dr({"host": WEB, "trafficPolicy": {"loadBalancer": {"simple": "ROUND_ROBIN"}}},
              name="mine", ns="third")
    shared = Outbound(state(mine, third), MESH)
    assert shared.clusters("other") is shared.clusters("default")
    assert shared.clusters("other") is not shared.clusters("third")
    # so does a namespace that sees a rule others do not
    private = dr({"host": "web", "exportTo": ["."],
                  "trafficPolicy": {"loadBalancer": {"simple": "RANDOM"}}})
    shared = Outbound(state(private, third), MESH)
    assert shared.clusters("other") is shared.clusters("third")
    assert shared.clusters("default") is not shared.clusters("other")


def test_bad_duration_names_the_rule_and_field():
    bad = dr({"host": "web", "trafficPolicy": {"connectionPool": {"tcp": {"connectTimeout": "soon"}}}})
    with pytest.raises(TranslateError, match=r"default/web: spec\.trafficPolicy\.connectionPool"
                                             r"\.tcp\.connectTimeout: invalid duration 'soon'"):
        resources(state(bad))


@pytest.mark.parametrize("text,seconds", [("1s", 1), ("0.5s", 0.5), ("1m", 60), ("1h30m", 5400),
                                           ("250ms", 0.25), ("10us", 1e-5)])
def test_durations_as_istio_writes_them(text, seconds):
    assert clusters.seconds(text, "x") == pytest.approx(seconds)
