"""The pure half of the demo's report (`shoal.mesh.edges`): Envoy stats in, edges and
their mTLS verdict out.

The stats documents are written the way Envoy 1.40 serves `/stats/prometheus` on a
sidecar's :15090 (default tag extraction: the cluster name cut at its first dot, the
response-code class as a tag); `REAL_EXPOSITION` is a verbatim excerpt of one. The
end-to-end tests read real ones through `pods/NAME:15090/proxy`. These pin what a user
would see change: an edge that carried plaintext, or whose server never saw the
caller's identity, is not called mTLS; a restarted sidecar is a disturbance; latency
comes from this run only.
"""

from __future__ import annotations

from shoal.cli import demo
from shoal.mesh import edges

TD = "spiffe://cluster.local/ns/bookstore/sa/"
RATINGS = "outbound|80||ratings.bookstore.svc.cluster.local"
TAG = 'envoy_cluster_name="outbound|80||ratings"'
PREFIX = "envoy_cluster_bookstore_svc_cluster_local_"
BOUNDS = ("0.5", "1", "5", "10", "25", "50", "100", "+Inf")

REAL_EXPOSITION = """\
# TYPE envoy_cluster_bookstore_svc_cluster_local_upstream_rq_total counter
envoy_cluster_bookstore_svc_cluster_local_upstream_rq_total{envoy_cluster_name="outbound|80||ratings"} 6
# TYPE envoy_cluster_bookstore_svc_cluster_local_upstream_rq_xx counter
envoy_cluster_bookstore_svc_cluster_local_upstream_rq_xx{envoy_response_code_class="2",envoy_cluster_name="outbound|80||ratings"} 3
envoy_cluster_bookstore_svc_cluster_local_upstream_rq_xx{envoy_response_code_class="4",envoy_cluster_name="outbound|80||ratings"} 3
# TYPE envoy_server_uptime gauge
envoy_server_uptime{} 5
# TYPE envoy_cluster_bookstore_svc_cluster_local_upstream_rq_time histogram
envoy_cluster_bookstore_svc_cluster_local_upstream_rq_time_bucket{envoy_cluster_name="outbound|80||ratings",le="0.5"} 5
envoy_cluster_bookstore_svc_cluster_local_upstream_rq_time_bucket{envoy_cluster_name="outbound|80||ratings",le="1"} 6
envoy_cluster_bookstore_svc_cluster_local_upstream_rq_time_bucket{envoy_cluster_name="outbound|80||ratings",le="+Inf"} 6
envoy_cluster_bookstore_svc_cluster_local_upstream_rq_time_sum{envoy_cluster_name="outbound|80||ratings"} 1.0476190476190476719153821250075
envoy_cluster_bookstore_svc_cluster_local_upstream_rq_time_count{envoy_cluster_name="outbound|80||ratings"} 6
"""


def exposition(total: int, handshakes: int, connections: int, fivexx: int = 0,
               buckets: dict[str, int] | None = None, uptime: int = 100) -> str:
    """A caller sidecar's /stats/prometheus with one outbound cluster (ratings)."""
    lines = [
        f"{PREFIX}upstream_rq_total{{{TAG}}} {total}",
        f"{PREFIX}upstream_rq_completed{{{TAG}}} {total}",
        f'{PREFIX}upstream_rq_xx{{envoy_response_code_class="2",{TAG}}} {total - fivexx}',
        f'{PREFIX}upstream_rq_xx{{envoy_response_code_class="5",{TAG}}} {fivexx}',
        f"{PREFIX}upstream_cx_total{{{TAG}}} {connections}",
        f"{PREFIX}upstream_cx_connect_fail{{{TAG}}} 0",
        f"{PREFIX}ssl_handshake{{{TAG}}} {handshakes}",
        "# TYPE envoy_server_uptime gauge",
        f"envoy_server_uptime{{}} {uptime}",
        f"# TYPE {PREFIX}upstream_rq_time histogram",
    ]
    running = 0
    for le in BOUNDS:
        running = max(running, (buckets or {}).get(le, running))
        lines.append(f'{PREFIX}upstream_rq_time_bucket{{{TAG},le="{le}"}} {running}')
    lines.append(f"{PREFIX}upstream_rq_time_count{{{TAG}}} {running}")
    return "\n".join(lines) + "\n"


def server_exposition(handshakes: int) -> str:
    return (f'envoy_listener_ssl_handshake{{envoy_listener_address="0.0.0.0_15006"}} {handshakes}\n'
            "envoy_server_uptime{} 100\n")


def pod(name: str, app: str, owner: str) -> dict:
    return {"metadata": {"name": name, "labels": {"app": app},
                         "ownerReferences": [{"kind": "ReplicaSet", "name": owner}]}}


def facts(before: str, after: str, server_handshakes: int = 5) -> list[edges.PodFacts]:
    reviews = edges.PodFacts(pod("reviews-v1-abc-x1", "reviews", "reviews-v1-abc"), "reviews-v1",
                             [TD + "reviews"], {RATINGS: [TD + "ratings"]},
                             edges.parse_prometheus(before), edges.parse_prometheus(after))
    ratings = edges.PodFacts(pod("ratings-def-y2", "ratings", "ratings-def"), "ratings",
                             [TD + "ratings"], {}, None,
                             edges.parse_prometheus(server_exposition(server_handshakes)))
    return [reviews, ratings]


SERVICES = [{"metadata": {"name": "ratings"}, "spec": {"selector": {"app": "ratings"}}}]
HOPS = [{"service": "ratings", "caller": TD + "reviews", "server": TD + "ratings"}]


def test_a_real_envoy_exposition_reads_back_under_envoy_stat_names():
    stats = edges.parse_prometheus(REAL_EXPOSITION)
    assert edges.service_clusters(stats, "bookstore", "cluster.local") == {RATINGS: "ratings"}
    assert stats.counter(f"cluster.{RATINGS}.upstream_rq_total") == 6
    assert stats.counter(f"cluster.{RATINGS}.upstream_rq_2xx") == 3
    assert stats.counter(f"cluster.{RATINGS}.upstream_rq_5xx") == 0
    assert stats.counter("server.uptime") == 5
    assert edges.samples(stats.histogram(f"cluster.{RATINGS}.upstream_rq_time")) == 6
    assert edges.service_clusters(stats, "other", "cluster.local") == {}


def test_an_edge_over_mtls_counts_only_the_measured_run():
    before = exposition(20, 2, 2, buckets={"1": 20})
    after = exposition(120, 3, 3, buckets={"1": 20, "5": 120})
    [edge] = edges.build_edges(facts(before, after), SERVICES, HOPS, "bookstore", "cluster.local")
    assert (edge["caller"], edge["service"], edge["requests"]) == ("reviews-v1", "ratings", 100)
    assert edge["success_rate"] == 100.0
    # the warm-up's 20 sub-millisecond samples are gone: all 100 fell between 1 and 5 ms
    assert edge["p50_ms"] == 3.0 and edge["p99_ms"] == 4.96
    assert edge["mtls"] is True
    assert edge["caller_identity"] == TD + "reviews" and edge["server_identities"] == [TD + "ratings"]


def test_plaintext_connections_or_an_unseen_caller_are_not_mtls():
    before = exposition(0, 0, 0)
    plaintext = exposition(100, 1, 4, buckets={"5": 100})  # 3 connections without TLS
    [edge] = edges.build_edges(facts(before, plaintext), SERVICES, HOPS, "bookstore", "cluster.local")
    assert edge["mtls"] is False
    tls = exposition(100, 4, 4, buckets={"5": 100})
    [edge] = edges.build_edges(facts(before, tls), SERVICES, [], "bookstore", "cluster.local")
    assert edge["mtls"] is False, "the server app never saw the caller's SPIFFE ID"
    [edge] = edges.build_edges(facts(before, tls, server_handshakes=0), SERVICES, HOPS,
                               "bookstore", "cluster.local")
    assert edge["mtls"] is False, "the server's sidecar made no TLS handshake"


def test_failures_and_restarted_sidecars_disturb_a_run():
    before = exposition(0, 0, 0)
    after = exposition(100, 2, 2, fivexx=7, buckets={"5": 100})
    found = facts(before, after)
    result = edges.build_edges(found, SERVICES, HOPS, "bookstore", "cluster.local")
    assert result[0]["success_rate"] == 93.0 and result[0]["errors_5xx"] == 7
    found[0].before = edges.parse_prometheus(exposition(0, 0, 0, uptime=500))  # Envoy restarted
    reasons = edges.disturbances(found, result, {"codes": {"200": 93, "502": 7}})
    assert any("restarted" in r for r in reasons)
    assert any("93%" in r for r in reasons) and any("502" in r for r in reasons)


def test_histograms_flushed_waits_for_every_completed_request():
    before = exposition(0, 0, 0)
    assert not edges.histograms_flushed(facts(before, exposition(100, 1, 1, buckets={"5": 60})),
                                        "bookstore", "cluster.local")
    assert edges.histograms_flushed(facts(before, exposition(100, 1, 1, buckets={"5": 100})),
                                    "bookstore", "cluster.local")


def test_quantiles_interpolate_as_histogram_quantile_does():
    buckets = {10.0: 0, 20.0: 50, 30.0: 100, float("inf"): 100}
    assert edges.quantile_ms(buckets, 0.5) == 20.0
    assert edges.quantile_ms(buckets, 0.75) == 25.0
    assert edges.quantile_ms({1.0: 0, float("inf"): 10}, 0.5) == 1.0  # +Inf: highest finite bound
    assert edges.quantile_ms({}, 0.5) is None
    assert edges.quantile_ms({1.0: 0, float("inf"): 0}, 0.5) is None


def test_identities_and_pins_come_from_the_sidecar_documents():
    certs = {"certificates": [{"ca_cert": [{"subject_alt_names": []}],
                               "cert_chain": [{"subject_alt_names": [{"uri": TD + "frontend"}]}]}]}
    assert edges.cert_identities(certs) == [TD + "frontend"]
    dump = {"configs": [{"cluster": {"name": RATINGS, "transport_socket_matches": [{"transport_socket": {
        "typed_config": {"common_tls_context": {"combined_validation_context": {"default_validation_context": {
            "match_typed_subject_alt_names": [{"san_type": "URI", "matcher": {"exact": TD + "ratings"}}]}}}}}}]}}]}
    assert edges.pinned_server_ids(dump) == {RATINGS: [TD + "ratings"]}


def test_a_rebuilt_image_changes_the_pod_template_and_an_unchanged_one_does_not():
    deploy = {"kind": "Deployment", "spec": {"template": {"spec": {"containers": [
        {"name": "frontend", "image": "bookstore/frontend:1.0"}]}}}}
    one = demo.pin_images(deploy, {"bookstore/frontend:1.0": "sha256:aaa"})
    again = demo.pin_images(deploy, {"bookstore/frontend:1.0": "sha256:aaa"})
    rebuilt = demo.pin_images(deploy, {"bookstore/frontend:1.0": "sha256:bbb"})
    assert one == again and one != rebuilt
    assert "annotations" not in deploy["spec"]["template"].get("metadata", {}), "input untouched"
