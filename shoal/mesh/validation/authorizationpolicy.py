"""AuthorizationPolicy (security.istio.io v1/v1beta1): its schema and Istio's rules.

`SCHEMA` declares every field of Istio's API (JSON names; ports are strings, as in
Istio's CRD), so unknown fields and wrong types are refused with their path.
`validate_authorization_policy(obj)` adds Istio's semantic rules (its
`ValidateAuthorizationPolicy`), each error at its field path:

- at most one of selector / targetRef / targetRefs (see `common.workload_target`);
- `action` ALLOW (default), DENY or AUDIT. CUSTOM (delegation to an ext_authz server
  named in `meshConfig.extensionProviders`) is refused: shoal has no extension
  providers, and a policy that silently did nothing would be worse. `provider` is
  only for CUSTOM;
- a DENY policy needs `rules` (one that can never match is a mistake; `[{}]` denies all);
- `from`/`to`, when given, are non-empty, each entry has a non-empty `source` /
  `operation`; no value is empty; ipBlocks/remoteIpBlocks (and the not forms) are IPs or
  CIDRs; ports are numbers 0-65535; serviceAccounts are `sa` or `ns/sa` without `*`
  (at most 16) and exclude principals/namespaces; trustDomains have at most one `*`,
  at either end, and no `/`; paths with `{*}`/`{**}` templates are well formed;
- `when`: a key from Istio's attribute list (`request.headers[NAME]`, `source.ip`,
  `remote.ip`, `source.namespace`, `source.serviceAccount`, `source.trustDomain`,
  `source.principal`, `request.auth.principal|audiences|presenter`,
  `request.auth.claims[NAME]...`, `destination.ip`, `destination.port`,
  `connection.sni`, `experimental.envoy.filters.*[KEY]`), with `values` or `notValues`
  of the right form. An unknown key is refused with its path.

Pure.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from shoal.api import errors
from shoal.mesh.validation import common
from shoal.mesh.validation.common import Errs, as_dict, as_list

SOURCE = {name: "List[str]" for base in (
    "principals", "requestPrincipals", "namespaces", "serviceAccounts", "ipBlocks",
    "remoteIpBlocks", "trustDomains")
    for name in (base, "not" + base[0].upper() + base[1:])}
OPERATION = {name: "List[str]" for base in ("hosts", "ports", "methods", "paths")
             for name in (base, "not" + base[0].upper() + base[1:])}
RULE = {"from": [{"source": SOURCE}], "to": [{"operation": OPERATION}],
        "when": [{"key": "str", "values": "List[str]", "notValues": "List[str]"}]}
SPEC = {
    "selector": {"matchLabels": "Dict[str, str]"},
    "targetRef": common.TARGET_REF,
    "targetRefs": [common.TARGET_REF],
    "rules": [RULE],
    "action": "str",
    "provider": {"name": "str"},
}
SCHEMA = {"spec": SPEC, "status": "object"}

ACTIONS = ["ALLOW", "DENY", "AUDIT"]
CUSTOM_REFUSED = ("CUSTOM delegates to an external authorizer (meshConfig.extensionProviders), "
                  "which shoal does not support; use ALLOW, DENY or AUDIT")
ATTRIBUTES = ("request.headers[NAME]", "source.ip", "remote.ip", "source.namespace",
              "source.serviceAccount", "source.trustDomain", "source.principal",
              "request.auth.principal", "request.auth.audiences", "request.auth.presenter",
              "request.auth.claims[NAME]", "destination.ip", "destination.port",
              "connection.sni", "experimental.envoy.filters.FILTER[KEY]")
_PLAIN_KEYS = {"source.namespace", "source.principal", "request.auth.principal",
               "request.auth.audiences", "request.auth.presenter", "connection.sni"}
_MAP_KEYS = (
    ("request.headers", (re.compile(r"request\.headers\[[^\[\]]+\]"), "request.headers[NAME]")),
    ("request.auth.claims", (re.compile(r"request\.auth\.claims(\[[^\[\]]+\])+"),
                             "request.auth.claims[NAME] (nested: [a][b])")),
    ("experimental.envoy.filters.", (re.compile(r"experimental\.envoy\.filters\.[^\[\]]+\[[^\[\]]+\]"),
                                     "experimental.envoy.filters.FILTER[KEY]")),
)
_VALID_LITERAL = re.compile(r"^[a-zA-Z0-9\-._~%!$&'()+,;:@=]+$")


def validate_authorization_policy(obj: dict[str, Any]) -> Errs:
    spec = obj.get("spec")
    if spec is None:
        return []  # `spec: {}` or none: allow-nothing, valid
    if not isinstance(spec, dict):
        return []  # the schema reports it
    errs = common.workload_target(spec)
    action = spec.get("action") or "ALLOW"
    if action == "CUSTOM":
        errs.append(errors.invalid("spec.action", action, CUSTOM_REFUSED))
    else:
        errs += common.enum("spec.action", action, ACTIONS)
        if spec.get("provider") is not None:
            errs.append(errors.forbidden("spec.provider", "provider is only for action CUSTOM"))
    rules = spec.get("rules")
    if action == "DENY" and rules is None:
        errs.append(errors.required("spec.rules", "a DENY policy without rules never matches; "
                                    "add an empty rule {} to deny every request"))
    for i, rule in enumerate(as_list(rules)):
        errs += _rule(f"spec.rules[{i}]", rule)
    return errs


def _rule(path: str, rule: Any) -> Errs:
    if rule is None:
        return [errors.required(path, "a rule must not be null (use {} to match everything)")]
    rule = as_dict(rule)
    errs: Errs = []
    for field, inner, check in (("from", "source", _source), ("to", "operation", _operation)):
        if field in rule and not as_list(rule[field]):
            errs.append(errors.required(f"{path}.{field}", f"`{field}` must not be empty"))
        for j, item in enumerate(as_list(rule.get(field))):
            at = f"{path}.{field}[{j}].{inner}"
            body = as_dict(item).get(inner)
            if not body:
                errs.append(errors.required(at, "must set at least one field"))
            else:
                errs += check(at, as_dict(body))
    for j, condition in enumerate(as_list(rule.get("when"))):
        errs += _condition(f"{path}.when[{j}]", as_dict(condition))
    return errs


def _values(path: str, obj: dict[str, Any], field: str) -> list[tuple[str, str]]:
    """(path, value) of each entry of a string list; empty strings reported by caller."""
    return [(f"{path}.{field}[{k}]", v) for k, v in enumerate(as_list(obj.get(field)))
            if isinstance(v, str)]


def _not_empty(path: str, obj: dict[str, Any]) -> Errs:
    return [errors.invalid(at, v, "must not be empty") for field in obj
            for at, v in _values(path, obj, field) if v == ""]


def _source(path: str, src: dict[str, Any]) -> Errs:
    errs = _not_empty(path, src)
    for field in ("ipBlocks", "notIpBlocks", "remoteIpBlocks", "notRemoteIpBlocks"):
        errs += [e for at, v in _values(path, src, field) if v for e in _ip(at, v)]
    accounts = [f for f in ("serviceAccounts", "notServiceAccounts") if src.get(f)]
    others = [f for f in ("principals", "notPrincipals", "namespaces", "notNamespaces") if src.get(f)]
    if accounts and others:
        errs.append(errors.invalid(f"{path}.{accounts[0]}", src[accounts[0]],
                                   f"cannot be set together with {others[0]}"))
    for field in accounts:
        if len(as_list(src[field])) > 16:
            errs.append(errors.invalid(f"{path}.{field}", len(src[field]),
                                       "may not have more than 16 values"))
        errs += [e for at, v in _values(path, src, field) if v for e in _service_account(at, v)]
    for field in ("trustDomains", "notTrustDomains"):
        errs += [e for at, v in _values(path, src, field) if v for e in _trust_domain(at, v)]
    return errs


def _operation(path: str, op: dict[str, Any]) -> Errs:
    errs = _not_empty(path, op)
    for field in ("ports", "notPorts"):
        errs += [e for at, v in _values(path, op, field) if v for e in _port(at, v)]
    for field in ("paths", "notPaths"):
        errs += [e for at, v in _values(path, op, field) if v for e in _path_template(at, v)]
    return errs


def _ip(path: str, value: str) -> Errs:
    try:
        if "/" in value:
            ipaddress.ip_network(value, strict=False)
        else:
            ipaddress.ip_address(value)
    except ValueError:
        return [errors.invalid(path, value, "must be an IP address or a CIDR range "
                               "(e.g. 10.0.0.1 or 10.0.0.0/16)")]
    return []


def _port(path: str, value: str) -> Errs:
    if not value.isdigit() or int(value) > 65535:
        return [errors.invalid(path, value, "must be a port number 0-65535, as a string")]
    return []


def _service_account(path: str, value: str) -> Errs:
    if "*" in value:
        return [errors.invalid(path, value, "wildcards are not allowed in service accounts")]
    if value.count("/") > 1 or value.startswith("/") or value.endswith("/"):
        return [errors.invalid(path, value, "must be SERVICE_ACCOUNT or NAMESPACE/SERVICE_ACCOUNT")]
    if len(value) > 320:
        return [errors.invalid(path, value, "must be no more than 320 characters")]
    return []


def _trust_domain(path: str, value: str) -> Errs:
    stars = value.count("*")
    if stars > 1 or (stars == 1 and value != "*" and not value.startswith("*")
                     and not value.endswith("*")):
        return [errors.invalid(path, value, "at most one wildcard, at the start or the end")]
    if "/" in value:
        return [errors.invalid(path, value, "a trust domain must not contain '/'")]
    return []


def _path_template(path: str, value: str) -> Errs:
    if "{" not in value and "}" not in value:
        return []
    seen_any = False
    for glob in value.strip("/").split("/"):
        if glob in ("{*}", "{**}") and not seen_any:
            seen_any = glob == "{**}"
            continue
        if glob in ("{*}", "{**}"):
            return [errors.invalid(path, value, "{**} must be the last operator of a path template")]
        if "{" in glob or "}" in glob:
            return [errors.invalid(path, value, "only {*} and {**} may appear in braces, as "
                                   "whole path segments")]
        if not _VALID_LITERAL.match(glob):
            return [errors.invalid(path, value, f"segment {glob!r} is not a valid path literal")]
    return []


def _condition(path: str, condition: dict[str, Any]) -> Errs:
    key = condition.get("key")
    if not key:
        return [errors.required(f"{path}.key")]
    if not isinstance(key, str):
        return []
    values, not_values = as_list(condition.get("values")), as_list(condition.get("notValues"))
    if not values and not not_values:
        return [errors.required(f"{path}.values", f"at least one of values or notValues must "
                                f"be set for key {key}")]
    problem = _attribute_problem(key)
    if problem is not None:
        return [errors.invalid(f"{path}.key", key, problem)]
    errs = _not_empty(path, condition)
    for field in ("values", "notValues"):
        for at, v in _values(path, condition, field):
            if not v:
                continue
            if key in ("source.ip", "remote.ip", "destination.ip"):
                errs += _ip(at, v)
            elif key == "destination.port":
                errs += _port(at, v)
            elif key == "source.serviceAccount":
                errs += _service_account(at, v)
            elif key == "source.trustDomain":
                errs += _trust_domain(at, v)
    return errs


def _attribute_problem(key: str) -> str | None:
    """Why `key` is not one of Istio's condition attributes (None if it is)."""
    if key in _PLAIN_KEYS or key in ("source.ip", "remote.ip", "source.serviceAccount",
                                     "source.trustDomain", "destination.ip", "destination.port"):
        return None
    for prefix, form in _MAP_KEYS:
        if key.startswith(prefix):
            return None if form[0].fullmatch(key) else f"must have the form {form[1]}"
    if key == "destination.namespace":
        return "replaced by the policy's metadata.namespace"
    if key.startswith("destination.labels"):
        return "replaced by the workload selector"
    if key in ("destination.name", "destination.user"):
        return "deprecated attribute (only in Istio's v1alpha1)"
    return "unknown attribute; supported: " + ", ".join(ATTRIBUTES)
