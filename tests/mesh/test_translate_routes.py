"""Pure translation of Istio VirtualServices into Envoy routes and listener chains.

Every assertion reads the translated resources back from their typed protos
(`protos.to_dict`), so each test also shows that the output parses as Envoy's own
messages. The cluster state is bookinfo-shaped: reviews (v1, v2, v3 pods), ratings,
a two-port service, an opaque TCP service and a TLS service.
"""

from __future__ import annotations

import pytest

from shoal.mesh import snapshot
from shoal.mesh.errors import TranslateError
from shoal.mesh.meshconfig import MeshConfig
from shoal.mesh.source import PODS, ClusterState
from shoal.mesh.translate import Outbound, model, protos, routes, translate, virtualservice
from tests.mesh.fixtures import pod, service

MESH = MeshConfig()
REVIEWS = "reviews.default.svc.cluster.local"
RATINGS = "ratings.default.svc.cluster.local"
FAULT = "envoy.filters.http.fault"
CORS = "envoy.filters.http.cors"


def vs(name, spec, ns="default", created="2025-01-01T00:00:00Z"):
    return ("virtualservices.networking.istio.io", {
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": name, "namespace": ns, "creationTimestamp": created},
        "spec": spec})


def state(*extra) -> ClusterState:
    return ClusterState.of([
        pod("client", "10.0.0.2", {"app": "productpage", "version": "v1"}, sa="productpage"),
        pod("tester", "10.0.0.3", {"app": "tester", "version": "v1"}),
        pod("other", "10.0.1.2", {"app": "other"}, ns="other"),
        pod("reviews-v1", "10.0.0.11", {"app": "reviews", "version": "v1"}, ports=[("http", 9080)]),
        pod("reviews-v2", "10.0.0.12", {"app": "reviews", "version": "v2"}, ports=[("http", 9080)]),
        pod("ratings", "10.0.0.13", {"app": "ratings"}, ports=[("http", 9080)]),
        service("reviews", "10.96.0.11", {"app": "reviews"}, [{"name": "http", "port": 9080}]),
        service("ratings", "10.96.0.12", {"app": "ratings"}, [{"name": "http", "port": 9080}]),
        service("multi", "10.96.0.13", {"app": "multi"}, [
            {"name": "http", "port": 80}, {"name": "http-admin", "port": 8080}]),
        service("db", "10.96.0.14", {"app": "db"}, [{"name": "tcp-db", "port": 5432}]),
        service("secure", "10.96.0.15", {"app": "secure"}, [{"name": "https", "port": 443}]),
        *extra,
    ])


def resources(st, pod_name="client", ns="default", shared=None):
    identity = model.proxy_identity(st.get(PODS, ns, pod_name), st)
    return translate(st, identity, MESH, shared)


def vhost_routes(st, host=REVIEWS, port=9080, pod_name="client", ns="default") -> list[dict]:
    table = protos.to_dict(resources(st, pod_name, ns).by_type()[protos.ROUTE][str(port)])
    return next(v for v in table["virtual_hosts"] if v["name"] == f"{host}:{port}")["routes"]


def only_route(spec, **kw) -> dict:
    found = vhost_routes(state(vs("reviews", {"hosts": ["reviews"], **spec})), **kw)
    assert len(found) == 1, found
    return found[0]


def listener(st, pod_name="client", ns="default") -> dict:
    return protos.to_dict(resources(st, pod_name, ns).by_type()[protos.LISTENER]["virtualOutbound"])


def to_reviews(subset="", **extra):
    dest = {"host": "reviews"}
    if subset:
        dest["subset"] = subset
    return {"destination": dest, **extra}


BOOKINFO_REVIEWS = {  # samples/bookinfo/networking/virtual-service-reviews-test-v2.yaml
    "hosts": ["reviews"],
    "http": [
        {"match": [{"headers": {"end-user": {"exact": "jason"}}}],
         "route": [{"destination": {"host": "reviews", "subset": "v2"}}]},
        {"route": [{"destination": {"host": "reviews", "subset": "v1"}}]},
    ],
}


# -- which VirtualServices apply ----------------------------------------------------

def test_without_virtual_service_a_service_gets_one_default_route_with_istio_retries():
    (route,) = vhost_routes(state())
    assert route["match"] == {"prefix": "/"}
    assert route["route"]["cluster"] == f"outbound|9080||{REVIEWS}"
    assert route["route"]["timeout"] == "0s"
    assert route["route"]["retry_policy"]["num_retries"] == 2


def test_bookinfo_header_routing_first_match_wins_and_names_subset_clusters():
    first, second = vhost_routes(state(vs("reviews", BOOKINFO_REVIEWS)))
    assert first["match"]["headers"] == [
        {"name": "end-user", "string_match": {"exact": "jason"}}]
    assert first["route"]["cluster"] == f"outbound|9080|v2|{REVIEWS}"
    assert second["match"] == {"prefix": "/"}
    assert second["route"]["cluster"] == f"outbound|9080|v1|{REVIEWS}"
    assert second["metadata"]["filter_metadata"]["istio"]["config"] == \
        "/apis/networking.istio.io/v1/namespaces/default/virtual-service/reviews"


def test_short_host_resolves_in_the_virtual_service_namespace_and_fqdns_apply_anywhere():
    # "reviews" written in namespace other means reviews.other: no effect on default/reviews
    st = state(vs("r", {"hosts": ["reviews"], "http": [{"route": [to_reviews("v1")]}]}, ns="other"))
    assert vhost_routes(st)[0]["name"] == "default"
    st = state(vs("r", {"hosts": [REVIEWS], "http": [
        {"route": [{"destination": {"host": REVIEWS, "subset": "v3"}}]}]}, ns="other"))
    assert vhost_routes(st)[0]["route"]["cluster"] == f"outbound|9080|v3|{REVIEWS}"
    # the client in namespace other sees it too; its virtual host lacks the short name
    table = protos.to_dict(resources(st, "other", "other").by_type()[protos.ROUTE]["9080"])
    vhost = next(v for v in table["virtual_hosts"] if v["name"] == f"{REVIEWS}:9080")
    assert "reviews" not in vhost["domains"] and "reviews.default" in vhost["domains"]
    assert vhost["routes"][0]["route"]["cluster"] == f"outbound|9080|v3|{REVIEWS}"


@pytest.mark.parametrize("export_to, seen_by_own, seen_by_other", [
    (None, True, True), (["*"], True, True), (["."], True, False), (["~"], False, False),
    (["other"], False, True), ([".", "third"], True, False)])
def test_export_to_limits_which_namespaces_see_the_virtual_service(export_to, seen_by_own,
                                                                   seen_by_other):
    spec = {"hosts": ["reviews"], "http": [{"route": [to_reviews("v2")]}]}
    if export_to is not None:
        spec["exportTo"] = export_to
    st = state(vs("reviews", spec))
    other = vhost_routes(st, pod_name="other", ns="other")[0]
    assert (other["route"]["cluster"] == f"outbound|9080|v2|{REVIEWS}") == seen_by_other
    own = vhost_routes(st)[0]
    assert (own["route"]["cluster"] == f"outbound|9080|v2|{REVIEWS}") == seen_by_own


def test_gateways_without_mesh_do_not_apply_to_sidecars():
    rule = {"route": [to_reviews("v2")]}
    st = state(vs("gw", {"hosts": ["reviews"], "gateways": ["bookinfo-gateway"], "http": [rule]}))
    assert vhost_routes(st)[0]["name"] == "default"
    st = state(vs("both", {"hosts": ["reviews"], "gateways": ["bookinfo-gateway", "mesh"], "http": [
        {"match": [{"gateways": ["bookinfo-gateway"], "uri": {"prefix": "/gw"}}],
         "route": [to_reviews("v3")]}, rule]}))
    (only,) = vhost_routes(st)  # the gateway-only match is skipped
    assert only["route"]["cluster"] == f"outbound|9080|v2|{REVIEWS}"


def test_wildcard_hosts_apply_and_an_exact_host_wins():
    wildcard = vs("all", {"hosts": ["*.default.svc.cluster.local"], "http": [
        {"route": [{"destination": {"host": RATINGS}}], "timeout": "3s"}]})
    routes_ = vhost_routes(state(wildcard), host=RATINGS)
    assert routes_[0]["route"]["timeout"] == "3s"
    exact = vs("reviews", {"hosts": ["reviews"], "http": [{"route": [to_reviews("v1")]}]})
    assert vhost_routes(state(wildcard, exact))[0]["route"]["cluster"] == f"outbound|9080|v1|{REVIEWS}"
    assert vhost_routes(state(wildcard, exact), host=RATINGS)[0]["route"]["timeout"] == "3s"


def test_virtual_services_for_one_host_merge_in_creation_order():
    later = vs("b-later", {"hosts": ["reviews"], "http": [
        {"match": [{"uri": {"prefix": "/late"}}], "route": [to_reviews("v3")]}]},
        created="2025-02-01T00:00:00Z")
    earlier = vs("z-earlier", {"hosts": ["reviews"], "http": [
        {"match": [{"uri": {"prefix": "/early"}}], "route": [to_reviews("v1")]}]},
        created="2025-01-01T00:00:00Z")
    found = vhost_routes(state(later, earlier))
    assert [r["match"]["prefix"] for r in found] == ["/early", "/late"]
    # a catch-all in the earlier object hides everything after it (Envoy would never get there)
    catch_all = vs("a-first", {"hosts": ["reviews"], "http": [{"route": [to_reviews("v2")]}]},
                   created="2024-01-01T00:00:00Z")
    found = vhost_routes(state(later, earlier, catch_all))
    assert [r["route"]["cluster"] for r in found] == [f"outbound|9080|v2|{REVIEWS}"]


def test_delegate_rules_replace_the_root_rule_with_merged_matches():
    root = vs("root", {"hosts": ["reviews"], "http": [
        {"name": "api", "match": [{"uri": {"prefix": "/api"}, "headers": {"x-team": {"exact": "a"}}}],
         "timeout": "2s", "delegate": {"name": "team-a", "namespace": "team"}},
        {"route": [to_reviews("v1")]}]})
    delegate = vs("team-a", {"http": [
        {"name": "v2", "match": [{"uri": {"prefix": "/api/v2"}}],
         "route": [{"destination": {"host": "reviews.default.svc.cluster.local", "subset": "v2"}}]},
        {"name": "bad", "match": [{"uri": {"prefix": "/other"}}], "route": [to_reviews("v3")]},
        {"name": "rest", "route": [{"destination": {"host": "ratings"}}]},
    ]}, ns="team")
    found = vhost_routes(state(root, delegate))
    assert [r.get("name") for r in found] == ["api-v2", "api-rest", None]
    v2, rest, fallback = found
    assert v2["match"]["prefix"] == "/api/v2"
    assert v2["match"]["headers"] == [{"name": "x-team", "string_match": {"exact": "a"}}]
    assert v2["route"]["timeout"] == "2s"  # inherited from the root rule
    assert v2["route"]["cluster"] == f"outbound|9080|v2|{REVIEWS}"
    # the delegate's short name resolves in the delegate's namespace
    assert rest["route"]["cluster"] == "outbound|9080||ratings.team.svc.cluster.local"
    assert rest["match"]["prefix"] == "/api"
    assert fallback["route"]["cluster"] == f"outbound|9080|v1|{REVIEWS}"
    # a delegate not exported to the root's namespace is ignored
    hidden = vs("team-a", {"exportTo": ["."], "http": delegate[1]["spec"]["http"]}, ns="team")
    assert len(vhost_routes(state(root, hidden))) == 1


# -- match -----------------------------------------------------------------------------

def test_match_fields_translate_to_envoy_route_match():
    route = only_route({"http": [{"match": [{
        "uri": {"regex": "/books/[0-9]+"}, "ignoreUriCase": True,
        "method": {"exact": "GET"}, "authority": {"prefix": "reviews"}, "scheme": {"exact": "http"},
        "headers": {"x-b": {"regex": "a.*"}, "x-a": {}, "x-c": {"prefix": "p"}},
        "withoutHeaders": {"x-debug": {"exact": "1"}, "x-trace": {}},
        "queryParams": {"page": {"exact": "2"}, "q": {"regex": "^x"}, "flag": {}},
    }], "route": [to_reviews()]}]})
    match = route["match"]
    assert match["safe_regex"] == {"regex": "/books/[0-9]+"}
    assert match["case_sensitive"] is False
    assert match["headers"] == [
        {"name": "x-a", "present_match": True},
        {"name": "x-b", "string_match": {"safe_regex": {"regex": "a.*"}}},
        {"name": "x-c", "string_match": {"prefix": "p"}},
        {"name": "x-debug", "string_match": {"exact": "1"}, "invert_match": True,
         "treat_missing_header_as_empty": True},
        {"name": "x-trace", "present_match": True, "invert_match": True},
        {"name": ":method", "string_match": {"exact": "GET"}},
        {"name": ":authority", "string_match": {"prefix": "reviews"}},
        {"name": ":scheme", "string_match": {"exact": "http"}},
    ]
    assert match["query_parameters"] == [
        {"name": "flag", "present_match": True},
        {"name": "page", "string_match": {"exact": "2"}},
        {"name": "q", "string_match": {"safe_regex": {"regex": "^x"}}},
    ]
    assert only_route({"http": [{"match": [{"uri": {"exact": "/a"}}], "route": [to_reviews()]}]})[
        "match"] == {"path": "/a", "case_sensitive": True}


def test_several_matches_give_one_route_each_and_port_matches_pick_the_table():
    spec = {"hosts": ["multi"], "http": [
        {"name": "r", "match": [{"name": "admin", "port": 8080, "uri": {"prefix": "/"}},
                                {"name": "x", "uri": {"prefix": "/x"}}],
         "route": [{"destination": {"host": "multi"}}]}]}
    st = state(vs("multi", spec))
    on_80 = vhost_routes(st, host="multi.default.svc.cluster.local", port=80)
    assert [r["name"] for r in on_80] == ["r.x"]
    # a multi-port destination without a port takes the listener's port
    assert on_80[0]["route"]["cluster"] == "outbound|80||multi.default.svc.cluster.local"
    on_8080 = vhost_routes(st, host="multi.default.svc.cluster.local", port=8080)
    assert [r["name"] for r in on_8080] == ["r.admin"]
    assert on_8080[0]["route"]["cluster"] == "outbound|8080||multi.default.svc.cluster.local"


def test_source_labels_and_namespace_make_routes_depend_on_the_client():
    st = state(vs("reviews", {"hosts": ["reviews"], "exportTo": ["*"], "http": [
        {"match": [{"sourceLabels": {"app": "tester"}}], "route": [to_reviews("v3")]},
        {"match": [{"sourceNamespace": "other"}], "route": [to_reviews("v2")]},
        {"route": [to_reviews("v1")]}]}))
    def cluster_for(pod_name, ns="default"):
        return vhost_routes(st, pod_name=pod_name, ns=ns)[0]["route"]["cluster"]
    assert cluster_for("tester") == f"outbound|9080|v3|{REVIEWS}"
    assert cluster_for("client") == f"outbound|9080|v1|{REVIEWS}"
    assert cluster_for("other", "other") == f"outbound|9080|v2|{REVIEWS}"
    # memoized per (namespace, labels that matter): `version` is named by no sourceLabels,
    # so client and a second productpage replica share the very same route objects
    st2 = ClusterState.of([*((k, o) for k, objs in st.objects.items() for o in objs.values()),
                           pod("client-2", "10.0.0.9", {"app": "productpage", "version": "v9"})])
    shared = Outbound(st2, MESH)
    one, two = resources(st2, "client", shared=shared), resources(st2, "client-2", shared=shared)
    assert one.routes is two.routes
    assert resources(st2, "tester", shared=shared).routes is not one.routes
    assert shared.client(model.proxy_identity(st2.get(PODS, "default", "client"), st2)).labels == (
        ("app", "productpage"),)


# -- actions -----------------------------------------------------------------------------

def test_weights_become_weighted_clusters_and_zero_weights_are_left_out():
    route = only_route({"http": [{"route": [
        to_reviews("v1", weight=80), to_reviews("v2", weight=20), to_reviews("v3", weight=0)]}]})
    assert route["route"]["weighted_clusters"] == {"clusters": [
        {"name": f"outbound|9080|v1|{REVIEWS}", "weight": 80},
        {"name": f"outbound|9080|v2|{REVIEWS}", "weight": 20}]}
    route = only_route({"http": [{"route": [
        {"destination": {"host": "ratings", "port": {"number": 9080}}, "weight": 100}]}]})
    assert route["route"]["cluster"] == f"outbound|9080||{RATINGS}"


def test_timeout_defaults_to_none_and_accepts_istio_durations():
    assert only_route({"http": [{"route": [to_reviews()]}]})["route"]["timeout"] == "0s"
    assert only_route({"http": [{"route": [to_reviews()], "timeout": "0.5s"}]})["route"]["timeout"] == "0.500s"
    assert only_route({"http": [{"route": [to_reviews()], "timeout": "1m"}]})["route"]["timeout"] == "60s"
    assert routes.duration("1h30m", "t") == "5400s" and routes.duration("250ms", "t") == "0.25s"
    with pytest.raises(TranslateError, match=r"spec.http\[0\].timeout: 'soon'"):
        vhost_routes(state(vs("reviews", {"hosts": ["reviews"], "http": [
            {"route": [to_reviews()], "timeout": "soon"}]})))


def test_retries_default_disable_and_custom():
    default = only_route({"http": [{"route": [to_reviews()]}]})["route"]["retry_policy"]
    assert default == {
        "retry_on": "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
        "num_retries": 2, "host_selection_retry_max_attempts": "5",
        "retry_host_predicate": [{
            "name": "envoy.retry_host_predicates.previous_hosts",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.retry.host."
                                      "previous_hosts.v3.PreviousHostsPredicate"}}]}
    off = only_route({"http": [{"route": [to_reviews()], "retries": {"attempts": 0}}]})
    assert "retry_policy" not in off["route"]
    custom = only_route({"http": [{"route": [to_reviews()], "retries": {
        "attempts": 5, "perTryTimeout": "2s", "retryOn": "gateway-error,connect-failure,503",
        "retryRemoteLocalities": True}}]})["route"]["retry_policy"]
    assert custom["num_retries"] == 5
    assert custom["per_try_timeout"] == "2s"
    assert custom["retry_on"] == "gateway-error,connect-failure,retriable-status-codes"
    assert custom["retriable_status_codes"] == [503]
    assert custom["retry_priority"]["name"] == "envoy.retry_priorities.previous_priorities"
    assert custom["retry_priority"]["typed_config"]["update_frequency"] == 2


def test_redirect_direct_response_and_rewrite():
    redirect = only_route({"http": [{"redirect": {
        "uri": "/v1/bookRatings", "authority": "newratings.default.svc.cluster.local",
        "redirectCode": 308, "port": 8443, "scheme": "https"}}]})
    assert redirect["redirect"] == {
        "path_redirect": "/v1/bookRatings", "host_redirect": "newratings.default.svc.cluster.local",
        "response_code": "PERMANENT_REDIRECT", "port_redirect": 8443, "scheme_redirect": "https"}
    assert "route" not in redirect
    assert only_route({"http": [{"redirect": {"uri": "/x"}}]})["redirect"] == {"path_redirect": "/x"}
    direct = only_route({"http": [{"directResponse": {"status": 503, "body": {"string": "down"}}}]})
    assert direct["direct_response"] == {"status": 503, "body": {"inline_string": "down"}}
    rewrite = only_route({"http": [{"route": [to_reviews()], "rewrite": {
        "uri": "/v1/bookRatings", "authority": "ratings.internal"}}]})["route"]
    assert rewrite["prefix_rewrite"] == "/v1/bookRatings"
    assert rewrite["host_rewrite_literal"] == "ratings.internal"
    regex = only_route({"http": [{"route": [to_reviews()], "rewrite": {
        "uriRegexRewrite": {"match": "^/service/([^/]+)(/.*)$", "rewrite": "\\2/instance/\\1"}}}]})
    assert regex["route"]["regex_rewrite"] == {
        "pattern": {"regex": "^/service/([^/]+)(/.*)$"}, "substitution": "\\2/instance/\\1"}


def test_fault_injection_is_per_route_config_of_the_fault_filter():
    route = only_route({"http": [{"route": [to_reviews()], "fault": {
        "delay": {"fixedDelay": "7s", "percentage": {"value": 12.5}},
        "abort": {"httpStatus": 500, "percentage": {"value": 0.1}}}}]})
    fault = route["typed_per_filter_config"][FAULT]
    assert fault["@type"] == "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"
    assert fault["delay"] == {"fixed_delay": "7s",
                              "percentage": {"numerator": 125000, "denominator": "MILLION"}}
    assert fault["abort"] == {"http_status": 500,
                              "percentage": {"numerator": 1000, "denominator": "MILLION"}}
    grpc = only_route({"http": [{"route": [to_reviews()], "fault": {
        "abort": {"grpcStatus": "UNAVAILABLE", "percentage": {"value": 100}}}}]})
    assert grpc["typed_per_filter_config"][FAULT]["abort"]["grpc_status"] == 14
    # every outbound HTTP connection manager carries cors and fault before the router
    chains = {c["name"]: c for c in listener(state())["filter_chains"]}
    hcm = chains["10.96.0.11_9080"]["filters"][0]["typed_config"]
    assert [f["name"] for f in hcm["http_filters"]] == [CORS, FAULT, "envoy.filters.http.router"]


def test_mirror_and_mirrors_become_request_mirror_policies():
    route = only_route({"http": [{"route": [to_reviews("v1")],
                                  "mirror": {"host": "reviews", "subset": "v2"},
                                  "mirrorPercentage": {"value": 50.0},
                                  "mirrors": [{"destination": {"host": "ratings"}},
                                              {"destination": {"host": "ratings"},
                                               "percentage": {"value": 0}}]}]})
    assert route["route"]["request_mirror_policies"] == [
        {"cluster": f"outbound|9080|v2|{REVIEWS}", "trace_sampled": False,
         "runtime_fraction": {"default_value": {"numerator": 500000, "denominator": "MILLION"}}},
        {"cluster": f"outbound|9080||{RATINGS}", "trace_sampled": False,
         "runtime_fraction": {"default_value": {"numerator": 100}}},  # HUNDRED is the default
    ]
    off = only_route({"http": [{"route": [to_reviews()], "mirror": {"host": "ratings"},
                                "mirrorPercentage": {"value": 0}}]})
    assert "request_mirror_policies" not in off["route"]


def test_headers_request_and_response_set_add_remove():
    route = only_route({"http": [{
        "headers": {"request": {"set": {"x-env": "prod", ":authority": "reviews.internal"},
                                "add": {"x-trace": "1"}, "remove": ["x-secret"]},
                    "response": {"set": {"cache-control": "no-store"}, "remove": ["server"]}},
        "route": [to_reviews("v1", weight=50, headers={"request": {"set": {"x-v": "1"}}}),
                  to_reviews("v2", weight=50)]}]})
    assert route["request_headers_to_add"] == [
        {"header": {"key": "x-env", "value": "prod"}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"},
        {"header": {"key": "x-trace", "value": "1"}}]  # APPEND_IF_EXISTS_OR_ADD is the default
    assert route["request_headers_to_remove"] == ["x-secret"]
    assert route["response_headers_to_add"] == [{"header": {"key": "cache-control", "value": "no-store"},
                                                 "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}]
    assert route["response_headers_to_remove"] == ["server"]
    assert route["route"]["host_rewrite_literal"] == "reviews.internal"
    v1 = route["route"]["weighted_clusters"]["clusters"][0]
    assert v1["request_headers_to_add"] == [{"header": {"key": "x-v", "value": "1"},
                                             "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}]


def test_cors_policy_is_per_route_config_of_the_cors_filter():
    route = only_route({"http": [{"route": [to_reviews()], "corsPolicy": {
        "allowOrigins": [{"exact": "https://example.com"}, {"regex": "https://.*\\.example\\.org"}],
        "allowMethods": ["POST", "GET"], "allowHeaders": ["X-Foo-Bar"], "exposeHeaders": ["X-Id"],
        "maxAge": "24h", "allowCredentials": False}}]})
    cors = route["typed_per_filter_config"][CORS]
    assert cors["@type"] == "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy"
    assert cors["allow_origin_string_match"] == [
        {"exact": "https://example.com"}, {"safe_regex": {"regex": "https://.*\\.example\\.org"}}]
    assert (cors["allow_methods"], cors["allow_headers"], cors["expose_headers"]) == (
        "POST,GET", "X-Foo-Bar", "X-Id")
    assert cors["max_age"] == "86400" and cors["allow_credentials"] is False
    assert cors["filter_enabled"]["default_value"]["numerator"] == 100


def test_destination_rule_hash_policies_reach_routes_and_keep_retries_on_the_hashed_host():
    by_user = [{"header": {"header_name": "end-user"}}]

    def hash_policies(svc, port, subset):  # what DestinationRule translation answers
        return by_user if (svc.name, port, subset) in (("reviews", 9080, "v1"),
                                                        ("reviews", 9080, "")) else []
    st = state(vs("reviews", BOOKINFO_REVIEWS))
    client = virtualservice.ClientKey("default")
    index = virtualservice.VirtualServiceIndex(st, MESH)
    services = model.mesh_services(st, MESH)
    tables = {t["name"]: t for t in routes.build_outbound_routes(services, MESH, index, client,
                                                                 hash_policies)}
    vhosts = {v["name"]: v for v in tables["9080"]["virtual_hosts"]}
    jason, rest = vhosts[f"{REVIEWS}:9080"]["routes"]
    assert "hash_policy" not in jason["route"]  # subset v2 has no consistent hash
    assert "retry_host_predicate" in jason["route"]["retry_policy"]
    assert rest["route"]["hash_policy"] == by_user
    assert "retry_host_predicate" not in rest["route"]["retry_policy"]
    assert rest["route"]["retry_policy"]["num_retries"] == 2
    # a service without VirtualService: its default route hashes too
    (plain,) = vhosts[f"{RATINGS}:9080"]["routes"]
    assert "hash_policy" not in plain["route"]
    st = state()
    tables = {t["name"]: t for t in routes.build_outbound_routes(
        model.mesh_services(st, MESH), MESH, virtualservice.VirtualServiceIndex(st, MESH), client,
        hash_policies)}
    (default,) = next(v for v in tables["9080"]["virtual_hosts"]
                      if v["name"] == f"{REVIEWS}:9080")["routes"]
    assert default["route"]["hash_policy"] == by_user
    for table in tables.values():
        protos.to_proto(protos.ROUTE, table)  # Envoy-shaped


# -- tcp and tls ---------------------------------------------------------------------

def test_tcp_routes_pick_weighted_destinations_in_the_listener_chain():
    st = state(vs("db", {"hosts": ["db"], "tcp": [
        {"match": [{"port": 5432, "destinationSubnets": ["10.200.0.0/16"]}],
         "route": [{"destination": {"host": "db", "subset": "replica"}}]},
        {"match": [{"port": 5432, "sourceLabels": {"app": "productpage"}}],
         "route": [{"destination": {"host": "db", "subset": "v1"}, "weight": 70},
                   {"destination": {"host": "db", "subset": "v2"}, "weight": 30}]}]}))
    chains = {c["name"]: c for c in listener(st)["filter_chains"]}
    proxy = chains["10.96.0.14_5432"]["filters"][0]["typed_config"]
    assert "cluster" not in proxy
    assert proxy["weighted_clusters"]["clusters"] == [
        {"name": "outbound|5432|v1|db.default.svc.cluster.local", "weight": 70},
        {"name": "outbound|5432|v2|db.default.svc.cluster.local", "weight": 30}]
    # another client does not match the sourceLabels: the service's own cluster
    chains = {c["name"]: c for c in listener(st, "tester")["filter_chains"]}
    assert chains["10.96.0.14_5432"]["filters"][0]["typed_config"]["cluster"] == \
        "outbound|5432||db.default.svc.cluster.local"


def test_tls_routes_add_sni_chains_and_a_tls_inspector_on_those_ports_only():
    assert [f["name"] for f in listener(state())["listener_filters"]] == [
        "envoy.filters.listener.original_dst"]
    st = state(vs("secure", {"hosts": ["secure"], "tls": [
        {"match": [{"port": 443, "sniHosts": ["login.example.com"]}],
         "route": [{"destination": {"host": "secure", "subset": "login"}}]},
        {"match": [{"sniHosts": ["*.example.com"]}],
         "route": [{"destination": {"host": "ratings", "port": {"number": 9080}}}]}]}))
    out = listener(st)
    chains = {c["name"]: c for c in out["filter_chains"]}
    login, wildcard = chains["10.96.0.15_443_tls0"], chains["10.96.0.15_443_tls1"]
    assert login["filter_chain_match"]["server_names"] == ["login.example.com"]
    assert login["filter_chain_match"]["transport_protocol"] == "tls"
    assert login["filters"][0]["typed_config"]["cluster"] == "outbound|443|login|secure.default.svc.cluster.local"
    assert wildcard["filter_chain_match"]["server_names"] == ["*.example.com"]
    assert wildcard["filters"][0]["typed_config"]["cluster"] == f"outbound|9080||{RATINGS}"
    assert chains["10.96.0.15_443"]["filters"][0]["typed_config"]["cluster"] == \
        "outbound|443||secure.default.svc.cluster.local"
    inspector = out["listener_filters"][1]
    assert inspector["name"] == "envoy.filters.listener.tls_inspector"
    assert inspector["filter_disabled"] == {"not_match": {"destination_port_range": {
        "start": 443, "end": 444}}}


# -- economy ---------------------------------------------------------------------------

def test_translation_is_deterministic_and_a_change_reaches_only_clients_it_concerns():
    reviews_private = vs("reviews", {"hosts": ["reviews"], "exportTo": ["."], "http": [
        {"route": [to_reviews("v1")]}]})
    before = state(reviews_private)
    after = state(vs("reviews", {"hosts": ["reviews"], "exportTo": ["."], "http": [
        {"route": [to_reviews("v1", weight=90), to_reviews("v2", weight=10)]}]}))

    def versions(st, pod_name, ns):
        snap = snapshot.Snapshot.build(resources(st, pod_name, ns))
        return {t: snap.version(t) for t in (protos.CLUSTER, protos.LISTENER, protos.ROUTE)}
    assert versions(before, "client", "default") == versions(state(reviews_private), "client", "default")
    assert versions(before, "client", "default")[protos.ROUTE] != versions(after, "client", "default")[protos.ROUTE]
    assert versions(before, "other", "other") == versions(after, "other", "other")
