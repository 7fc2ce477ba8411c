"""The metrics service's pure parts: records, workloads, Istio's labels, counting and
the Prometheus text (no Envoy, no sockets)."""

from __future__ import annotations

import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from prometheus_client.parser import text_string_to_metric_families

from shoal.mesh.meshconfig import MeshConfig
from shoal.mesh.telemetry import labels, metrics, records, workloads
from shoal.mesh.telemetry.records import Record
from shoal.mesh.translate import telemetry
from tests.mesh.fixtures import cluster

INDEX = workloads.WorkloadIndex(cluster(), MeshConfig())
WEB_1 = INDEX.pod("default", "web-1")
CLIENT = INDEX.pod("default", "client")
SLEEP = "spiffe://cluster.local/ns/default/sa/sleep"
WEB = "spiffe://cluster.local/ns/default/sa/web"


def http(side="inbound", **fields) -> Record:
    base = dict(side=side, node="sidecar~10.0.0.3~web-1.default~default.svc.cluster.local",
                log_type="DownstreamEnd", response_code=200, response_flags="-")
    return Record(**{**base, **fields})


def test_workload_names_follow_the_pods_controller():
    def named(owner_kind, owner, pod_labels=None):
        return workloads.workload_name({"metadata": {
            "name": "p-xyz", "labels": pod_labels or {},
            "ownerReferences": [{"kind": owner_kind, "name": owner, "controller": True}]}})
    assert named("ReplicaSet", "reviews-v1-5d8f7c", {"pod-template-hash": "5d8f7c"}) == "reviews-v1"
    assert named("StatefulSet", "db") == "db"
    assert named("Job", "backup-28345120") == "backup"  # a CronJob's job
    assert workloads.workload_name({"metadata": {"name": "bare"}}) == "bare"


def test_inbound_labels_from_the_client_certificate_and_address():
    got = labels.record_labels(http(downstream_peer=SLEEP, downstream_ip="10.0.0.2",
                                    downstream_local="10.0.0.3:8080", authority="web"),
                               WEB_1, INDEX)
    assert got["reporter"] == "destination"
    assert (got["source_workload"], got["source_app"], got["source_principal"]) == (
        "client", "client", SLEEP)
    assert (got["destination_workload"], got["destination_principal"]) == ("web-1", WEB)
    assert got["destination_service"] == "web.default.svc.cluster.local"
    assert got["connection_security_policy"] == "mutual_tls"
    assert got["source_version"] == "unknown"


def test_a_certificate_that_does_not_match_the_address_gives_unknown_workload():
    got = labels.record_labels(http(downstream_peer="spiffe://cluster.local/ns/x/sa/evil",
                                    downstream_ip="10.0.0.2"), WEB_1, INDEX)
    assert (got["source_workload"], got["source_principal"]) == (
        "unknown", "spiffe://cluster.local/ns/x/sa/evil")


def test_plaintext_inbound_is_policy_none_without_principals():
    got = labels.record_labels(http(downstream_ip="10.9.9.9"), WEB_1, INDEX)
    assert got["connection_security_policy"] == "none"
    assert got["source_workload"] == got["source_principal"] == got["destination_principal"] == "unknown"


def test_outbound_labels_follow_the_cluster_actually_used():
    got = labels.record_labels(http(
        side="outbound", upstream_peer=WEB, upstream_host="10.0.0.3:8080",
        upstream_cluster="outbound|80|v2|web.default.svc.cluster.local",
        content_type="application/grpc", grpc_status="0"), CLIENT, INDEX)
    assert got["reporter"] == "source"
    assert (got["destination_service_name"], got["destination_service_namespace"]) == ("web", "default")
    assert (got["destination_workload"], got["source_principal"]) == ("web-1", SLEEP)
    assert (got["request_protocol"], got["grpc_response_status"]) == ("grpc", "0")
    assert got["connection_security_policy"] == "unknown"
    passthrough = labels.record_labels(http(side="outbound", upstream_cluster="PassthroughCluster",
                                            authority="example.com"), CLIENT, INDEX)
    assert (passthrough["destination_service_name"], passthrough["destination_service"]) == (
        "PassthroughCluster", "example.com")


def test_requests_and_histograms_count_every_record_once():
    proxy = metrics.ProxyMetrics(WEB_1)
    for duration in (0, 1, 7, 4000):
        proxy.add(http(duration_ms=duration, request_headers_bytes=100, bytes_received=20), INDEX)
    proxy.add(http(log_type="DownstreamPeriodic"), INDEX)  # not a finished request
    families = {f.name: f for f in text_string_to_metric_families(proxy.render())}
    [requests] = families["istio_requests"].samples
    assert requests.value == 4
    buckets = {s.labels["le"]: s.value for s in families["istio_request_duration_milliseconds"].samples
               if s.name.endswith("_bucket")}
    assert (buckets["0.5"], buckets["1"], buckets["5"], buckets["10"], buckets["5000"],
            buckets["+Inf"]) == (1, 2, 2, 3, 4, 4)
    sums = {s.name: s.value for s in families["istio_request_bytes"].samples}
    assert (sums["istio_request_bytes_sum"], sums["istio_request_bytes_count"]) == (480, 4)


def test_tcp_bytes_are_deltas_of_envoys_running_totals():
    proxy = metrics.ProxyMetrics(WEB_1)
    tcp = dict(downstream_peer=SLEEP, downstream_ip="10.0.0.2", connection_id="7")
    proxy.add(http(log_type="TcpUpstreamConnected", **tcp), INDEX)
    proxy.add(http(log_type="TcpPeriodic", bytes_received=100, bytes_sent=10, **tcp), INDEX)
    proxy.add(http(log_type="TcpPeriodic", bytes_received=250, bytes_sent=10, **tcp), INDEX)
    proxy.add(http(log_type="TcpConnectionEnd", bytes_received=300, bytes_sent=40, **tcp), INDEX)
    # a connection whose upstream never connected: opened and closed at its end
    proxy.add(http(log_type="TcpConnectionEnd", response_flags="UF",
                   **{**tcp, "connection_id": "8"}), INDEX)
    values = {}
    for family in text_string_to_metric_families(proxy.render()):
        for s in family.samples:
            values[(s.name, s.labels["response_flags"])] = s.value
            assert "response_code" not in s.labels and s.labels["request_protocol"] == "tcp"
    assert values == {
        ("istio_tcp_received_bytes_total", "-"): 300, ("istio_tcp_sent_bytes_total", "-"): 40,
        ("istio_tcp_connections_opened_total", "-"): 1, ("istio_tcp_connections_closed_total", "-"): 1,
        ("istio_tcp_connections_opened_total", "UF"): 1, ("istio_tcp_connections_closed_total", "UF"): 1,
    }


def test_label_values_are_escaped():
    proxy = metrics.ProxyMetrics(WEB_1)
    proxy.add(http(side="outbound", upstream_cluster="PassthroughCluster",
                   authority='a"b\\c'), INDEX)
    [family] = [f for f in text_string_to_metric_families(proxy.render())
                if f.name == "istio_requests"]
    assert family.samples[0].labels["destination_service"] == 'a"b\\c'


def _request(side: str, node: str, *attribute_sets: dict) -> logs_service_pb2.ExportLogsServiceRequest:
    request = logs_service_pb2.ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    for key, value in (("log_name", side), ("node_name", node)):
        resource_logs.resource.attributes.add(key=key, value=common_pb2.AnyValue(string_value=value))
    scope = resource_logs.scope_logs.add()
    for attributes in attribute_sets:
        scope.log_records.add().body.string_value = body(**attributes)
    return request


def body(**fields: str) -> str:
    """A record body as the sidecar sends it: every field, `-` where not given."""
    return telemetry.FIELD_SEPARATOR.join(fields.get(name, "-")
                                          for name, _ in telemetry.ACCESS_LOG_FIELDS)


NODE = "sidecar~10.0.0.3~web-1.default~default.svc.cluster.local"


def test_a_malformed_record_is_refused_alone():
    good = {"log_type": "DownstreamEnd", "response_code": "200", "upstream_host": "-"}
    bad = {"log_type": "DownstreamEnd", "response_code": "2x0"}
    found, problems = records.parse_export(_request("inbound", NODE, good, bad, good))
    assert len(found) == 2 and found[0].upstream_host == "" and found[0].response_code == 200
    assert problems == ["field response_code '2x0': expected a number"]
    _, problems = records.parse_export(_request("sideways", NODE, good))
    assert "log_name 'sideways'" in problems[0]


def test_a_pod_socket_refuses_records_of_another_pod():
    good = {"log_type": "DownstreamEnd", "response_code": "200"}
    found, problems = records.parse_export(_request("inbound", NODE, good), bound=("default", "client"))
    assert found == [] and "this socket serves pod default/client" in problems[0]
    found, _ = records.parse_export(_request("inbound", NODE, good), bound=("default", "web-1"))
    assert len(found) == 1


@pytest.mark.parametrize("value", ["1.5", "-3", "9" * 300, "٣"])
def test_numbers_must_be_plain_non_negative_integers(value):
    with pytest.raises(records.RecordError, match="duration_ms"):
        records.parse_record("inbound", NODE, body(log_type="DownstreamEnd", duration_ms=value))


def test_a_body_with_the_wrong_number_of_fields_is_refused():
    with pytest.raises(records.RecordError, match="expected 18 fields"):
        records.parse_record("inbound", NODE, body(log_type="DownstreamEnd") + "\x1fextra")
