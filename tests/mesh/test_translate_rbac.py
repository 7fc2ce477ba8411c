"""AuthorizationPolicy and RequestAuthentication translation (pure): which policies apply,
the Envoy RBAC / jwt_authn configs, and Istio's TCP rules. Real Envoy behaviour is in
test_authz_e2e.py; here the shapes that decide it."""

from __future__ import annotations

import dataclasses
import json

from shoal.mesh.meshconfig import MeshConfig
from shoal.mesh.source import AUTHORIZATION_POLICIES, PODS, REQUEST_AUTHENTICATIONS
from shoal.mesh.translate import Outbound, jwt, model, protos, rbac, translate
from tests.mesh import fixtures as f

MESH = MeshConfig()


def ap(name, spec, ns="default"):
    return (AUTHORIZATION_POLICIES, {"apiVersion": "security.istio.io/v1",
                                     "kind": "AuthorizationPolicy",
                                     "metadata": {"name": name, "namespace": ns}, "spec": spec})


def ra(name, spec, ns="default"):
    return (REQUEST_AUTHENTICATIONS, {"apiVersion": "security.istio.io/v1",
                                      "kind": "RequestAuthentication",
                                      "metadata": {"name": name, "namespace": ns}, "spec": spec})


def inbound_chains(state, pod="web-1", ns="default", mesh=MESH, jwks=None):
    proxy = model.proxy_identity(state.get(PODS, ns, pod), state)
    res = translate(state, proxy, mesh, Outbound(state, mesh, jwks))
    listener = next(m for m in res.listeners if m.name == "virtualInbound")
    body = protos.to_dict(listener)
    return {c["name"]: c for c in body["filter_chains"]}, body["default_filter_chain"], res


def http_filters(chain):
    hcm = chain["filters"][-1]["typed_config"]
    return hcm["http_filters"]


def rbac_configs(filters):
    return [(x["name"], x["typed_config"]["rules"]) for x in filters if "rbac" in x["name"]]


def test_no_policy_no_filters_and_allow_nothing_on_every_chain():
    chains, default, _ = inbound_chains(f.cluster())
    assert [x["name"] for x in http_filters(chains["inbound|8080-mtls"])] == ["envoy.filters.http.router"]
    state = f.cluster(ap("allow-nothing", {}))
    chains, default, _ = inbound_chains(state)
    filters = http_filters(chains["inbound|8080-mtls"])
    assert [x["name"] for x in filters] == [rbac.HTTP_RBAC, "envoy.filters.http.router"]
    rules = filters[0]["typed_config"]["rules"]
    assert rules.get("action", "ALLOW") == "ALLOW"
    assert rules["policies"] == {"ns[default]-policy[allow-nothing]-rule[0]": rbac.NEVER}
    # undeclared ports (passthrough) are closed too, with network RBAC
    assert [x["name"] for x in default["filters"]] == [rbac.NETWORK_RBAC,
                                                       "envoy.filters.network.tcp_proxy"]


def test_scope_root_namespace_selector_and_other_namespaces():
    state = f.cluster(
        ap("mesh-wide", {"action": "DENY", "rules": [{}]}, ns="istio-system"),
        ap("db-only", {"selector": {"matchLabels": {"app": "db"}}, "action": "DENY",
                       "rules": [{}]}, ns="istio-system"),
        ap("other-ns", {"action": "DENY", "rules": [{}]}, ns="data"),
        ap("web-only", {"selector": {"matchLabels": {"app": "web"}}, "rules": [{}]}),
        ap("not-web", {"selector": {"matchLabels": {"app": "client"}}, "rules": [{}]}),
        ap("gw", {"targetRefs": [{"kind": "Gateway", "group": "gateway.networking.k8s.io",
                                  "name": "web"}], "action": "DENY", "rules": [{}]}))
    chains, _, _ = inbound_chains(state)
    configs = rbac_configs(http_filters(chains["inbound|8080-mtls"]))
    assert [(name, r["action"] if "action" in r else "ALLOW", sorted(r["policies"]))
            for name, r in configs] == [
        (rbac.HTTP_RBAC, "DENY", ["ns[istio-system]-policy[mesh-wide]-rule[0]"]),
        (rbac.HTTP_RBAC, "ALLOW", ["ns[default]-policy[web-only]-rule[0]"])]
    # the db pod in "data": root policies with its labels and its namespace's own
    chains, _, _ = inbound_chains(state, pod="db", ns="data")
    deny = chains["inbound|5432-mtls"]["filters"][0]["typed_config"]["rules"]
    assert sorted(deny["policies"]) == ["ns[data]-policy[other-ns]-rule[0]",
                                        "ns[istio-system]-policy[db-only]-rule[0]",
                                        "ns[istio-system]-policy[mesh-wide]-rule[0]"]


def test_target_refs_attach_to_the_named_gateway_only():
    spec = {"targetRefs": [{"kind": "Gateway", "group": "gateway.networking.k8s.io",
                            "name": "web"}]}
    policy = {"metadata": {"name": "p", "namespace": "default"}, "spec": spec}
    assert not rbac.attaches(policy, "default", {"app": "web"})
    assert rbac.attaches(policy, "default", {rbac.GATEWAY_NAME_LABEL: "web"})
    assert not rbac.attaches(policy, "default", {rbac.GATEWAY_NAME_LABEL: "other"})
    assert not rbac.attaches(policy, "other", {rbac.GATEWAY_NAME_LABEL: "web"})


def test_istio_value_forms():
    rule = {"from": [{"source": {"principals": ["cluster.local/ns/foo/sa/sleep", "*",
                                                "cluster.local/ns/foo/*", "*/sa/sleep"],
                                 "namespaces": ["foo", "te*"], "ipBlocks": ["10.1.0.0/16", "10.2.3.4"],
                                 "notServiceAccounts": ["bar/baz"]}}],
            "to": [{"operation": {"hosts": ["*.example.com"], "paths": ["/api/*", "*.html",
                                                                        "/x/{*}/y/{**}"],
                                  "notMethods": ["DELETE"], "ports": ["8080"]}}]}
    policy = rbac.rule_policy(rule, "default", False, "ALLOW")
    principal = policy["principals"][0]["and_ids"]["ids"]
    names = [p["authenticated"]["principal_name"]
             for p in principal[0]["or_ids"]["ids"]]
    assert names == [{"exact": "spiffe://cluster.local/ns/foo/sa/sleep"},
                     {"safe_regex": {"regex": ".+"}},
                     {"prefix": "spiffe://cluster.local/ns/foo/"},
                     {"safe_regex": {"regex": "spiffe://.*/sa/sleep"}}]
    namespaces = [p["authenticated"]["principal_name"]["safe_regex"]["regex"]
                  for p in principal[1]["or_ids"]["ids"]]
    assert namespaces == [".*/ns/foo/.*", ".*/ns/te.*/.*"]
    assert principal[3]["or_ids"]["ids"] == [
        {"direct_remote_ip": {"address_prefix": "10.1.0.0", "prefix_len": 16}},
        {"direct_remote_ip": {"address_prefix": "10.2.3.4", "prefix_len": 32}}]
    assert principal[2]["not_id"]["authenticated"]["principal_name"]["safe_regex"]["regex"] \
        .startswith("spiffe://.+/ns/bar/")
    permission = policy["permissions"][0]["and_rules"]["rules"]
    assert permission[0] == {"header": {"name": ":authority", "string_match": {
        "suffix": ".example.com", "ignore_case": True}}}
    assert permission[1] == {"destination_port": 8080}
    paths = permission[3]["or_rules"]["rules"]
    assert paths[0] == {"url_path": {"path": {"prefix": "/api/"}}}
    assert paths[1] == {"url_path": {"path": {"suffix": ".html"}}}
    assert paths[2]["uri_template"]["typed_config"]["path_template"] == "/x/*/y/**"
    assert permission[2] == {"not_rule": {"header": {"name": ":method",
                                                     "string_match": {"exact": "DELETE"}}}}


def test_request_principal_splits_at_the_last_slash():
    principal = rbac.extended_principal("requestPrincipals", ["https://idp.example/realm/alice"],
                                        False)
    ids = principal["and_ids"]["ids"]
    assert ids[0]["metadata"]["path"] == [{"key": "payload"}, {"key": "iss"}]
    assert ids[0]["metadata"]["value"] == {"string_match": {"exact": "https://idp.example/realm"}}
    assert ids[1]["metadata"]["value"] == {"string_match": {"exact": "alice"}}


def test_tcp_chain_drops_http_only_allow_rules_and_widens_deny_rules():
    state = f.cluster(
        ap("allow-http", {"rules": [{"to": [{"operation": {"methods": ["GET"]}}]},
                                    {"to": [{"operation": {"ports": ["5432"]}}]}]}, ns="data"),
        ap("deny-http", {"action": "DENY", "rules": [
            {"to": [{"operation": {"methods": ["POST"], "ports": ["5432"]}}],
             "when": [{"key": "request.headers[x]", "values": ["y"]}]}]}, ns="data"))
    chains, _, _ = inbound_chains(state, pod="db", ns="data")
    deny, allow = [x["typed_config"]["rules"] for x in chains["inbound|5432-mtls"]["filters"][:2]]
    assert sorted(allow["policies"]) == ["ns[data]-policy[allow-http]-rule[1]"]
    rule = deny["policies"]["ns[data]-policy[deny-http]-rule[0]"]
    assert rule["permissions"] == [{"and_rules": {"rules": [{"destination_port": 5432}]}}]
    assert rule["principals"] == [{"and_ids": {"ids": [{"any": True}]}}]


def test_filter_order_jwt_audit_deny_allow_and_custom_fails_closed():
    state = f.cluster(
        ap("allow", {"rules": [{}]}), ap("deny", {"action": "DENY", "rules": [{}]}),
        ap("audit", {"action": "AUDIT", "rules": [{}]}),
        ap("ext", {"action": "CUSTOM", "provider": {"name": "x"}, "rules": [{}]}),
        ra("jwt", {"jwtRules": [{"issuer": "a", "jwks": '{"keys":[]}'}]}))
    chains, _, res = inbound_chains(state)
    filters = http_filters(chains["inbound|8080-mtls"])
    assert [x["name"] for x in filters] == [jwt.JWT_FILTER] + [rbac.HTTP_RBAC] * 3 + [
        "envoy.filters.http.router"]
    actions = [x["typed_config"]["rules"].get("action", "ALLOW") for x in filters[1:4]]
    assert actions == ["LOG", "DENY", "ALLOW"]
    assert sorted(filters[2]["typed_config"]["rules"]["policies"]) == [
        "ns[default]-policy[deny]-rule[0]", "ns[default]-policy[ext]-rule[0]"]
    assert any("CUSTOM is not supported" in p for p in res.problems)


def test_deny_by_default_mesh_switch():
    mesh = dataclasses.replace(MESH, deny_by_default=True)
    chains, _, _ = inbound_chains(f.cluster(), mesh=mesh)
    (name, rules), = rbac_configs(http_filters(chains["inbound|8080-mtls"]))
    assert rules.get("action", "ALLOW") == "ALLOW" and not rules.get("policies")


def test_jwt_providers_requirements_and_fail_closed_keys():
    rules = [{"issuer": "https://b.example", "jwksUri": "http://keys/b.json",
              "audiences": ["web"], "fromHeaders": [{"name": "x-jwt", "prefix": "Token "}],
              "fromParams": ["tok"], "outputPayloadToHeader": "x-payload",
              "outputClaimToHeaders": [{"header": "x-sub", "claim": "sub"}],
              "forwardOriginalToken": True},
             {"issuer": "a", "jwks": '{"keys":[]}'}]
    policies = [{"metadata": {"name": "r", "namespace": "default"}, "spec": {"jwtRules": rules}}]
    filt, problems = jwt.jwt_filter(policies, {})
    config = filt["typed_config"]
    a, b = config["providers"]["origins-0"], config["providers"]["origins-1"]
    assert a["issuer"] == "a" and a["local_jwks"] == {"inline_string": '{"keys":[]}'}
    assert b["local_jwks"] == {"inline_string": jwt.FAIL_CLOSED_JWKS}
    assert b["from_headers"] == [{"name": "x-jwt", "value_prefix": "Token "}]
    assert (b["from_params"], b["forward"], b["forward_payload_header"], b["audiences"]) == (
        ["tok"], True, "x-payload", ["web"])
    assert b["claim_to_headers"] == [{"header_name": "x-sub", "claim_name": "sub"}]
    assert b["payload_in_metadata"] == "payload"
    requires = config["rules"][0]["requires"]["requires_any"]["requirements"]
    assert requires[:2] == [{"provider_name": "origins-0"}, {"provider_name": "origins-1"}]
    assert problems == ["RequestAuthentication default/r: spec.jwtRules[0]: keys from "
                        "http://keys/b.json unavailable (not fetched yet); tokens are refused (401)"]
    fetched = {"http://keys/b.json": jwt.JwksEntry('{"keys":[{"kty":"oct"}]}', "")}
    filt, problems = jwt.jwt_filter(policies, fetched)
    assert filt["typed_config"]["providers"]["origins-1"]["local_jwks"]["inline_string"] == \
        '{"keys":[{"kty":"oct"}]}'
    assert problems == []
    stale = {"http://keys/b.json": jwt.JwksEntry('{"keys":[]}', "ConnectError")}
    _, problems = jwt.jwt_filter(policies, stale)
    assert "serving the last keys fetched" in problems[0] and "keys\":" not in problems[0]
    # one provider: optional token (allow_missing), Istio's shape
    filt, _ = jwt.jwt_filter([{**policies[0], "spec": {"jwtRules": rules[1:]}}], {})
    assert filt["typed_config"]["rules"][0]["requires"] == {"requires_any": {"requirements": [
        {"provider_name": "origins-0"}, {"allow_missing": {}}]}}


def test_sources_to_fetch_include_openid_discovery():
    policies = [{"spec": {"jwtRules": [{"issuer": "https://idp.example/"},
                                       {"issuer": "x", "jwksUri": "http://k/j.json"},
                                       {"issuer": "y", "jwks": "{}"}]}}]
    assert jwt.remote_sources(policies) == {
        "https://idp.example/.well-known/openid-configuration", "http://k/j.json"}


def test_workloads_under_the_same_policies_share_the_inbound_listener():
    state = f.cluster(ap("p", {"rules": [{}]}))
    one = rbac.inbound_auth(state, MESH, "default", {"app": "web"}, {})
    two = rbac.inbound_auth(state, MESH, "default", {"app": "web", "pod": "2"}, {})
    assert one == two and hash(one) == hash(two)
    assert one != rbac.NO_AUTH
    assert json.loads(one.key)[0][0]["name"] == rbac.HTTP_RBAC


def test_dry_run_policies_are_shadow_rules_only():
    policy = ap("dry", {"action": "DENY", "rules": [{}]})
    policy[1]["metadata"]["annotations"] = {"istio.io/dry-run": "true"}
    chains, _, _ = inbound_chains(f.cluster(policy))
    (config,) = [x["typed_config"] for x in http_filters(chains["inbound|8080-mtls"])
                 if x["name"] == rbac.HTTP_RBAC]
    assert "rules" not in config
    assert config["shadow_rules"]["action"] == "DENY"
    assert config["shadow_rules_stat_prefix"] == "istio_dry_run_deny_"
