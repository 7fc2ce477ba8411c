"""The pure half of `shoal demo`: Envoy stats in, edges and their mTLS verdict out.

The documents are shaped like Envoy 1.40's admin answers (`/stats?format=json&
histogram_buckets=detailed`, `/certs`, `/config_dump?resource=dynamic_active_clusters`);
the end-to-end test reads the real ones. These pin what a user would see change: an
edge that carried plaintext, or whose server never saw the caller's identity, is not
called mTLS; a restarted sidecar is a disturbance; latency comes from this run only.
"""

from __future__ import annotations

import collections

from shoal.cli import demo

TD = "spiffe://cluster.local/ns/bookstore/sa/"
RATINGS = "outbound|80||ratings.bookstore.svc.cluster.local"


def stats(counters: dict[str, int], buckets: list[tuple[float, float, int]] = ()) -> dict:
    entries = [{"name": k, "value": v} for k, v in counters.items()]
    entries.append({"histograms": {"supported_percentiles": [50, 99], "details": [
        {"name": f"cluster.{RATINGS}.upstream_rq_time",
         "totals": [{"lower_bound": lb, "width": w, "count": c} for lb, w, c in buckets]}]}})
    return {"stats": entries}


def caller_counters(total: int, handshakes: int, connections: int, fivexx: int = 0) -> dict[str, int]:
    c = f"cluster.{RATINGS}."
    return {c + "upstream_rq_total": total, c + "upstream_rq_completed": total,
            c + "upstream_rq_2xx": total - fivexx, c + "upstream_rq_5xx": fivexx,
            c + "upstream_cx_total": connections, c + "upstream_cx_connect_fail": 0,
            c + "ssl.handshake": handshakes, "server.uptime": 100}


def pod(name: str, app: str, owner: str) -> dict:
    return {"metadata": {"name": name, "labels": {"app": app},
                         "ownerReferences": [{"kind": "ReplicaSet", "name": owner}]}}


def facts(before: dict, after: dict, server_handshakes: int = 5) -> list[demo.PodFacts]:
    reviews = demo.PodFacts(pod("reviews-v1-abc-x1", "reviews", "reviews-v1-abc"), "reviews-v1", "ns1",
                            [TD + "reviews"], {RATINGS: [TD + "ratings"]},
                            demo.parse_stats(before), demo.parse_stats(after))
    ratings_after = demo.parse_stats({"stats": [
        {"name": "listener.0.0.0.0_15006.ssl.handshake", "value": server_handshakes}]})
    ratings = demo.PodFacts(pod("ratings-def-y2", "ratings", "ratings-def"), "ratings", "ns2",
                            [TD + "ratings"], {}, None, ratings_after)
    return [reviews, ratings]


SERVICES = [{"metadata": {"name": "ratings"}, "spec": {"selector": {"app": "ratings"}}}]
HOPS = [{"service": "ratings", "caller": TD + "reviews", "server": TD + "ratings"}]


def test_an_edge_over_mtls_counts_only_the_measured_run():
    before = stats(caller_counters(20, 2, 2), [(1.0, 0.1, 20)])
    after = stats(caller_counters(120, 3, 3), [(1.0, 0.1, 20), (2.0, 0.1, 50), (3.0, 0.1, 50)])
    [edge] = demo.build_edges(facts(before, after), SERVICES, HOPS, "bookstore", "cluster.local")
    assert (edge["caller"], edge["service"], edge["requests"]) == ("reviews-v1", "ratings", 100)
    assert edge["success_rate"] == 100.0
    assert 2.0 <= edge["p50_ms"] <= 3.1 and edge["p99_ms"] <= 3.1  # the warm-up's 1 ms samples are gone
    assert edge["mtls"] is True
    assert edge["caller_identity"] == TD + "reviews" and edge["server_identities"] == [TD + "ratings"]


def test_plaintext_connections_or_an_unseen_caller_are_not_mtls():
    before = stats(caller_counters(0, 0, 0))
    plaintext = stats(caller_counters(100, 1, 4), [(2.0, 0.1, 100)])  # 3 connections without TLS
    [edge] = demo.build_edges(facts(before, plaintext), SERVICES, HOPS, "bookstore", "cluster.local")
    assert edge["mtls"] is False
    tls = stats(caller_counters(100, 4, 4), [(2.0, 0.1, 100)])
    [edge] = demo.build_edges(facts(before, tls), SERVICES, [], "bookstore", "cluster.local")
    assert edge["mtls"] is False, "the server app never saw the caller's SPIFFE ID"
    [edge] = demo.build_edges(facts(before, tls, server_handshakes=0), SERVICES, HOPS,
                              "bookstore", "cluster.local")
    assert edge["mtls"] is False, "the server's sidecar made no TLS handshake"


def test_failures_and_restarted_sidecars_disturb_a_run():
    before = stats(caller_counters(0, 0, 0))
    after = stats(caller_counters(100, 2, 2, fivexx=7), [(2.0, 0.1, 100)])
    found = facts(before, after)
    edges = demo.build_edges(found, SERVICES, HOPS, "bookstore", "cluster.local")
    assert edges[0]["success_rate"] == 93.0
    found[0].before.counters["server.uptime"] = 500  # uptime went down: Envoy restarted
    reasons = demo.disturbances(found, edges, {"codes": {"200": 93, "502": 7}})
    assert any("restarted" in r for r in reasons)
    assert any("93%" in r for r in reasons) and any("502" in r for r in reasons)


def test_quantiles_interpolate_inside_detailed_buckets():
    buckets = collections.Counter({(10.0, 1.0): 50, (20.0, 1.0): 50})
    assert demo.quantile_ms(buckets, 0.5) == 11.0
    assert 20.0 < demo.quantile_ms(buckets, 0.99) <= 21.0
    assert demo.quantile_ms(collections.Counter(), 0.5) is None


def test_identities_and_pins_come_from_the_sidecar_documents():
    certs = {"certificates": [{"ca_cert": [{"subject_alt_names": []}],
                               "cert_chain": [{"subject_alt_names": [{"uri": TD + "frontend"}]}]}]}
    assert demo.cert_identities(certs) == [TD + "frontend"]
    dump = {"configs": [{"cluster": {"name": RATINGS, "transport_socket_matches": [{"transport_socket": {
        "typed_config": {"common_tls_context": {"combined_validation_context": {"default_validation_context": {
            "match_typed_subject_alt_names": [{"san_type": "URI", "matcher": {"exact": TD + "ratings"}}]}}}}}}]}}]}
    assert demo.pinned_server_ids(dump) == {RATINGS: [TD + "ratings"]}


def test_a_rebuilt_image_changes_the_pod_template_and_an_unchanged_one_does_not():
    deploy = {"kind": "Deployment", "spec": {"template": {"spec": {"containers": [
        {"name": "frontend", "image": "bookstore/frontend:1.0"}]}}}}
    one = demo.pin_images(deploy, {"bookstore/frontend:1.0": "sha256:aaa"})
    again = demo.pin_images(deploy, {"bookstore/frontend:1.0": "sha256:aaa"})
    rebuilt = demo.pin_images(deploy, {"bookstore/frontend:1.0": "sha256:bbb"})
    assert one == again and one != rebuilt
    assert "annotations" not in deploy["spec"]["template"].get("metadata", {}), "input untouched"
