"""AuthorizationPolicy (security.istio.io v1/v1beta1) -> Envoy RBAC filters. Pure.

Which policies apply to a workload (Istio's rules): those in the root namespace
(`MeshConfig.root_namespace`, mesh-wide) and those in the workload's namespace, whose
`selector.matchLabels` is a subset of the pod's labels (no selector: every workload of
that namespace). A policy with `targetRefs`/`targetRef` never attaches to a sidecar;
on a Gateway API gateway pod (label `gateway.networking.k8s.io/gateway-name`) it
attaches when it names that Gateway in the pod's namespace.

Each action becomes one filter, in Istio's order: AUDIT (Envoy action LOG: marks,
never denies), DENY, ALLOW. So a DENY that matches wins over any ALLOW; when no ALLOW
policy applies there is no ALLOW filter and everything not denied passes; when one
does, a request no ALLOW rule matches is denied. A policy without rules (`spec: {}`,
ALLOW) contributes a policy that never matches: allow-nothing. `MeshConfig.deny_by_default`
acts as an allow-nothing policy in the root namespace (off by default, as in Istio).
A policy annotated `istio.io/dry-run: "true"` goes to the filter's shadow rules: Envoy
evaluates and counts it but does not enforce it.
HTTP chains get `envoy.filters.http.rbac` (a denied request is answered 403
`RBAC: access denied` by Envoy); TCP chains get `envoy.filters.network.rbac` (the
connection is closed).

Rule semantics follow Istio's `authz/model`: a rule is one Envoy policy, named
`ns[NS]-policy[NAME]-rule[I]`; each `from` is one principal (ORed), each `to` one
permission (ORed); within them every field is ANDed and the values of a field ORed;
`notX` is NOT(any of the values); `when` conditions are added to every principal or
permission, by key. Values match exactly, by prefix (`abc*`), suffix (`*abc`) or
presence (`*`). Principals match the peer certificate's URI SAN with `spiffe://`;
namespaces and service accounts by regex on it; `ipBlocks`/`source.ip` the direct peer
address, `remoteIpBlocks`/`remote.ip` the address from X-Forwarded-For; request
principals (`iss/sub`), audiences, presenter and claims the JWT payload that
`jwt_authn` leaves in dynamic metadata (see `jwt`).

On a TCP chain, HTTP-only fields (hosts, methods, paths, request principals, request
headers, JWT claims) cannot be evaluated. As Istio documents: an ALLOW rule using one is
dropped (less is allowed); in a DENY or AUDIT rule the field alone is dropped, so the
rule matches more (more is denied).
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

# Imported for their descriptors: the typed configs below name these types.
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as _http_rbac  # noqa: F401
from envoy.extensions.filters.network.rbac.v3 import rbac_pb2 as _network_rbac  # noqa: F401
from envoy.extensions.path.match.uri_template.v3 import uri_template_match_pb2  # noqa: F401

from shoal.mesh.meshconfig import MeshConfig
from shoal.mesh.source import AUTHORIZATION_POLICIES, ClusterState
from shoal.mesh.translate import jwt
from shoal.mesh.translate.protos import typed

Obj = dict[str, Any]

HTTP_RBAC = "envoy.filters.http.rbac"
NETWORK_RBAC = "envoy.filters.network.rbac"
GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"
DRY_RUN_ANNOTATION = "istio.io/dry-run"
ACTIONS = {"AUDIT": "LOG", "DENY": "DENY", "ALLOW": "ALLOW"}
"""Istio action -> Envoy RBAC action, in the order the filters run."""

NEVER = {"permissions": [{"not_rule": {"any": True}}], "principals": [{"not_id": {"any": True}}]}
"""The Envoy policy of an AuthorizationPolicy without rules: matches nothing."""


class HttpOnly(Exception):
    """A field that only an HTTP chain can evaluate, met while building for TCP."""


# -- which policies ----------------------------------------------------------------

def _target_refs(spec: Obj) -> list[Obj]:
    refs = spec.get("targetRefs") or []
    if not refs and spec.get("targetRef"):
        refs = [spec["targetRef"]]
    return [r for r in refs if isinstance(r, dict)]


def attaches(policy: Obj, namespace: str, labels: dict[str, str]) -> bool:
    """Does `policy` (already known to be in the root or the workload's namespace) apply
    to a workload with `labels` in `namespace`? Istio's WorkloadPolicyMatcher for sidecars
    and Gateway API gateways."""
    spec = policy.get("spec") or {}
    refs = _target_refs(spec)
    gateway = labels.get(GATEWAY_NAME_LABEL)
    if refs:
        if gateway is None or policy["metadata"].get("namespace") != namespace:
            return False
        return any(r.get("kind") == "Gateway" and r.get("name") == gateway
                   and (r.get("group") or "gateway.networking.k8s.io") == "gateway.networking.k8s.io"
                   for r in refs)
    selector = (spec.get("selector") or {}).get("matchLabels")
    if selector is None:
        return True
    return dict(selector).items() <= labels.items()


def applicable_policies(state: ClusterState, kind: str, mesh: MeshConfig, namespace: str,
                        labels: dict[str, str]) -> list[Obj]:
    """Policies of `kind` (AuthorizationPolicy or RequestAuthentication) for a workload:
    root namespace first, then its own, each sorted by name."""
    namespaces = [mesh.root_namespace] + ([namespace] if namespace != mesh.root_namespace else [])
    return [p for ns in namespaces for p in state.list(kind, ns) if attaches(p, namespace, labels)]


# -- values ------------------------------------------------------------------------

def string_match(value: str, prefix: str = "", ignore_case: bool = False) -> Obj:
    """Istio's StringMatcherWithPrefix: `*` presence, `*x` suffix, `x*` prefix, else exact;
    `prefix` is prepended (e.g. spiffe:// for principals)."""
    case = {"ignore_case": True} if ignore_case else {}
    if value == "*":
        return {"safe_regex": {"regex": ".+"}}
    if value.startswith("*"):
        if prefix:
            return {"safe_regex": {"regex": re.escape(prefix) + ".*" + re.escape(value[1:])}}
        return {"suffix": value[1:], **case}
    if value.endswith("*"):
        return {"prefix": prefix + value[:-1], **case}
    return {"exact": prefix + value, **case}


def header_match(name: str, value: str, ignore_case: bool = False) -> Obj:
    if value == "*":
        return {"name": name, "present_match": True}
    return {"name": name, "string_match": string_match(value, ignore_case=ignore_case)}


def cidr(value: str) -> Obj:
    address, _, length = value.partition("/")
    if not length:
        length = "128" if ":" in address else "32"
    return {"address_prefix": address, "prefix_len": int(length)}


def _metadata(claims: list[str], value: Obj, list_too: bool = True) -> Obj:
    """A matcher on the JWT payload jwt_authn stores (claims may be lists: `one_of`)."""
    path = [{"key": jwt.PAYLOAD_KEY}] + [{"key": c} for c in claims]
    if list_too:
        value = {"or_match": {"value_matchers": [{"list_match": {"one_of": value}}, value]}}
    return {"filter": jwt.JWT_FILTER, "path": path, "value": value}


def _or_values(values: list[str]) -> Obj:
    matchers = [{"string_match": string_match(v)} for v in values]
    return matchers[0] if len(matchers) == 1 else {"or_match": {"value_matchers": matchers}}


def _bracketed(key: str, prefix: str) -> list[str]:
    """`request.auth.claims[a][b]` -> ["a", "b"]; `request.headers[x]` -> ["x"]."""
    rest = key[len(prefix):]
    names = re.findall(r"\[([^\[\]]*)\]", rest)
    if "".join(f"[{n}]" for n in names) != rest or not names:
        return [rest[1:-1]]  # validation refuses anything else; Istio's fallback
    return names


def _path_template(value: str) -> Obj:
    template = value.replace("{**}", "**").replace("{*}", "*")
    return {"uri_template": {"name": "uri-template", "typed_config": typed(
        "envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig",
        {"path_template": template})}}


def _sa_regex(default_ns: str, value: str) -> str:
    ns, _, sa = value.partition("/") if "/" in value else (default_ns, "", value)
    return f"spiffe://.+/ns/{re.escape(ns)}/(.+/|)sa/{re.escape(sa)}(/.+)?"


def _trust_domain(value: str) -> Obj:
    if value == "*":
        return {"prefix": "spiffe://"}
    if "*" not in value:
        return {"prefix": f"spiffe://{value}/"}
    before, _, after = value.partition("*")
    return {"safe_regex": {"regex": f"spiffe://{re.escape(before)}[^/]*{re.escape(after)}/.*"}}


# -- conditions: key -> one Envoy permission or principal per value -----------------

def _http_only(key: str, for_tcp: bool) -> None:
    if for_tcp:
        raise HttpOnly(key)


PERMISSION_KEYS = ("hosts", "ports", "methods", "paths", "destination.ip", "destination.port",
                   "connection.sni")
"""Keys (operation fields and `when` attributes) that are permissions; the rest are principals."""


def permission_for(key: str, value: str, for_tcp: bool) -> Obj:
    if key == "hosts":
        _http_only(key, for_tcp)
        return {"header": header_match(":authority", value, ignore_case=True)}
    if key == "methods":
        _http_only(key, for_tcp)
        return {"header": header_match(":method", value)}
    if key == "paths":
        _http_only(key, for_tcp)
        if "{*}" in value or "{**}" in value:
            return _path_template(value)
        return {"url_path": {"path": string_match(value)}}
    if key in ("ports", "destination.port"):
        return {"destination_port": int(value)}
    if key == "destination.ip":
        return {"destination_ip": cidr(value)}
    if key == "connection.sni":
        return {"requested_server_name": string_match(value)}
    raise KeyError(key)


def experimental_permission(key: str, values: list[str]) -> Obj:
    """`experimental.envoy.filters.X[key]`: a metadata match on filter X (value `[v]` =
    one element of a list)."""
    filter_name, _, rest = key[len("experimental."):].partition("[")
    matchers = []
    for v in values:
        if v.startswith("[") and v.endswith("]"):
            matchers.append({"list_match": {"one_of": {"string_match": string_match(v[1:-1])}}})
        else:
            matchers.append({"string_match": string_match(v)})
    value = matchers[0] if len(matchers) == 1 else {"or_match": {"value_matchers": matchers}}
    return {"metadata": {"filter": filter_name, "path": [{"key": rest.rstrip("]")}], "value": value}}


def principal_for(key: str, value: str, for_tcp: bool, namespace: str) -> Obj:
    if key in ("ipBlocks", "source.ip"):
        return {"direct_remote_ip": cidr(value)}
    if key in ("remoteIpBlocks", "remote.ip"):
        return {"remote_ip": cidr(value)}
    if key in ("namespaces", "source.namespace"):
        regex = ".*".join(re.escape(part) for part in value.split("*"))
        return {"authenticated": {"principal_name": {"safe_regex": {"regex": f".*/ns/{regex}/.*"}}}}
    if key in ("serviceAccounts", "source.serviceAccount"):
        return {"authenticated": {"principal_name": {"safe_regex": {
            "regex": _sa_regex(namespace, value)}}}}
    if key in ("trustDomains", "source.trustDomain"):
        return {"authenticated": {"principal_name": _trust_domain(value)}}
    if key in ("principals", "source.principal"):
        return {"authenticated": {"principal_name": string_match(value, "spiffe://")}}
    if key.startswith("request.headers"):
        _http_only(key, for_tcp)
        return {"header": header_match(_bracketed(key, "request.headers")[0], value)}
    raise KeyError(key)


def extended_principal(key: str, values: list[str], for_tcp: bool) -> Obj:
    """Request-principal and JWT keys: one matcher over all values."""
    _http_only(key, for_tcp)
    if key in ("requestPrincipals", "request.auth.principal"):
        ors = [_request_principal(v) for v in values]
        return ors[0] if len(ors) == 1 else {"or_ids": {"ids": ors}}
    if key == "request.auth.audiences":
        return {"metadata": _metadata(["aud"], _or_values(values))}
    if key == "request.auth.presenter":
        return {"metadata": _metadata(["azp"], _or_values(values))}
    if key.startswith("request.auth.claims"):
        return {"metadata": _metadata(_bracketed(key, "request.auth.claims"), _or_values(values))}
    raise KeyError(key)


EXTENDED_KEYS = ("requestPrincipals", "request.auth.principal", "request.auth.audiences",
                 "request.auth.presenter")


def _is_extended(key: str) -> bool:
    return key in EXTENDED_KEYS or key.startswith("request.auth.claims")


_ANY = {"safe_regex": {"regex": ".+"}}


def _request_principal(value: str) -> Obj:
    """`iss/sub` (the last '/' splits: issuers are often URLs), with Istio's wildcards."""
    idx = value.rfind("/")
    found = idx >= 0
    iss, sub = (value[:idx], value[idx + 1:]) if found else (value, "")
    if value == "*":
        m_iss, m_sub = _ANY, _ANY
    elif value.startswith("*"):
        if found:
            m_iss = _ANY if iss == "*" else {"suffix": iss[1:]}
            m_sub = {"exact": sub}
        else:
            m_iss, m_sub = _ANY, {"suffix": value[1:]}
    elif value.endswith("*"):
        if found:
            m_iss = {"exact": iss}
            m_sub = _ANY if sub == "*" else {"prefix": sub[:-1]}
        else:
            m_iss, m_sub = {"prefix": value[:-1]}, _ANY
    else:
        m_iss, m_sub = {"exact": iss}, {"exact": sub}
    return {"and_ids": {"ids": [
        {"metadata": _metadata(["iss"], {"string_match": m_iss}, list_too=False)},
        {"metadata": _metadata(["sub"], {"string_match": m_sub}, list_too=False)}]}}


# -- rules -------------------------------------------------------------------------

Condition = tuple[str, list[str], list[str]]  # key, values, notValues

SOURCE_FIELDS = ("principals", "requestPrincipals", "namespaces", "serviceAccounts",
                 "trustDomains", "ipBlocks", "remoteIpBlocks")
OPERATION_FIELDS = ("hosts", "ports", "methods", "paths")


def _not(name: str) -> str:
    return "not" + name[0].upper() + name[1:]


def _conditions(obj: Obj, fields: tuple[str, ...]) -> list[Condition]:
    out = []
    for name in fields:
        values, not_values = list(obj.get(name) or []), list(obj.get(_not(name)) or [])
        if values or not_values:
            out.append((name, [str(v) for v in values], [str(v) for v in not_values]))
    return out


def _combine(items: list[Obj], set_key: str, list_key: str) -> Obj:
    return {set_key: {list_key: items}}


def _build(conditions: list[Condition], principal: bool, for_tcp: bool, action: str,
           namespace: str) -> Obj:
    """AND of the conditions as one Envoy principal (or permission); raises HttpOnly for
    an ALLOW rule on TCP; drops the condition for DENY/AUDIT."""
    and_items: list[Obj] = []
    or_key, or_list = ("or_ids", "ids") if principal else ("or_rules", "rules")
    and_key = "and_ids" if principal else "and_rules"
    not_key = "not_id" if principal else "not_rule"

    def one(key: str, value: str) -> Obj:
        if principal:
            return principal_for(key, value, for_tcp, namespace)
        if key.startswith("experimental.envoy.filters."):
            return experimental_permission(key, [value])
        return permission_for(key, value, for_tcp)

    for key, values, not_values in conditions:
        try:
            if _is_extended(key):
                if values:
                    and_items.append(extended_principal(key, values, for_tcp))
                if not_values:
                    and_items.append({not_key: extended_principal(key, not_values, for_tcp)})
                continue
            for group, negate in ((values, False), (not_values, True)):
                if not group:
                    continue
                matchers = [one(key, v) for v in group]
                matcher = matchers[0] if len(matchers) == 1 else _combine(matchers, or_key, or_list)
                and_items.append({not_key: matcher} if negate else matcher)
        except HttpOnly:
            if action == "ALLOW":
                raise
    if not and_items:
        and_items.append({"any": True})
    return {and_key: {or_list: and_items}}


def _is_permission_key(key: str) -> bool:
    return key in PERMISSION_KEYS or key.startswith("experimental.envoy.filters.")


def rule_policy(rule: Obj, namespace: str, for_tcp: bool, action: str) -> Obj:
    """One AuthorizationPolicy rule -> one Envoy RBAC Policy; HttpOnly for an ALLOW rule
    that a TCP chain cannot evaluate."""
    when = [(c.get("key", ""), [str(v) for v in c.get("values") or []],
             [str(v) for v in c.get("notValues") or []]) for c in rule.get("when") or []]
    when_permission = [c for c in when if _is_permission_key(c[0])]
    when_principal = [c for c in when if not _is_permission_key(c[0])]
    froms = [(f or {}).get("source") or {} for f in rule.get("from") or []] or [None]
    tos = [(t or {}).get("operation") or {} for t in rule.get("to") or []] or [None]
    principals = [_build((_conditions(src, SOURCE_FIELDS) if src is not None else [])
                         + when_principal, True, for_tcp, action, namespace) for src in froms]
    permissions = [_build((_conditions(op, OPERATION_FIELDS) if op is not None else [])
                          + when_permission, False, for_tcp, action, namespace) for op in tos]
    return {"permissions": permissions, "principals": principals}


def policy_name(namespace: str, name: str, index: int) -> str:
    return f"ns[{namespace}]-policy[{name}]-rule[{index}]"


def rbac_rules(policies: list[Obj], action: str, for_tcp: bool) -> dict[str, Obj]:
    """Envoy `policies` map of one action's AuthorizationPolicies."""
    out: dict[str, Obj] = {}
    for policy in policies:
        meta, spec = policy["metadata"], policy.get("spec") or {}
        ns = meta.get("namespace") or "default"
        rules = spec.get("rules") or []
        if not rules:
            out[policy_name(ns, meta["name"], 0)] = NEVER
        for i, rule in enumerate(rules):
            try:
                out[policy_name(ns, meta["name"], i)] = rule_policy(rule or {}, ns, for_tcp, action)
            except HttpOnly:
                continue  # ALLOW rule a TCP chain cannot evaluate: ignored (allows less)
    return out


def _action(policy: Obj) -> str:
    return (policy.get("spec") or {}).get("action") or "ALLOW"


def dry_run(policy: Obj) -> bool:
    """Istio's `istio.io/dry-run: "true"` annotation: evaluated and counted
    (shadow rules, stats `istio_dry_run_allow_` / `istio_dry_run_deny_`), never enforced."""
    value = ((policy.get("metadata") or {}).get("annotations") or {}).get(DRY_RUN_ANNOTATION)
    return str(value).lower() in ("true", "1", "t")


def rbac_filters(policies: list[Obj], mesh: MeshConfig, for_tcp: bool) -> list[Obj]:
    """The RBAC filters (HTTP or network) for one workload's applicable policies."""
    filters = []
    for action, envoy_action in ACTIONS.items():
        chosen = [p for p in policies if _action(p) == action]
        enforced = [p for p in chosen if not dry_run(p)]
        shadow = [p for p in chosen if dry_run(p)]
        config: Obj = {}
        if enforced or (action == "ALLOW" and mesh.deny_by_default):
            config["rules"] = {"action": envoy_action,
                               "policies": rbac_rules(enforced, action, for_tcp)}
        if shadow:
            config["shadow_rules"] = {"action": envoy_action,
                                      "policies": rbac_rules(shadow, action, for_tcp)}
            if action in ("ALLOW", "DENY"):
                config["shadow_rules_stat_prefix"] = f"istio_dry_run_{action.lower()}_"
        if not config:
            continue
        if for_tcp:
            filters.append({"name": NETWORK_RBAC, "typed_config": typed(
                "envoy.extensions.filters.network.rbac.v3.RBAC", {**config, "stat_prefix": "tcp."})})
        else:
            filters.append({"name": HTTP_RBAC, "typed_config": typed(
                "envoy.extensions.filters.http.rbac.v3.RBAC", config)})
    return filters


# -- what the inbound listener takes ------------------------------------------------

@dataclasses.dataclass(frozen=True)
class InboundAuth:
    """The authentication and authorization filters of one workload's inbound chains:
    `http_filters` go before the router of every HTTP connection manager, `network_filters`
    before every tcp_proxy. Hashable by content (`key`), so workloads under the same
    policies share their translated inbound listener."""

    http_filters: tuple[Obj, ...] = dataclasses.field(default=(), compare=False)
    network_filters: tuple[Obj, ...] = dataclasses.field(default=(), compare=False)
    problems: tuple[str, ...] = dataclasses.field(default=(), compare=False)
    key: str = ""

    @classmethod
    def of(cls, http_filters: list[Obj], network_filters: list[Obj],
           problems: list[str]) -> "InboundAuth":
        key = json.dumps([http_filters, network_filters], sort_keys=True, separators=(",", ":"))
        return cls(tuple(http_filters), tuple(network_filters), tuple(problems), key)


NO_AUTH = InboundAuth.of([], [], [])


def inbound_auth(state: ClusterState, mesh: MeshConfig, namespace: str, labels: dict[str, str],
                 jwks: jwt.JwksTable) -> InboundAuth:
    """RequestAuthentication (jwt_authn) then AuthorizationPolicy (RBAC) for a workload."""
    authn, problems = jwt.jwt_filter(
        applicable_policies(state, jwt.REQUEST_AUTHENTICATIONS, mesh, namespace, labels), jwks)
    policies = []
    for p in applicable_policies(state, AUTHORIZATION_POLICIES, mesh, namespace, labels):
        if _action(p) == "CUSTOM":
            # the API refuses CUSTOM (no ext_authz providers); one that arrives anyway
            # (another source) fails closed, as Istio does for a provider it cannot find
            meta = p["metadata"]
            problems.append(f"AuthorizationPolicy {meta.get('namespace')}/{meta['name']}: "
                            "action CUSTOM is not supported (no extensionProviders); "
                            "its rules deny instead")
            p = {**p, "spec": {**p["spec"], "action": "DENY"}}
        policies.append(p)
    http = ([authn] if authn else []) + rbac_filters(policies, mesh, for_tcp=False)
    return InboundAuth.of(http, rbac_filters(policies, mesh, for_tcp=True), problems)
