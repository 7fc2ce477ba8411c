"""EnvoyFilter patches on translated, Envoy-shaped output: every applyTo x operation,
contexts, selection and ordering, and what happens to a patch that cannot apply."""

from __future__ import annotations

import yaml

from shoal.mesh.meshconfig import MeshConfig
from shoal.mesh.source import ENVOY_FILTERS, PODS
from shoal.mesh.translate import model, protos, translate
from tests.mesh.fixtures import cluster, pod

MESH = MeshConfig()
HCM = "envoy.filters.network.http_connection_manager"
ROUTER = "envoy.filters.http.router"
LOCAL_RL = "envoy.filters.http.local_ratelimit"

# Istio's "Enabling Rate Limits using Envoy / Local rate limit" task, unchanged.
ISTIO_LOCAL_RATE_LIMIT = """
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata:
  name: filter-local-ratelimit-svc
  namespace: istio-system
spec:
  workloadSelector:
    labels:
      app: productpage
  configPatches:
    - applyTo: HTTP_FILTER
      match:
        context: SIDECAR_INBOUND
        listener:
          filterChain:
            filter:
              name: "envoy.filters.network.http_connection_manager"
      patch:
        operation: INSERT_BEFORE
        value:
          name: envoy.filters.http.local_ratelimit
          typed_config:
            "@type": type.googleapis.com/udpa.type.v1.TypedStruct
            type_url: type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
            value:
              stat_prefix: http_local_rate_limiter
              token_bucket:
                max_tokens: 4
                tokens_per_fill: 4
                fill_interval: 60s
              filter_enabled:
                runtime_key: local_rate_limit_enabled
                default_value:
                  numerator: 100
                  denominator: HUNDRED
              filter_enforced:
                runtime_key: local_rate_limit_enforced
                default_value:
                  numerator: 100
                  denominator: HUNDRED
              response_headers_to_add:
                - append: false
                  header:
                    key: x-local-rate-limit
                    value: 'true'
"""

# The same task's per-route variant: the bucket on the inbound virtual host's routes.
ISTIO_LOCAL_RATE_LIMIT_PER_ROUTE = """
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata:
  name: filter-local-ratelimit-svc
  namespace: istio-system
spec:
  workloadSelector:
    labels:
      app: productpage
  configPatches:
    - applyTo: HTTP_FILTER
      match:
        context: SIDECAR_INBOUND
        listener:
          filterChain:
            filter:
              name: "envoy.filters.network.http_connection_manager"
      patch:
        operation: INSERT_BEFORE
        value:
          name: envoy.filters.http.local_ratelimit
          typed_config:
            "@type": type.googleapis.com/udpa.type.v1.TypedStruct
            type_url: type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
            value:
              stat_prefix: http_local_rate_limiter
    - applyTo: HTTP_ROUTE
      match:
        context: SIDECAR_INBOUND
        routeConfiguration:
          vhost:
            name: "inbound|http|9080"
            route:
              action: ANY
      patch:
        operation: MERGE
        value:
          typed_per_filter_config:
            envoy.filters.http.local_ratelimit:
              "@type": type.googleapis.com/udpa.type.v1.TypedStruct
              type_url: type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
              value:
                stat_prefix: http_local_rate_limiter
                token_bucket:
                  max_tokens: 4
                  tokens_per_fill: 4
                  fill_interval: 60s
"""

PRODUCTPAGE = pod("productpage", "10.0.0.9", {"app": "productpage"}, sa="bookinfo",
                  ports=[("http", 9080)])


def envoy_filter(*patches, name="ef", ns="default", selector=None, priority=None,
                 created="2025-01-01T00:00:00Z"):
    spec: dict = {"configPatches": list(patches)}
    if selector:
        spec["workloadSelector"] = {"labels": selector}
    if priority is not None:
        spec["priority"] = priority
    return (ENVOY_FILTERS, {"apiVersion": "networking.istio.io/v1alpha3", "kind": "EnvoyFilter",
                            "metadata": {"name": name, "namespace": ns,
                                         "creationTimestamp": created},
                            "spec": spec})


def patch(apply_to, operation, value=None, **match):
    return {"applyTo": apply_to, "match": match,
            "patch": {"operation": operation, **({"value": value} if value is not None else {})}}


def resources(*objects, pod_name="web-1", ns="default"):
    state = cluster(PRODUCTPAGE, *objects)
    identity = model.proxy_identity(state.get(PODS, ns, pod_name), state)
    return translate(state, identity, MESH)


def dicts(res, type_url):
    return {name: protos.to_dict(m) for name, m in res.by_type()[type_url].items()}


def listener(res, name):
    return dicts(res, protos.LISTENER)[name]


def chains(res, name):
    lst = listener(res, name)
    return {c["name"]: c for c in lst["filter_chains"] + [lst["default_filter_chain"]]}


def filter_names(chain):
    return [f["name"] for f in chain.get("filters", [])]


def http_filters(chain):
    hcm = next(f for f in chain["filters"] if f["name"] == HCM)
    return [h["name"] for h in hcm["typed_config"].get("http_filters", [])]


def inbound_route_config(res, chain_name="inbound|8080-mtls"):
    hcm = next(f for f in chains(res, "virtualInbound")[chain_name]["filters"] if f["name"] == HCM)
    return hcm["typed_config"]["route_config"]


def inbound_http(match_extra=None, **listener_match):
    return dict(context="SIDECAR_INBOUND",
                listener={"filterChain": {"filter": {"name": HCM, **(match_extra or {})}},
                          **listener_match})


LUA = {"name": "envoy.filters.http.lua", "typed_config": {
    "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
    "default_source_code": {"inline_string": "function envoy_on_request(h) end"}}}


# -- Istio's local rate limit ---------------------------------------------------------

def test_istio_local_rate_limit_yaml_patches_every_inbound_hcm_of_the_selected_pod():
    ef = yaml.safe_load(ISTIO_LOCAL_RATE_LIMIT)
    res = resources((ENVOY_FILTERS, ef), pod_name="productpage")
    assert res.problems == ()
    inbound = chains(res, "virtualInbound")
    assert http_filters(inbound["inbound|9080-mtls"]) == [LOCAL_RL, ROUTER]
    hcm = next(f for f in inbound["inbound|9080-mtls"]["filters"] if f["name"] == HCM)
    rl = hcm["typed_config"]["http_filters"][0]["typed_config"]
    assert rl["@type"] == "type.googleapis.com/udpa.type.v1.TypedStruct"
    assert rl["value"]["token_bucket"] == {"max_tokens": 4, "tokens_per_fill": 4,
                                           "fill_interval": "60s"}
    # the outbound side and the passthrough (tcp) chains are untouched
    for chain in chains(res, "virtualOutbound").values():
        if HCM in filter_names(chain):
            assert LOCAL_RL not in http_filters(chain) and http_filters(chain)[-1] == ROUTER
    # another pod (no app=productpage label) gets exactly the resources it had before
    plain = resources(pod_name="web-1")
    patched_elsewhere = resources((ENVOY_FILTERS, ef), pod_name="web-1")
    assert patched_elsewhere.by_type() == plain.by_type()
    for a, b in zip(patched_elsewhere.listeners, plain.listeners):
        assert a is b  # shared, memoized messages: nothing is re-pushed


def test_istio_per_route_rate_limit_merges_typed_per_filter_config_into_inbound_routes():
    res = resources((ENVOY_FILTERS, yaml.safe_load(ISTIO_LOCAL_RATE_LIMIT_PER_ROUTE)),
                    pod_name="productpage")
    assert res.problems == ()
    rc = inbound_route_config(res, "inbound|9080-mtls")
    assert rc["name"] == "inbound|9080||"
    route = rc["virtual_hosts"][0]["routes"][0]
    assert route["route"]["cluster"] == "inbound|9080||"  # merged, not replaced
    per_filter = route["typed_per_filter_config"][LOCAL_RL]
    assert per_filter["value"]["token_bucket"]["max_tokens"] == 4


# -- HTTP_FILTER ----------------------------------------------------------------------

def http_filter_result(operation, value=None, sub=None):
    res = resources(envoy_filter(patch("HTTP_FILTER", operation, value, **inbound_http(
        {"subFilter": {"name": sub}} if sub else None))))
    assert res.problems == ()
    return res, http_filters(chains(res, "virtualInbound")["inbound|8080-mtls"])


def test_http_filter_insert_operations():
    assert http_filter_result("INSERT_BEFORE", LUA, ROUTER)[1] == [LUA["name"], ROUTER]
    assert http_filter_result("INSERT_BEFORE", LUA)[1] == [LUA["name"], ROUTER]
    assert http_filter_result("INSERT_AFTER", LUA)[1] == [ROUTER, LUA["name"]]
    assert http_filter_result("INSERT_FIRST", LUA, ROUTER)[1] == [LUA["name"], ROUTER]
    assert http_filter_result("ADD", LUA)[1] == [ROUTER, LUA["name"]]
    # a sub-filter that is not there: INSERT_BEFORE/AFTER/FIRST do nothing
    assert http_filter_result("INSERT_BEFORE", LUA, "envoy.filters.http.nope")[1] == [ROUTER]
    assert http_filter_result("INSERT_FIRST", LUA, "envoy.filters.http.nope")[1] == [ROUTER]


def test_http_filter_replace_remove_and_merge():
    lua_router = {**LUA, "name": ROUTER}
    res, names = http_filter_result("REPLACE", lua_router, ROUTER)
    assert names == [ROUTER]
    hcm = next(f for f in chains(res, "virtualInbound")["inbound|8080-mtls"]["filters"]
               if f["name"] == HCM)
    assert hcm["typed_config"]["http_filters"][0]["typed_config"]["@type"].endswith("Lua")
    assert http_filter_result("REMOVE", None, ROUTER)[1] == []
    assert http_filter_result("REMOVE", None)[1] == [ROUTER]  # REMOVE needs a sub-filter match
    res, _ = http_filter_result("MERGE", {"typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
        "suppress_envoy_headers": True}}, ROUTER)
    hcm = next(f for f in chains(res, "virtualInbound")["inbound|8080-mtls"]["filters"]
               if f["name"] == HCM)
    assert hcm["typed_config"]["http_filters"][0]["typed_config"]["suppress_envoy_headers"] is True


def test_deprecated_filter_names_in_matches_still_match():
    res = resources(envoy_filter(patch(
        "HTTP_FILTER", "INSERT_BEFORE", LUA, context="SIDECAR_INBOUND",
        listener={"filterChain": {"filter": {"name": "envoy.http_connection_manager",
                                             "subFilter": {"name": "envoy.router"}}}})))
    assert http_filters(chains(res, "virtualInbound")["inbound|8080-mtls"]) == [LUA["name"], ROUTER]


# -- NETWORK_FILTER -------------------------------------------------------------------

TCP = "envoy.filters.network.tcp_proxy"
TCP_TYPE = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
RBAC = {"name": "envoy.filters.network.rbac", "typed_config": {
    "@type": "type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC",
    "stat_prefix": "tcp_rbac"}}


def network_result(operation, value=None, filter_name=TCP, port=5432):
    listener_match: dict = {"portNumber": port} if port else {}
    if filter_name:
        listener_match["filterChain"] = {"filter": {"name": filter_name}}
    res = resources(envoy_filter(patch("NETWORK_FILTER", operation, value,
                                       context="SIDECAR_OUTBOUND", listener=listener_match)),
                    pod_name="client")
    assert res.problems == ()
    return res, {n: filter_names(c) for n, c in chains(res, "virtualOutbound").items()}


def test_network_filter_list_operations_on_the_chain_of_one_port():
    rbac = RBAC["name"]
    _, got = network_result("INSERT_BEFORE", RBAC)
    assert got["10.96.0.20_5432"] == [rbac, TCP]
    assert got["10.96.0.10_80"] == [HCM]  # portNumber selects chains by destination port
    assert network_result("INSERT_AFTER", RBAC)[1]["10.96.0.20_5432"] == [TCP, rbac]
    assert network_result("INSERT_FIRST", RBAC)[1]["10.96.0.20_5432"] == [rbac, TCP]
    assert network_result("ADD", RBAC)[1]["10.96.0.20_5432"] == [TCP, rbac]
    assert network_result("REPLACE", {**RBAC, "name": "x"})[1]["10.96.0.20_5432"] == ["x"]
    _, got = network_result("REMOVE")
    assert got["10.96.0.20_5432"] == [] or "10.96.0.20_5432" not in got
    # no portNumber: every outbound chain with a tcp_proxy, the default chain too
    _, got = network_result("INSERT_BEFORE", RBAC, port=0)
    assert got["PassthroughCluster"] == [rbac, TCP] and got["10.96.0.20_5432"] == [rbac, TCP]


def test_network_filter_merge_merges_the_hcm_inside_its_typed_config():
    res, _ = network_result("MERGE", {"typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager."
                 "v3.HttpConnectionManager",
        "xff_num_trusted_hops": 5,
        "common_http_protocol_options": {"idle_timeout": "30s"}}}, filter_name=HCM, port=80)
    hcm = chains(res, "virtualOutbound")["10.96.0.10_80"]["filters"][0]["typed_config"]
    assert hcm["xff_num_trusted_hops"] == 5
    assert hcm["common_http_protocol_options"]["idle_timeout"] == "30s"
    assert hcm["rds"]["route_config_name"] == "80" and hcm["stat_prefix"] == "outbound_0.0.0.0_80"
    other = chains(res, "virtualOutbound")["10.96.0.10_9090"]["filters"][0]["typed_config"]
    assert "xff_num_trusted_hops" not in other


# -- FILTER_CHAIN, LISTENER, LISTENER_FILTER -------------------------------------------

def test_filter_chain_merge_remove_add():
    res = resources(envoy_filter(
        patch("FILTER_CHAIN", "MERGE", {"transport_socket_connect_timeout": "3s"},
              context="SIDECAR_INBOUND", listener={"portNumber": 8080}),
        patch("FILTER_CHAIN", "REMOVE", context="SIDECAR_INBOUND",
              listener={"filterChain": {"name": "inbound|9090-mtls"}}),
        patch("FILTER_CHAIN", "ADD", {"name": "extra", "filter_chain_match": {
            "destination_port": 7777}, "filters": [{"name": TCP, "typed_config": {
                "@type": TCP_TYPE, "stat_prefix": "extra", "cluster": "BlackHoleCluster"}}]},
              context="SIDECAR_INBOUND")))
    got = chains(res, "virtualInbound")
    assert got["inbound|8080-mtls"]["transport_socket_connect_timeout"] == "3s"
    assert "transport_socket" in got["inbound|8080-mtls"]  # merged, not replaced
    assert "inbound|9090-mtls" not in got
    assert got["extra"]["filter_chain_match"]["destination_port"] == 7777


def test_listener_merge_add_remove_and_listener_filters():
    extra = {"name": "extra_8888", "address": {"socket_address": {"address": "0.0.0.0",
                                                                   "port_value": 8888}},
             "filter_chains": [{"filters": [{"name": TCP, "typed_config": {
                 "@type": TCP_TYPE, "stat_prefix": "x", "cluster": "PassthroughCluster"}}]}]}
    res = resources(envoy_filter(
        patch("LISTENER", "MERGE", {"per_connection_buffer_limit_bytes": 65536},
              context="SIDECAR_INBOUND", listener={"portNumber": 15006}),
        patch("LISTENER", "ADD", extra),
        patch("LISTENER_FILTER", "INSERT_BEFORE", {
            "name": "envoy.filters.listener.http_inspector", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.listener.http_inspector."
                         "v3.HttpInspector"}},
            context="SIDECAR_INBOUND",
            listener={"listenerFilter": "envoy.filters.listener.original_dst"})))
    assert res.problems == ()
    inbound = listener(res, "virtualInbound")
    assert inbound["per_connection_buffer_limit_bytes"] == 65536
    assert [f["name"] for f in inbound["listener_filters"]][:2] == [
        "envoy.filters.listener.http_inspector", "envoy.filters.listener.original_dst"]
    assert listener(res, "extra_8888")["address"]["socket_address"]["port_value"] == 8888
    assert "per_connection_buffer_limit_bytes" not in listener(res, "virtualOutbound")

    removed = resources(envoy_filter(patch("LISTENER", "REMOVE", context="SIDECAR_OUTBOUND")))
    assert set(removed.by_type()[protos.LISTENER]) == {"virtualInbound"}
    # the RDS route configurations nobody names any more go too (a consistent snapshot)
    assert removed.routes == ()


# -- ROUTE_CONFIGURATION, VIRTUAL_HOST, HTTP_ROUTE -------------------------------------

WEB80 = "web.default.svc.cluster.local:80"


def test_route_configuration_merge_by_port():
    res = resources(envoy_filter(patch(
        "ROUTE_CONFIGURATION", "MERGE", {"request_headers_to_add": [
            {"header": {"key": "x-patched", "value": "1"}}]},
        context="SIDECAR_OUTBOUND", routeConfiguration={"portNumber": 80})))
    routes = dicts(res, protos.ROUTE)
    assert routes["80"]["request_headers_to_add"][0]["header"]["key"] == "x-patched"
    assert routes["80"]["virtual_hosts"]  # merged, not replaced
    assert "request_headers_to_add" not in routes["9090"]


def test_virtual_host_merge_replace_remove_add():
    vh = {"name": "extra", "domains": ["extra.example"], "routes": [
        {"match": {"prefix": "/"}, "direct_response": {"status": 204}}]}
    res = resources(envoy_filter(
        patch("VIRTUAL_HOST", "MERGE", {"include_request_attempt_count": True},
              context="SIDECAR_OUTBOUND", routeConfiguration={"vhost": {"name": WEB80}}),
        patch("VIRTUAL_HOST", "REMOVE", context="SIDECAR_OUTBOUND",
              routeConfiguration={"portNumber": 9090, "vhost": {"name": "allow_any"}}),
        patch("VIRTUAL_HOST", "ADD", vh, context="SIDECAR_OUTBOUND",
              routeConfiguration={"portNumber": 80}),
        patch("VIRTUAL_HOST", "REPLACE", {**vh, "name": "replaced"}, context="SIDECAR_OUTBOUND",
              routeConfiguration={"portNumber": 9090,
                                  "vhost": {"domainName": "web.default.svc.cluster.local"}})))
    assert res.problems == ()
    routes = dicts(res, protos.ROUTE)
    vhosts80 = {v["name"]: v for v in routes["80"]["virtual_hosts"]}
    assert vhosts80[WEB80]["include_request_attempt_count"] is True
    assert vhosts80[WEB80]["routes"][0]["route"]["cluster"].startswith("outbound|80||web")
    assert "extra" in vhosts80 and "allow_any" in vhosts80
    assert [v["name"] for v in routes["9090"]["virtual_hosts"]] == ["replaced"]


def test_http_route_operations():
    new = {"name": "health", "match": {"path": "/healthz"}, "direct_response": {"status": 200}}

    def routes_after(operation, value=None, route=None, context="SIDECAR_INBOUND"):
        vhost = {"name": "inbound|http|8080", **({"route": route} if route else {})}
        res = resources(envoy_filter(patch("HTTP_ROUTE", operation, value, context=context,
                                           routeConfiguration={"vhost": vhost})))
        assert res.problems == ()
        vhost = inbound_route_config(res)["virtual_hosts"][0]
        return [r.get("name") for r in vhost.get("routes", [])]

    assert routes_after("INSERT_BEFORE", new, {"name": "default"}) == ["health", "default"]
    assert routes_after("INSERT_AFTER", new, {"name": "default"}) == ["default", "health"]
    assert routes_after("INSERT_FIRST", new, {"name": "default"}) == ["health", "default"]
    assert routes_after("INSERT_FIRST", new, {"name": "missing"}) == ["default"]
    assert routes_after("ADD", new) == ["default", "health"]
    assert routes_after("REMOVE", None, {"action": "ROUTE"}) == []
    assert routes_after("REMOVE", None, {"action": "REDIRECT"}) == ["default"]
    assert routes_after("ADD", new, context="SIDECAR_OUTBOUND") == ["default"]


# -- CLUSTER --------------------------------------------------------------------------

def test_cluster_merge_remove_add():
    rate_limit_cluster = {  # from Istio's global rate limit task
        "name": "rate_limit_cluster", "type": "STRICT_DNS", "connect_timeout": "10s",
        "lb_policy": "ROUND_ROBIN", "http2_protocol_options": {},
        "load_assignment": {"cluster_name": "rate_limit_cluster", "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {
                "address": "ratelimit.default.svc.cluster.local", "port_value": 8081}}}}]}]}}
    res = resources(envoy_filter(
        patch("CLUSTER", "MERGE", {"connect_timeout": "0.5s"}, context="SIDECAR_OUTBOUND",
              cluster={"service": "web.default.svc.cluster.local", "portNumber": 80}),
        patch("CLUSTER", "MERGE", {"per_connection_buffer_limit_bytes": 1024},
              context="SIDECAR_INBOUND", cluster={"portNumber": 8080}),
        patch("CLUSTER", "REMOVE", cluster={"service": "db.data.svc.cluster.local"}),
        patch("CLUSTER", "ADD", rate_limit_cluster,
              cluster={"service": "ratelimit.default.svc.cluster.local"})))
    assert res.problems == ()
    clusters = dicts(res, protos.CLUSTER)
    assert clusters["outbound|80||web.default.svc.cluster.local"]["connect_timeout"] == "0.500s"
    assert clusters["outbound|9090||web.default.svc.cluster.local"]["connect_timeout"] == "10s"
    assert clusters["inbound|8080||"]["per_connection_buffer_limit_bytes"] == 1024
    assert "per_connection_buffer_limit_bytes" not in clusters["inbound|9090||"]
    assert "outbound|5432||db.data.svc.cluster.local" not in clusters
    assert clusters["rate_limit_cluster"]["type"] == "STRICT_DNS"
    # the removed cluster's endpoints go with it (a consistent snapshot)
    assert "outbound|5432||db.data.svc.cluster.local" not in dicts(res, protos.ENDPOINT)


def test_added_eds_cluster_gets_an_empty_endpoint_assignment():
    res = resources(envoy_filter(patch("CLUSTER", "ADD", {
        "name": "extra-eds", "type": "EDS", "connect_timeout": "1s",
        "eds_cluster_config": {"eds_config": {"ads": {}, "resource_api_version": "V3"}}})))
    assert dicts(res, protos.ENDPOINT)["extra-eds"] == {"cluster_name": "extra-eds"}


# -- contexts, selection, order --------------------------------------------------------

def test_contexts_any_and_gateway():
    def count(context):
        match = {"listener": {"filterChain": {"filter": {"name": HCM}}}}
        if context:
            match["context"] = context
        res = resources(envoy_filter({"applyTo": "HTTP_FILTER", "match": match,
                                      "patch": {"operation": "INSERT_FIRST", "value": LUA}}))
        return sum(http_filters(c).count(LUA["name"])
                   for lst in ("virtualInbound", "virtualOutbound")
                   for c in chains(res, lst).values() if HCM in filter_names(c))

    inbound_hcms, outbound_hcms = 2, 2
    assert count("SIDECAR_INBOUND") == inbound_hcms
    assert count("SIDECAR_OUTBOUND") == outbound_hcms
    assert count(None) == count("ANY") == inbound_hcms + outbound_hcms
    assert count("GATEWAY") == 0


def test_selection_by_namespace_and_workload_selector():
    def applied(*filters, pod_name="web-1"):
        res = resources(*filters, pod_name=pod_name)
        return LUA["name"] in http_filters(chains(res, "virtualInbound")["inbound|8080-mtls"])

    insert = patch("HTTP_FILTER", "INSERT_FIRST", LUA, **inbound_http())
    assert applied(envoy_filter(insert, ns="istio-system"))  # root: every workload
    assert applied(envoy_filter(insert, ns="istio-system", selector={"app": "web"}))
    assert not applied(envoy_filter(insert, ns="istio-system", selector={"app": "other"}))
    assert applied(envoy_filter(insert, ns="default", selector={"app": "web"}))
    assert not applied(envoy_filter(insert, ns="data"))  # another namespace's filter
    proxy_match = {**insert, "match": {**insert["match"], "proxy": {"metadata": {
        "SERVICE_ACCOUNT": "web"}}}}
    assert applied(envoy_filter(proxy_match))
    assert not applied(envoy_filter({**insert, "match": {**insert["match"], "proxy": {
        "proxyVersion": "^1\\.2.*"}}}))


def test_order_root_namespace_first_then_priority_then_creation_time():
    def named(name):
        return {**LUA, "name": name}

    def first(name):
        return patch("HTTP_FILTER", "INSERT_FIRST", named(name), **inbound_http())

    res = resources(
        envoy_filter(first("ns-late"), name="a", created="2025-02-01T00:00:00Z"),
        envoy_filter(first("ns-early"), name="b", created="2025-01-01T00:00:00Z"),
        envoy_filter(first("ns-prio-neg"), name="c", priority=-10, created="2025-03-01T00:00:00Z"),
        envoy_filter(first("root"), name="z", ns="istio-system", priority=100))
    # INSERT_FIRST each in turn: the last applied ends up first
    assert http_filters(chains(res, "virtualInbound")["inbound|8080-mtls"]) == [
        "ns-late", "ns-early", "ns-prio-neg", "root", ROUTER]


# -- patches that cannot apply ---------------------------------------------------------

def test_bad_value_skips_that_filter_for_the_proxy_and_says_why():
    bad = envoy_filter(patch("HTTP_FILTER", "INSERT_FIRST", {
        "name": LOCAL_RL, "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3."
                     "LocalRateLimit",
            "stat_prefix": "rl", "token_bukket": {"max_tokens": 4}}}, **inbound_http()),
        patch("CLUSTER", "MERGE", {"connect_timeout": "1s"}), name="bad")
    good = envoy_filter(patch("HTTP_FILTER", "INSERT_FIRST", LUA, **inbound_http()), name="good")
    res = resources(bad, good)
    assert len(res.problems) == 1
    problem = res.problems[0]
    assert problem.startswith("EnvoyFilter default/bad spec.configPatches[0].patch.value:")
    assert "token_bukket" in problem and "skipped" in problem
    # nothing of the bad filter applied, the good one did
    assert http_filters(chains(res, "virtualInbound")["inbound|8080-mtls"]) == [LUA["name"], ROUTER]
    assert dicts(res, protos.CLUSTER)["inbound|8080||"]["connect_timeout"] == "10s"


def test_unknown_apply_to_type_and_mismatched_merge_are_reported():
    res = resources(envoy_filter(patch("BOOTSTRAP", "MERGE", {}), name="boot"),
                    envoy_filter(patch("NETWORK_FILTER", "MERGE", {"typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy."
                                 "v3.TcpProxy", "stat_prefix": "x"}}, **inbound_http()),
                        name="mismatch"),
                    envoy_filter(patch("HTTP_FILTER", "ADD", {"name": "x", "typed_config": {
                        "@type": "type.googleapis.com/no.such.Type"}}), name="unknown"))
    text = "\n".join(res.problems)
    assert "EnvoyFilter default/boot spec.configPatches[0].applyTo: unsupported value" in text
    assert "EnvoyFilter default/mismatch spec.configPatches[0]: skipped: cannot MERGE" in text
    assert "EnvoyFilter default/unknown spec.configPatches[0].patch.value" in text
    assert "no.such.Type" in text
    # the HCM the mismatched MERGE aimed at is intact
    assert http_filters(chains(res, "virtualInbound")["inbound|8080-mtls"]) == [ROUTER]


def test_translation_stays_deterministic_with_patches():
    ef = (ENVOY_FILTERS, yaml.safe_load(ISTIO_LOCAL_RATE_LIMIT_PER_ROUTE))
    one = resources(ef, pod_name="productpage")
    two = resources(ef, pod_name="productpage")
    for a, b in zip(one.listeners + one.routes + one.clusters,
                    two.listeners + two.routes + two.clusters):
        assert a.SerializeToString(deterministic=True) == b.SerializeToString(deterministic=True)


def test_merge_and_replace_list_replaces_lists_and_typed_struct_merges_into_typed_config():
    hcm_type = ("type.googleapis.com/envoy.extensions.filters.network.http_connection_manager."
                "v3.HttpConnectionManager")
    router = {"name": ROUTER, "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}
    for operation, expected in (("MERGE", [ROUTER, LUA["name"], ROUTER]),
                                ("MERGE_AND_REPLACE_LIST", [LUA["name"], ROUTER])):
        res = resources(envoy_filter(patch(
            "NETWORK_FILTER", operation, {"typed_config": {
                "@type": hcm_type, "http_filters": [LUA, router]}}, **inbound_http())))
        assert res.problems == ()
        assert http_filters(chains(res, "virtualInbound")["inbound|8080-mtls"]) == expected

    typed_struct = {"typed_config": {
        "@type": "type.googleapis.com/udpa.type.v1.TypedStruct",
        "type_url": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
        "value": {"suppress_envoy_headers": True}}}
    res, _ = http_filter_result("MERGE", typed_struct, ROUTER)
    hcm = next(f for f in chains(res, "virtualInbound")["inbound|8080-mtls"]["filters"]
               if f["name"] == HCM)
    merged = hcm["typed_config"]["http_filters"][0]["typed_config"]
    assert merged["@type"].endswith("router.v3.Router") and merged["suppress_envoy_headers"]


def test_a_typo_inside_a_typed_struct_is_caught_not_dropped_silently():
    ef = yaml.safe_load(ISTIO_LOCAL_RATE_LIMIT)
    value = ef["spec"]["configPatches"][0]["patch"]["value"]["typed_config"]["value"]
    value["token_bukket"] = value.pop("token_bucket")
    res = resources((ENVOY_FILTERS, ef), pod_name="productpage")
    assert len(res.problems) == 1
    assert res.problems[0].startswith(
        "EnvoyFilter istio-system/filter-local-ratelimit-svc spec.configPatches[0].patch.value"
        ".typed_config.value: not a valid envoy.extensions.filters.http.local_ratelimit.v3.")
    assert "token_bukket" in res.problems[0]
    assert http_filters(chains(res, "virtualInbound")["inbound|9080-mtls"]) == [ROUTER]
