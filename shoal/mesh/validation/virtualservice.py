"""VirtualService (networking.istio.io v1/v1beta1/v1alpha3): its schema and Istio's rules.

`SCHEMA` declares every field of Istio's v1 API (JSON names), so the API refuses unknown
fields and wrong types with the field path. `validate_virtual_service(obj)` adds Istio's
semantic rules and returns every problem as `FieldError`s:

- `hosts` required and valid (short names, FQDNs, `*`-prefixed wildcards, IPs), except
  in a *delegate* VirtualService (one with no hosts), which may not have gateways, tcp or
  tls routes, nor delegate further; `*` alone is not allowed for the `mesh` gateway;
- every http route has exactly one of `route`, `redirect`, `directResponse`, `delegate`;
  `rewrite` is not allowed with `redirect`; `mirror` and `mirrors` are exclusive;
- weights 0-100 summing to 100 when a route has several destinations (a single
  destination may omit its weight); subset names are DNS-1123 labels; ports 1-65535;
- durations as Istio writes them (>= 1ms), regexes valid RE2, percentages 0-100,
  abort httpStatus 200-599, redirectCode 300-399, directResponse status 200-599,
  retries.attempts >= 0 and `retryOn` from Envoy's list or HTTP status codes;
- tls routes need `match` with `sniHosts`, each within one of the VirtualService hosts;
- `exportTo` entries are ".", "*" or namespace names.

A destination host or subset that does not exist is *accepted* (as Istio does): that is
`shoal.mesh.analyze`'s to report. Pure.
"""

from __future__ import annotations

from typing import Any

from shoal.api import errors, schema
from shoal.mesh.validation import common
from shoal.mesh.validation.common import Errs, as_dict, as_list

STRING_MATCH = {"exact": "str", "prefix": "str", "regex": "str"}
_STRING_MATCH_MAP = schema.MapNode(schema.from_fields(STRING_MATCH, name="StringMatch"))
PORT_SELECTOR = {"number": "int"}
DESTINATION = {"host": "str", "subset": "str", "port": PORT_SELECTOR}
PERCENT = {"value": "float"}
HEADER_OPERATIONS = {"set": "Dict[str, str]", "add": "Dict[str, str]", "remove": "List[str]"}
HEADERS = {"request": HEADER_OPERATIONS, "response": HEADER_OPERATIONS}

HTTP_MATCH = {
    "name": "str", "uri": STRING_MATCH, "scheme": STRING_MATCH, "method": STRING_MATCH,
    "authority": STRING_MATCH, "headers": _STRING_MATCH_MAP, "port": "int",
    "sourceLabels": "Dict[str, str]", "gateways": "List[str]",
    "queryParams": _STRING_MATCH_MAP, "ignoreUriCase": "bool",
    "withoutHeaders": _STRING_MATCH_MAP, "sourceNamespace": "str", "statPrefix": "str",
}
HTTP_ROUTE = {
    "name": "str",
    "match": [HTTP_MATCH],
    "route": [{"destination": DESTINATION, "weight": "int", "headers": HEADERS}],
    "redirect": {"uri": "str", "authority": "str", "port": "int", "derivePort": "str",
                 "scheme": "str", "redirectCode": "int", "prefixRewrite": "str"},
    "directResponse": {"status": "int", "body": {"string": "str", "bytes": "bytes"}},
    "delegate": {"name": "str", "namespace": "str"},
    "rewrite": {"uri": "str", "authority": "str",
                "uriRegexRewrite": {"match": "str", "rewrite": "str"}},
    "timeout": "str",
    "retries": {"attempts": "int", "perTryTimeout": "str", "retryOn": "str",
                "retryRemoteLocalities": "bool", "retryIgnorePreviousHosts": "bool",
                "backoff": "str"},
    "fault": {
        "delay": {"percent": "int", "fixedDelay": "str", "exponentialDelay": "str",
                  "percentage": PERCENT},
        "abort": {"httpStatus": "int", "grpcStatus": "str", "http2Error": "str",
                  "percentage": PERCENT},
    },
    "mirror": DESTINATION,
    "mirrors": [{"destination": DESTINATION, "percentage": PERCENT}],
    "mirrorPercent": "int",
    "mirrorPercentage": PERCENT,
    "corsPolicy": {
        "allowOrigin": "List[str]", "allowOrigins": [STRING_MATCH], "allowMethods": "List[str]",
        "allowHeaders": "List[str]", "exposeHeaders": "List[str]", "maxAge": "str",
        "allowCredentials": "bool", "unmatchedPreflights": "str",
    },
    "headers": HEADERS,
}
ROUTE_DESTINATION = {"destination": DESTINATION, "weight": "int"}
L4_MATCH = {"destinationSubnets": "List[str]", "port": "int", "sourceSubnet": "str",
            "sourceLabels": "Dict[str, str]", "gateways": "List[str]", "sourceNamespace": "str"}
TLS_MATCH = {"sniHosts": "List[str]", "destinationSubnets": "List[str]", "port": "int",
             "sourceLabels": "Dict[str, str]", "gateways": "List[str]", "sourceNamespace": "str"}
SPEC = {
    "hosts": "List[str]",
    "gateways": "List[str]",
    "http": [HTTP_ROUTE],
    "tls": [{"match": [TLS_MATCH], "route": [ROUTE_DESTINATION]}],
    "tcp": [{"match": [L4_MATCH], "route": [ROUTE_DESTINATION]}],
    "exportTo": "List[str]",
}
SCHEMA = {"spec": SPEC, "status": "object"}
"""The structural schema `kinds.register(schema=...)` takes."""

RETRY_ON = ["5xx", "gateway-error", "reset", "reset-before-request", "connect-failure",
            "envoy-ratelimited", "retriable-4xx", "refused-stream", "retriable-status-codes",
            "retriable-headers", "http3-post-connect-failure", "cancelled",
            "deadline-exceeded", "internal", "resource-exhausted", "unavailable"]
"""Envoy's HTTP and gRPC retry conditions (`x-envoy-retry-on`, `x-envoy-retry-grpc-on`)."""
GRPC_STATUSES = ["OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
                 "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
                 "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
                 "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"]
HTTP_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"]
DERIVE_PORTS = ["FROM_PROTOCOL_DEFAULT", "FROM_REQUEST_PORT"]
UNMATCHED_PREFLIGHTS = ["UNSPECIFIED", "FORWARD", "IGNORE"]
MESH_GATEWAY = "mesh"


def validate_virtual_service(obj: dict[str, Any]) -> Errs:
    """Every semantic problem of a VirtualService, with field paths under `spec.`."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [errors.required("spec")] if spec is None else []
    errs: Errs = []
    hosts = [h for h in as_list(spec.get("hosts")) if isinstance(h, str)]
    gateways = [g for g in as_list(spec.get("gateways")) if isinstance(g, str)]
    delegate = not hosts
    bound_to_mesh = not gateways or MESH_GATEWAY in gateways
    if delegate:
        errs += _delegate_rules(spec)
    for i, value in enumerate(hosts):
        path = f"spec.hosts[{i}]"
        errs += common.host(path, value, allow_ip=True)
        if value == "*" and bound_to_mesh:
            errs.append(errors.invalid(path, value, 'wildcard host "*" is not allowed for '
                                       'virtual services bound to the mesh gateway'))
        if hosts.index(value) != i:
            errs.append(errors.duplicate(path, value))
    for i, value in enumerate(gateways):
        errs += common.gateway_name(f"spec.gateways[{i}]", value)
    errs += common.export_to("spec.exportTo", spec.get("exportTo"))
    http, tls, tcp = (as_list(spec.get(k)) for k in ("http", "tls", "tcp"))
    if not (http or tls or tcp):
        errs.append(errors.required("spec.http", "a virtual service needs at least one "
                                    "http, tls or tcp route"))
    for i, route in enumerate(http):
        errs += _http_route(f"spec.http[{i}]", as_dict(route), in_delegate=delegate)
    for i, route in enumerate(tls):
        errs += _tls_route(f"spec.tls[{i}]", as_dict(route), hosts)
    for i, route in enumerate(tcp):
        errs += _tcp_route(f"spec.tcp[{i}]", as_dict(route))
    return errs


def _delegate_rules(spec: dict[str, Any]) -> Errs:
    errs: Errs = []
    if as_list(spec.get("gateways")):
        errs.append(errors.forbidden("spec.gateways", "a delegate virtual service (one with "
                                     "no hosts) must not name gateways"))
    for key in ("tls", "tcp"):
        if as_list(spec.get(key)):
            errs.append(errors.forbidden(f"spec.{key}", f"a delegate virtual service (one with "
                                         f"no hosts) must not have {key} routes"))
    return errs


# -- http -----------------------------------------------------------------------------------

def _http_route(path: str, route: dict[str, Any], *, in_delegate: bool) -> Errs:
    errs: Errs = []
    actions = [k for k in ("route", "redirect", "directResponse", "delegate")
               if route.get(k) not in (None, [], {})]
    if not actions:
        errs.append(errors.required(f"{path}.route", "an http route needs one of route, "
                                    "redirect, directResponse or delegate"))
    elif len(actions) > 1:
        errs.append(errors.forbidden(f"{path}.{actions[1]}", f"an http route may have only one "
                                     f"of route, redirect, directResponse or delegate "
                                     f"(it has {' and '.join(actions)})"))
    if route.get("rewrite") is not None and route.get("redirect") is not None:
        errs.append(errors.forbidden(f"{path}.rewrite", "rewrite cannot be used with redirect"))
    if route.get("mirror") is not None and as_list(route.get("mirrors")):
        errs.append(errors.forbidden(f"{path}.mirrors", "only one of mirror and mirrors may be set"))
    for i, match in enumerate(as_list(route.get("match"))):
        errs += _http_match(f"{path}.match[{i}]", as_dict(match))
    destinations = as_list(route.get("route"))
    errs += _weights(f"{path}.route", destinations)
    for i, dest in enumerate(destinations):
        dest = as_dict(dest)
        errs += _destination(f"{path}.route[{i}].destination", dest.get("destination"))
        errs += _headers(f"{path}.route[{i}].headers", dest.get("headers"))
    if "redirect" in route:
        errs += _redirect(f"{path}.redirect", as_dict(route.get("redirect")))
    if "directResponse" in route:
        errs += _direct_response(f"{path}.directResponse", as_dict(route.get("directResponse")))
    if "delegate" in route:
        delegate = as_dict(route.get("delegate"))
        if in_delegate:
            errs.append(errors.forbidden(f"{path}.delegate", "a delegate virtual service "
                                         "cannot delegate further"))
        if not delegate.get("name"):
            errs.append(errors.required(f"{path}.delegate.name"))
        errs += common.dns_label(f"{path}.delegate.namespace", delegate.get("namespace"))
    if "rewrite" in route:
        errs += _rewrite(f"{path}.rewrite", as_dict(route.get("rewrite")))
    errs += common.duration(f"{path}.timeout", route.get("timeout"))
    if "retries" in route:
        errs += _retries(f"{path}.retries", as_dict(route.get("retries")))
    if "fault" in route:
        errs += _fault(f"{path}.fault", as_dict(route.get("fault")))
    if route.get("mirror") is not None:
        errs += _destination(f"{path}.mirror", route.get("mirror"))
    for i, mirror in enumerate(as_list(route.get("mirrors"))):
        mirror = as_dict(mirror)
        errs += _destination(f"{path}.mirrors[{i}].destination", mirror.get("destination"))
        errs += common.percent(f"{path}.mirrors[{i}].percentage", mirror.get("percentage"))
    errs += common.int_between(f"{path}.mirrorPercent", route.get("mirrorPercent"), 0, 100)
    errs += common.percent(f"{path}.mirrorPercentage", route.get("mirrorPercentage"))
    if "corsPolicy" in route:
        errs += _cors(f"{path}.corsPolicy", as_dict(route.get("corsPolicy")))
    errs += _headers(f"{path}.headers", route.get("headers"))
    return errs


def _string_match(path: str, match: Any) -> Errs:
    """At most one of exact/prefix/regex (an empty match tests presence); regex is RE2."""
    match = as_dict(match)
    errs = common.one_of_fields(path, match, ("exact", "prefix", "regex"))
    errs += common.regex(f"{path}.regex", match.get("regex"))
    return errs


def _http_match(path: str, match: dict[str, Any]) -> Errs:
    errs: Errs = []
    for key in ("uri", "scheme", "method", "authority"):
        if match.get(key) is not None:
            errs += _string_match(f"{path}.{key}", match[key])
    for key in ("headers", "withoutHeaders", "queryParams"):
        for name, value in as_dict(match.get(key)).items():
            at = f"{path}.{key}[{name}]"
            if key != "queryParams":
                errs += common.header_name(at, name, claims=True)
            errs += _string_match(at, value)
    return errs + _source_match(path, match)


def _source_match(path: str, match: dict[str, Any]) -> Errs:
    """The fields HTTP and L4 matches share: port, source labels/namespace, gateways."""
    errs = common.port(f"{path}.port", match.get("port"))
    errs += common.labels(f"{path}.sourceLabels", match.get("sourceLabels"))
    for i, gateway in enumerate(as_list(match.get("gateways"))):
        errs += common.gateway_name(f"{path}.gateways[{i}]", gateway)
    errs += common.dns_label(f"{path}.sourceNamespace", match.get("sourceNamespace") or None)
    return errs


def _weights(path: str, destinations: list[Any]) -> Errs:
    """Each weight 0-100; several destinations must sum to 100 (one may omit it)."""
    errs: Errs = []
    total = 0
    for i, dest in enumerate(destinations):
        weight = as_dict(dest).get("weight")
        if type(weight) is int:
            errs += common.int_between(f"{path}[{i}].weight", weight, 0, 100)
            total += weight
    if len(destinations) > 1 and total != 100 and not errs:
        errs.append(errors.invalid(path, total, "total destination weight must be 100 "
                                   f"(the weights of these {len(destinations)} destinations "
                                   f"sum to {total})"))
    if len(destinations) == 1:
        weight = as_dict(destinations[0]).get("weight")
        if type(weight) is int and weight not in (0, 100) and not errs:
            errs.append(errors.invalid(f"{path}[0].weight", weight, "a single destination "
                                       "takes all traffic: omit the weight or set it to 100"))
    return errs


def _destination(path: str, dest: Any) -> Errs:
    if dest is None:
        return [errors.required(path)]
    dest = as_dict(dest)
    errs: Errs = []
    host = dest.get("host")
    if not host:
        errs.append(errors.required(f"{path}.host"))
    elif host == "*":
        errs.append(errors.invalid(f"{path}.host", host, "a destination host cannot be '*'"))
    else:
        errs += common.host(f"{path}.host", host, allow_ip=True)
    errs += common.dns_label(f"{path}.subset", dest.get("subset") or None)
    port = as_dict(dest.get("port"))
    if "number" in port:
        errs += common.port(f"{path}.port.number", port.get("number"))
    return errs


def _headers(path: str, headers: Any) -> Errs:
    errs: Errs = []
    for side in ("request", "response"):
        ops = as_dict(as_dict(headers).get(side))
        for op in ("set", "add"):
            for name in as_dict(ops.get(op)):
                errs += _header_operation(f"{path}.{side}.{op}[{name}]", name)
        for i, name in enumerate(as_list(ops.get("remove"))):
            errs += _header_operation(f"{path}.{side}.remove[{i}]", name)
    return errs


def _header_operation(path: str, name: Any) -> Errs:
    if isinstance(name, str) and name.startswith(":"):
        return [errors.invalid(path, name, "pseudo-headers (':path', ...) cannot be changed")]
    return common.header_name(path, name)


def _redirect(path: str, redirect: dict[str, Any]) -> Errs:
    errs: Errs = []
    if not any(redirect.get(k) for k in ("uri", "authority", "port", "derivePort", "scheme",
                                         "prefixRewrite")):
        errs.append(errors.required(path, "a redirect needs uri, authority, scheme, port, "
                                    "derivePort or prefixRewrite"))
    errs += common.one_of_fields(path, redirect, ("port", "derivePort"))
    errs += common.one_of_fields(path, redirect, ("uri", "prefixRewrite"))
    errs += common.port(f"{path}.port", redirect.get("port") or None)
    errs += common.enum(f"{path}.derivePort", redirect.get("derivePort"), DERIVE_PORTS)
    code = redirect.get("redirectCode")
    if code not in (None, 0):
        errs += common.int_between(f"{path}.redirectCode", code, 300, 399)
    return errs


def _direct_response(path: str, response: dict[str, Any]) -> Errs:
    errs: Errs = []
    status = response.get("status")
    if status is None:
        errs.append(errors.required(f"{path}.status"))
    errs += common.int_between(f"{path}.status", status, 200, 599)
    errs += common.one_of_fields(f"{path}.body", response.get("body"), ("string", "bytes"))
    return errs


def _rewrite(path: str, rewrite: dict[str, Any]) -> Errs:
    errs = common.one_of_fields(path, rewrite, ("uri", "uriRegexRewrite"))
    regex_rewrite = rewrite.get("uriRegexRewrite")
    if regex_rewrite is not None:
        regex_rewrite = as_dict(regex_rewrite)
        if not regex_rewrite.get("match"):
            errs.append(errors.required(f"{path}.uriRegexRewrite.match"))
        errs += common.regex(f"{path}.uriRegexRewrite.match", regex_rewrite.get("match"))
    return errs


def _retries(path: str, retries: dict[str, Any]) -> Errs:
    errs = common.non_negative(f"{path}.attempts", retries.get("attempts"))
    errs += common.duration(f"{path}.perTryTimeout", retries.get("perTryTimeout"))
    errs += common.duration(f"{path}.backoff", retries.get("backoff"))
    retry_on = retries.get("retryOn")
    if isinstance(retry_on, str) and retry_on:
        for policy in retry_on.split(","):
            policy = policy.strip()
            if policy.isdigit():
                if not 100 <= int(policy) <= 599:
                    errs.append(errors.invalid(f"{path}.retryOn", policy,
                                               "a retry status code must be 100-599"))
            elif policy not in RETRY_ON:
                errs.append(errors.unsupported(f"{path}.retryOn", policy, RETRY_ON))
    return errs


def _fault(path: str, fault: dict[str, Any]) -> Errs:
    errs: Errs = []
    if fault.get("delay") is None and fault.get("abort") is None:
        errs.append(errors.required(path, "a fault needs delay or abort"))
    if fault.get("delay") is not None:
        delay, at = as_dict(fault["delay"]), f"{path}.delay"
        errs += common.one_of_fields(at, delay, ("fixedDelay", "exponentialDelay"),
                                     required=True)
        errs += common.duration(f"{at}.fixedDelay", delay.get("fixedDelay"))
        errs += common.duration(f"{at}.exponentialDelay", delay.get("exponentialDelay"))
        errs += common.int_between(f"{at}.percent", delay.get("percent"), 0, 100)
        errs += common.percent(f"{at}.percentage", delay.get("percentage"))
    if fault.get("abort") is not None:
        abort, at = as_dict(fault["abort"]), f"{path}.abort"
        errs += common.one_of_fields(at, abort, ("httpStatus", "grpcStatus", "http2Error"),
                                     required=True)
        errs += common.int_between(f"{at}.httpStatus", abort.get("httpStatus"), 200, 599)
        errs += common.enum(f"{at}.grpcStatus", abort.get("grpcStatus"), GRPC_STATUSES)
        errs += common.percent(f"{at}.percentage", abort.get("percentage"))
    return errs


def _cors(path: str, cors: dict[str, Any]) -> Errs:
    errs: Errs = []
    for i, origin in enumerate(as_list(cors.get("allowOrigins"))):
        errs += _string_match(f"{path}.allowOrigins[{i}]", origin)
    for i, method in enumerate(as_list(cors.get("allowMethods"))):
        errs += common.enum(f"{path}.allowMethods[{i}]", method, HTTP_METHODS)
    for key in ("allowHeaders", "exposeHeaders"):
        for i, name in enumerate(as_list(cors.get(key))):
            if name != "*":
                errs += common.header_name(f"{path}.{key}[{i}]", name)
    errs += common.duration(f"{path}.maxAge", cors.get("maxAge"))
    errs += common.enum(f"{path}.unmatchedPreflights", cors.get("unmatchedPreflights"),
                        UNMATCHED_PREFLIGHTS)
    return errs


# -- tls and tcp ----------------------------------------------------------------------------

def _l4_match(path: str, match: dict[str, Any]) -> Errs:
    errs: Errs = []
    for i, subnet in enumerate(as_list(match.get("destinationSubnets"))):
        errs += common.cidr(f"{path}.destinationSubnets[{i}]", subnet)
    errs += common.cidr(f"{path}.sourceSubnet", match.get("sourceSubnet") or None)
    return errs + _source_match(path, match)


def _l4_routes(path: str, destinations: list[Any]) -> Errs:
    if not destinations:
        return [errors.required(path, "a tcp or tls route needs at least one destination")]
    errs = _weights(path, destinations)
    for i, dest in enumerate(destinations):
        errs += _destination(f"{path}[{i}].destination", as_dict(dest).get("destination"))
    return errs


def _tls_route(path: str, route: dict[str, Any], hosts: list[str]) -> Errs:
    errs: Errs = []
    matches = as_list(route.get("match"))
    if not matches:
        errs.append(errors.required(f"{path}.match", "a tls route needs a match with sniHosts"))
    for i, match in enumerate(matches):
        match, at = as_dict(match), f"{path}.match[{i}]"
        sni_hosts = as_list(match.get("sniHosts"))
        if not sni_hosts:
            errs.append(errors.required(f"{at}.sniHosts"))
        for j, sni in enumerate(sni_hosts):
            errs += common.host(f"{at}.sniHosts[{j}]", sni)
            if isinstance(sni, str) and sni and hosts and not any(
                    _within(sni, h) for h in hosts):
                errs.append(errors.invalid(f"{at}.sniHosts[{j}]", sni, "must be one of the "
                                           "virtual service's hosts or within one of them"))
        errs += _l4_match(at, {k: v for k, v in match.items() if k != "sniHosts"})
    errs += _l4_routes(f"{path}.route", as_list(route.get("route")))
    return errs


def _within(name: str, pattern: str) -> bool:
    """Whether host `name` is `pattern` or covered by it (`*.example.com`, `*`)."""
    if pattern == "*" or name == pattern:
        return True
    if pattern.startswith("*"):
        suffix = pattern[1:]
        return name.endswith(suffix) and (not name.startswith("*") or
                                          name[1:].endswith(suffix))
    return False


def _tcp_route(path: str, route: dict[str, Any]) -> Errs:
    errs: Errs = []
    for i, match in enumerate(as_list(route.get("match"))):
        errs += _l4_match(f"{path}.match[{i}]", as_dict(match))
    errs += _l4_routes(f"{path}.route", as_list(route.get("route")))
    return errs
