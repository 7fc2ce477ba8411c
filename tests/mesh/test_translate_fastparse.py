"""fastparse builds what json_format builds, and hands back what it does not handle
(the mesh conftest also checks every resource the other translation tests produce)."""

from __future__ import annotations

import pytest
from google.protobuf import json_format

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.route.v3 import route_pb2
from shoal.mesh.errors import TranslateError
from shoal.mesh.translate import fastparse, protos

CLUSTER = {
    "name": "outbound|80||web.default.svc.cluster.local",
    "type": "EDS",  # enum by name
    "eds_cluster_config": {"eds_config": {"ads": {}, "resource_api_version": "V3"}},
    "connect_timeout": "10.5s",
    "lb_policy": 3,  # enum by number
    "per_connection_buffer_limit_bytes": 32768,  # UInt32Value as a bare number
    "metadata": {"filter_metadata": {"istio": {"config": "x", "n": 3, "ok": True,
                                               "list": [1, "a", {"b": None}]}}},
    "circuit_breakers": {"thresholds": [{"max_connections": 4294967295, "max_retries": "7"}]},
    "typed_extension_protocol_options": {
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": protos.typed(
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            {"explicit_http_config": {"http2_protocol_options": {}}}),
    },
    "transport_socket_matches": [
        {"name": "tlsMode-istio", "match": {"tlsMode": "istio"},
         "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": protos.typed(
             "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
             {"sni": "outbound_.80_._.web", "common_tls_context": {
                 "alpn_protocols": ["istio-peer-exchange", "istio"]}})}},
    ],
}


def both(body, cls):
    return fastparse.parse(body, cls()), json_format.ParseDict(body, cls())


def test_the_shapes_translation_writes_parse_exactly_as_json_format():
    ours, reference = both(CLUSTER, cluster_pb2.Cluster)
    assert ours == reference
    assert ours.SerializeToString(deterministic=True) == reference.SerializeToString(deterministic=True)
    assert ours.connect_timeout.ToMilliseconds() == 10500
    assert ours.circuit_breakers.thresholds[0].max_retries.value == 7


def test_camel_case_names_and_a_wrapper_inside_any():
    body = {"name": "r", "virtualHosts": [{"name": "v", "domains": ["*"], "typed_per_filter_config": {
        "x": {"@type": "type.googleapis.com/google.protobuf.UInt32Value", "value": 5}}}]}
    ours, reference = both(body, route_pb2.RouteConfiguration)
    assert ours == reference and ours.virtual_hosts[0].domains == ["*"]


@pytest.mark.parametrize("body", [
    {"name": "c", "no_such_field": 1},                      # unknown field
    {"name": None},                                        # null
    {"name": "c", "connect_timeout": "1 minute"},          # not a proto duration
    {"name": "c", "type": "NOT_A_TYPE"},                   # unknown enum name
    {"name": "c", "per_connection_buffer_limit_bytes": -1},  # out of range for uint32
    {"name": "c", "per_connection_buffer_limit_bytes": 2.0},  # json_format's to judge
    {"name": "c", "type": "EDS", "cluster_type": {"name": "x"}},  # two members of a oneof
    {"name": "c", "metadata": {"filter_metadata": {"a": {"b": float("nan")}}}},
])
def test_anything_else_is_handed_back(body):
    with pytest.raises(fastparse.Unsupported):
        fastparse.parse(body, cluster_pb2.Cluster())


def test_to_proto_keeps_json_formats_errors_for_what_fastparse_hands_back():
    with pytest.raises(TranslateError, match=r"Cluster 'c': .*no_such_field"):
        protos.to_proto(protos.CLUSTER, {"name": "c", "no_such_field": 1})
    with pytest.raises(TranslateError, match="Cluster 'c2'"):
        protos.to_proto(protos.CLUSTER, {"name": "c2", "type": "EDS", "cluster_type": {"name": "x"}})
    # what json_format accepts and fastparse does not is still parsed
    assert protos.to_proto(protos.CLUSTER, {"name": "c3", "per_connection_buffer_limit_bytes": 2.0}
                           ).per_connection_buffer_limit_bytes.value == 2
