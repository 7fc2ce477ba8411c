"""EnvoyFilter (networking.istio.io/v1alpha3): the shape of its patches, not their effect.

`SCHEMA` declares Istio's fields (the patch `value` is free-form: it is Envoy config that
only the patch application and Envoy itself can judge). `validate_envoy_filter(obj)`
checks Istio's rules on the shape:

- `workloadSelector.labels` are valid labels; `workloadSelector` and `targetRefs` are
  exclusive;
- each configPatch has an `applyTo` from Istio's enum (not INVALID), a `patch` with an
  `operation` from Istio's enum (not INVALID) and, except for REMOVE, an object `value`;
- `match.context` is ANY, SIDECAR_INBOUND, SIDECAR_OUTBOUND, GATEWAY or WAYPOINT; at most
  one of listener/routeConfiguration/cluster/waypoint, and the one that fits `applyTo`
  (listener objects match a listener, route objects a routeConfiguration, CLUSTER a
  cluster); `proxy.proxyVersion` is an RE2 regex;
- INSERT_BEFORE/INSERT_AFTER/INSERT_FIRST apply to filters and routes only (NETWORK_FILTER,
  HTTP_FILTER, HTTP_ROUTE, LISTENER_FILTER); REPLACE to NETWORK_FILTER and HTTP_FILTER;
- `priority` is an integer (the schema).

Pure.
"""

from __future__ import annotations

from typing import Any

from shoal.api import errors
from shoal.mesh.validation import common
from shoal.mesh.validation.common import Errs, as_dict, as_list

FILTER_CHAIN_MATCH = {
    "name": "str", "sni": "str", "transportProtocol": "str", "applicationProtocols": "str",
    "filter": {"name": "str", "subFilter": {"name": "str"}}, "destinationPort": "int",
}
MATCH = {
    "context": "str",
    "proxy": {"proxyVersion": "str", "metadata": "Dict[str, str]"},
    "listener": {"portNumber": "int", "portName": "str", "filterChain": FILTER_CHAIN_MATCH,
                 "listenerFilter": "str", "name": "str"},
    "routeConfiguration": {
        "portNumber": "int", "portName": "str", "gateway": "str", "name": "str",
        "vhost": {"name": "str", "domainName": "str",
                  "route": {"name": "str", "action": "str"}},
    },
    "cluster": {"portNumber": "int", "service": "str", "subset": "str", "name": "str"},
    "waypoint": {"portNumber": "int", "route": {"name": "str"},
                 "filter": {"name": "str", "subFilter": {"name": "str"}}},
}
SPEC = {
    "workloadSelector": {"labels": "Dict[str, str]"},
    "targetRefs": [{"group": "str", "kind": "str", "name": "str", "namespace": "str"}],
    "configPatches": [{
        "applyTo": "str",
        "match": MATCH,
        "patch": {"operation": "str", "value": "object", "filterClass": "str"},
    }],
    "priority": "int",
}
SCHEMA = {"spec": SPEC, "status": "object"}
"""The structural schema `kinds.register(schema=...)` takes."""

LISTENER_OBJECTS = ["LISTENER", "FILTER_CHAIN", "NETWORK_FILTER", "HTTP_FILTER",
                    "LISTENER_FILTER"]
ROUTE_OBJECTS = ["ROUTE_CONFIGURATION", "VIRTUAL_HOST", "HTTP_ROUTE"]
APPLY_TO = [*LISTENER_OBJECTS[:4], *ROUTE_OBJECTS, "CLUSTER", "EXTENSION_CONFIG", "BOOTSTRAP",
            "LISTENER_FILTER"]
CONTEXTS = ["ANY", "SIDECAR_INBOUND", "SIDECAR_OUTBOUND", "GATEWAY", "WAYPOINT"]
OPERATIONS = ["MERGE", "ADD", "REMOVE", "INSERT_BEFORE", "INSERT_AFTER", "INSERT_FIRST",
              "REPLACE", "MERGE_AND_REPLACE_LIST"]
FILTER_CLASSES = ["UNSPECIFIED", "AUTHN", "AUTHZ", "STATS"]
ROUTE_ACTIONS = ["ANY", "ROUTE", "REDIRECT", "DIRECT_RESPONSE"]
INSERTABLE = ["NETWORK_FILTER", "HTTP_FILTER", "HTTP_ROUTE", "LISTENER_FILTER"]
REPLACEABLE = ["NETWORK_FILTER", "HTTP_FILTER"]
_MATCH_KINDS = ("listener", "routeConfiguration", "cluster", "waypoint")


def validate_envoy_filter(obj: dict[str, Any]) -> Errs:
    """Every shape problem of an EnvoyFilter, with field paths under `spec.`."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [errors.required("spec")] if spec is None else []
    errs: Errs = []
    selector = spec.get("workloadSelector")
    errs += common.labels("spec.workloadSelector.labels", as_dict(selector).get("labels"))
    if selector is not None and as_list(spec.get("targetRefs")):
        errs.append(errors.forbidden("spec.targetRefs",
                                     "only one of targetRefs or workloadSelector can be set"))
    for i, ref in enumerate(as_list(spec.get("targetRefs"))):
        ref = as_dict(ref)
        for key in ("kind", "name"):
            if not ref.get(key):
                errs.append(errors.required(f"spec.targetRefs[{i}].{key}"))
    for i, patch in enumerate(as_list(spec.get("configPatches"))):
        errs += _config_patch(f"spec.configPatches[{i}]", as_dict(patch))
    return errs


def _config_patch(path: str, cp: dict[str, Any]) -> Errs:
    errs: Errs = []
    apply_to = cp.get("applyTo")
    if apply_to in (None, "", "INVALID"):
        errs.append(errors.required(f"{path}.applyTo", "one of " + ", ".join(APPLY_TO)))
    else:
        errs += common.enum(f"{path}.applyTo", apply_to, APPLY_TO)
    match = as_dict(cp.get("match"))
    errs += common.enum(f"{path}.match.context", match.get("context"), CONTEXTS)
    errs += common.one_of_fields(f"{path}.match", match, _MATCH_KINDS)
    errs += common.regex(f"{path}.match.proxy.proxyVersion",
                         as_dict(match.get("proxy")).get("proxyVersion"))
    wanted = ("listener" if apply_to in LISTENER_OBJECTS else
              "routeConfiguration" if apply_to in ROUTE_OBJECTS else
              "cluster" if apply_to == "CLUSTER" else None)
    for kind in _MATCH_KINDS:
        if match.get(kind) is not None and wanted is not None and kind not in (wanted, "waypoint"):
            errs.append(errors.invalid(f"{path}.match.{kind}", apply_to,
                                       f"applyTo {apply_to} needs a {wanted} match, not {kind}"))
    errs += common.enum(f"{path}.match.routeConfiguration.vhost.route.action",
                        as_dict(as_dict(as_dict(match.get("routeConfiguration")).get("vhost"))
                                .get("route")).get("action"), ROUTE_ACTIONS)
    for kind in ("listener", "routeConfiguration", "cluster", "waypoint"):
        errs += common.port(f"{path}.match.{kind}.portNumber",
                            as_dict(match.get(kind)).get("portNumber") or None)
    if cp.get("patch") is None:
        errs.append(errors.required(f"{path}.patch"))
        return errs
    patch = as_dict(cp.get("patch"))
    operation = patch.get("operation")
    if operation in (None, "", "INVALID"):
        errs.append(errors.required(f"{path}.patch.operation", "one of " + ", ".join(OPERATIONS)))
    else:
        errs += common.enum(f"{path}.patch.operation", operation, OPERATIONS)
    if operation in ("INSERT_BEFORE", "INSERT_AFTER", "INSERT_FIRST") and \
            apply_to in APPLY_TO and apply_to not in INSERTABLE:
        errs.append(errors.invalid(f"{path}.patch.operation", operation,
                                   f"only valid when applyTo is one of {', '.join(INSERTABLE)}"))
    if operation == "REPLACE" and apply_to in APPLY_TO and apply_to not in REPLACEABLE:
        errs.append(errors.invalid(f"{path}.patch.operation", operation,
                                   f"only valid when applyTo is one of {', '.join(REPLACEABLE)}"))
    value = patch.get("value")
    if operation in OPERATIONS and operation != "REMOVE":
        if value is None:
            errs.append(errors.required(f"{path}.patch.value",
                                        f"a {operation} patch needs a value"))
        elif not isinstance(value, dict):
            errs.append(errors.invalid(f"{path}.patch.value", type(value).__name__,
                                       "must be an object (Envoy configuration)"))
    errs += common.enum(f"{path}.patch.filterClass", patch.get("filterClass"), FILTER_CLASSES)
    return errs
