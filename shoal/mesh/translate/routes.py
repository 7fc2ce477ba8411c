"""Outbound HTTP routes: Services and Istio VirtualServices -> Envoy RDS.

One RouteConfiguration per HTTP port number (`"80"`, Istio's name), one virtual host
per Service on that port. A Service no VirtualService names gets one default route to
its cluster; a Service with VirtualServices gets their `http` rules, in order, first
match wins (Envoy evaluates routes in order), and nothing else: a request no rule
matches is answered 404 by Envoy, as in Istio.

Which VirtualServices apply, and for which clients, is `virtualservice`'s job.

Envoy shape per rule (Istio's translation): `match` -> RouteMatch (uri exact `path`,
prefix `prefix`, regex `safe_regex`; headers / method / authority / scheme as header
matchers, `withoutHeaders` inverted; queryParams; `ignoreUriCase` -> case_sensitive);
`route` -> cluster or weighted_clusters (`outbound|PORT|SUBSET|FQDN`), `timeout`
(default 0s: none), `retries` (Istio's default policy when absent, none for attempts
0), `mirror(s)` -> request_mirror_policies, `rewrite`, `redirect`, `directResponse`,
`headers`; `fault` and `corsPolicy` go to typed_per_filter_config of the
`envoy.filters.http.fault` / `envoy.filters.http.cors` filters, which every outbound
HTTP connection manager carries. Pure; no I/O.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from typing import Any, Callable, Mapping

# Imported for their descriptors: the typed configs below name these types.
from envoy.extensions.filters.http.cors.v3 import cors_pb2  # noqa: F401
from envoy.extensions.filters.http.fault.v3 import fault_pb2  # noqa: F401
from envoy.extensions.retry.host.previous_hosts.v3 import previous_hosts_pb2  # noqa: F401
from envoy.extensions.retry.priority.previous_priorities.v3 import (  # noqa: F401
    previous_priorities_config_pb2,
)

from shoal.mesh.errors import TranslateError
from shoal.mesh.meshconfig import REGISTRY_ONLY, MeshConfig
from shoal.mesh.translate import names
from shoal.mesh.translate.model import MeshService
from shoal.mesh.translate.protos import typed
from shoal.mesh.translate.virtualservice import (
    ClientKey, VirtualService, VirtualServiceIndex, source_matches,
)

Obj = dict[str, Any]

FAULT_FILTER = "envoy.filters.http.fault"
CORS_FILTER = "envoy.filters.http.cors"
DEFAULT_RETRY_ON = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
PREVIOUS_HOSTS = {
    "name": "envoy.retry_host_predicates.previous_hosts",
    "typed_config": typed("envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"),
}
DEFAULT_RETRY_POLICY: Obj = {
    "retry_on": DEFAULT_RETRY_ON, "num_retries": 2,
    "retry_host_predicate": [PREVIOUS_HOSTS], "host_selection_retry_max_attempts": "5",
}
"""Istio's retry policy for a route whose rule has no `retries`."""
DEFAULT_CONSISTENT_HASH_RETRY_POLICY: Obj = {
    k: v for k, v in DEFAULT_RETRY_POLICY.items() if k != "retry_host_predicate"}
REDIRECT_CODES = {301: "MOVED_PERMANENTLY", 302: "FOUND", 303: "SEE_OTHER",
                  307: "TEMPORARY_REDIRECT", 308: "PERMANENT_REDIRECT"}
GRPC_CODES = {name: code for code, name in enumerate((
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
    "UNAUTHENTICATED"))}
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(h|ms|us|µs|ns|m|s)")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


# -- field translation --------------------------------------------------------------

def duration(value: Any, field: str) -> str:
    """`0.5s`, `1m`, `1h30m`, `250ms` (Go/Istio spelling) -> protobuf JSON `N.NNNs`."""
    text = str(value).strip()
    pos, total = 0, 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise TranslateError(f"{field}: {value!r} is not a duration (e.g. 0.5s, 10s, 1m)")
    return f"{round(total, 9):.9f}".rstrip("0").rstrip(".") + "s"


def fractional(percentage: Obj | None, percent: int | None = None) -> Obj:
    """Istio's Percent {value: 0..100 double} (or a legacy integer percent) ->
    FractionalPercent; neither given: 100%."""
    if percentage is not None:
        return {"numerator": int(round(float(percentage.get("value", 0)) * 10000)),
                "denominator": "MILLION"}
    return {"numerator": 100 if percent is None else int(percent), "denominator": "HUNDRED"}


def string_matcher(match: Obj) -> Obj:
    if "exact" in match:
        return {"exact": match["exact"]}
    if "prefix" in match:
        return {"prefix": match["prefix"]}
    return {"safe_regex": {"regex": match["regex"]}}


def _is_present(match: Obj | None) -> bool:
    # Istio: no value, or the regex "*", means "the header is present"
    return not match or match.get("regex") == "*" or not (match.keys() & {"exact", "prefix", "regex"})


def _header_matcher(name: str, match: Obj | None, invert: bool = False) -> Obj:
    out: Obj = {"name": name}
    if _is_present(match):
        out["present_match"] = True
    else:
        out["string_match"] = string_matcher(match)  # type: ignore[arg-type]
        if invert:
            out["treat_missing_header_as_empty"] = True
    if invert:
        out["invert_match"] = True
    return out


def route_match(match: Obj | None) -> Obj:
    """HTTPMatchRequest -> RouteMatch (Istio's order: headers sorted by name, then
    method, authority, scheme; query parameters sorted for determinism)."""
    if not match:
        return {"prefix": "/"}
    out: Obj = {}
    uri = match.get("uri")
    if uri and "exact" in uri:
        out["path"] = uri["exact"]
    elif uri and "regex" in uri:
        out["safe_regex"] = {"regex": uri["regex"]}
    else:
        out["prefix"] = (uri or {}).get("prefix", "/")
    out["case_sensitive"] = not match.get("ignoreUriCase", False)
    headers = [_header_matcher(k, v) for k, v in (match.get("headers") or {}).items()]
    headers += [_header_matcher(k, v, invert=True)
                for k, v in (match.get("withoutHeaders") or {}).items()]
    headers.sort(key=lambda h: h["name"])
    for field, header in (("method", ":method"), ("authority", ":authority"), ("scheme", ":scheme")):
        if match.get(field):
            headers.append(_header_matcher(header, match[field]))
    if headers:
        out["headers"] = headers
    params = []
    for name, value in sorted((match.get("queryParams") or {}).items()):
        params.append({"name": name, "present_match": True} if _is_present(value)
                      else {"name": name, "string_match": string_matcher(value)})
    if params:
        out["query_parameters"] = params
    return out


def is_catch_all(match: Obj) -> bool:
    return (match.get("prefix") == "/" or match.get("safe_regex", {}).get("regex") == ".*") \
        and not match.get("headers") and not match.get("query_parameters")


def header_operations(headers: Obj | None) -> tuple[Obj, str]:
    """Istio Headers -> route fields ({request_headers_to_add, ...}) and the authority a
    `set`/`add` of `:authority`/`host` asks for ('' if none; it becomes a host rewrite)."""
    out: Obj = {}
    authority = ""
    for side in ("request", "response"):
        ops = (headers or {}).get(side) or {}
        added = []
        for key, action in (("set", "OVERWRITE_IF_EXISTS_OR_ADD"), ("add", "APPEND_IF_EXISTS_OR_ADD")):
            for name, value in sorted((ops.get(key) or {}).items()):
                if name.lower() in (":authority", "host"):
                    if side == "request" and (key == "set" or not authority):
                        authority = value
                if name.startswith(":") or name.lower() == "host":
                    continue
                added.append({"header": {"key": name, "value": str(value)}, "append_action": action})
        removed = [n for n in ops.get("remove") or () if not n.startswith(":") and n.lower() != "host"]
        if added:
            out[f"{side}_headers_to_add"] = added
        if removed:
            out[f"{side}_headers_to_remove"] = removed
    return out, authority


def _merge_headers(target: Obj, extra: Obj) -> None:
    for key, values in extra.items():
        target[key] = target.get(key, []) + values


def retry_policy(retries: Obj | None, field: str, consistent_hash: bool = False) -> Obj | None:
    """Istio's ConvertPolicy: default when absent, None when attempts <= 0; with a
    consistent hash, no previous_hosts predicate (retries stay on the hashed host)."""
    if retries is None:
        return DEFAULT_CONSISTENT_HASH_RETRY_POLICY if consistent_hash else DEFAULT_RETRY_POLICY
    attempts = int(retries.get("attempts") or 0)
    if attempts <= 0:
        return None
    out: Obj = dict(DEFAULT_CONSISTENT_HASH_RETRY_POLICY if consistent_hash
                    else DEFAULT_RETRY_POLICY, num_retries=attempts)
    if retries.get("retryOn"):
        parts = [p.strip() for p in str(retries["retryOn"]).split(",") if p.strip()]
        codes = [int(p) for p in parts if p.isdigit()]
        policies = [p for p in parts if not p.isdigit()]
        if codes and "retriable-status-codes" not in policies:
            policies.append("retriable-status-codes")
        out["retry_on"] = ",".join(policies)
        if codes:
            out["retriable_status_codes"] = codes
    if retries.get("perTryTimeout"):
        out["per_try_timeout"] = duration(retries["perTryTimeout"], f"{field}.perTryTimeout")
    if "retryIgnorePreviousHosts" in retries:
        out.pop("retry_host_predicate", None)
        if retries["retryIgnorePreviousHosts"]:
            out["retry_host_predicate"] = [PREVIOUS_HOSTS]
    if retries.get("retryRemoteLocalities"):
        out["retry_priority"] = {
            "name": "envoy.retry_priorities.previous_priorities",
            "typed_config": typed(
                "envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig",
                {"update_frequency": 2})}
    if retries.get("backoff"):
        out["retry_back_off"] = {"base_interval": duration(retries["backoff"], f"{field}.backoff")}
    return out


def fault_config(fault: Obj, field: str) -> Obj | None:
    """HTTPFaultInjection -> HTTPFault (per-route config of the fault filter)."""
    out: Obj = {}
    delay = fault.get("delay")
    if delay and delay.get("fixedDelay"):
        out["delay"] = {"fixed_delay": duration(delay["fixedDelay"], f"{field}.delay.fixedDelay"),
                        "percentage": fractional(delay.get("percentage"), delay.get("percent"))}
    abort = fault.get("abort")
    if abort and ("httpStatus" in abort or "grpcStatus" in abort):
        body: Obj = {}
        if "httpStatus" in abort:
            body["http_status"] = int(abort["httpStatus"])
        else:
            status = abort["grpcStatus"]
            body["grpc_status"] = GRPC_CODES.get(str(status).upper(), 0) \
                if not str(status).isdigit() else int(status)
        if abort.get("percentage") is not None:
            body["percentage"] = fractional(abort["percentage"])
        out["abort"] = body
    return typed("envoy.extensions.filters.http.fault.v3.HTTPFault", out) if out else None


def cors_config(cors: Obj) -> Obj:
    out: Obj = {"filter_enabled": {"default_value": {"numerator": 100, "denominator": "HUNDRED"}},
                "forward_not_matching_preflights": cors.get("unmatchedPreflights") != "IGNORE"}
    if cors.get("allowOrigins"):
        out["allow_origin_string_match"] = [string_matcher(m) for m in cors["allowOrigins"]]
    elif cors.get("allowOrigin"):
        out["allow_origin_string_match"] = [{"exact": o} for o in cors["allowOrigin"]]
    for field, key in (("allowMethods", "allow_methods"), ("allowHeaders", "allow_headers"),
                       ("exposeHeaders", "expose_headers")):
        if cors.get(field):
            out[key] = ",".join(cors[field])
    if cors.get("maxAge"):
        out["max_age"] = str(int(float(duration(cors["maxAge"], "corsPolicy.maxAge")[:-1])))
    if "allowCredentials" in cors:
        out["allow_credentials"] = bool(cors["allowCredentials"])
    return typed("envoy.extensions.filters.http.cors.v3.CorsPolicy", out)


# -- destinations and routes --------------------------------------------------------

HashPolicies = Callable[[MeshService, int, str], list[Obj]]
"""(destination service, port, subset) -> the route `hash_policy` its DestinationRule's
consistentHash asks for, as the client sees it ([] for none). DestinationRule
translation owns the lookup; the caller binds it to the client's namespace."""


def no_hash_policies(svc: MeshService, port: int, subset: str) -> list[Obj]:
    return []


@dataclasses.dataclass(frozen=True)
class RouteContext:
    """What translating one rule needs besides the rule: the services by FQDN, the
    listener port the route table is for, the cluster domain, the hash policies."""

    services: Mapping[str, MeshService]
    port: int
    cluster_domain: str
    hash_policies: HashPolicies = no_hash_policies


def destination_cluster(dest: Obj, ctx: RouteContext) -> str:
    return destination(dest, ctx)[0]


def destination(dest: Obj, ctx: RouteContext) -> tuple[str, list[Obj]]:
    """(cluster, hash_policy) of a destination. Istio's GetDestinationCluster: port as
    given, else the service's only port, else the listener port; the subset names the
    DestinationRule subset cluster."""
    fqdn = dest.get("host", "")  # resolved by resolve_destinations
    port = (dest.get("port") or {}).get("number")
    svc = ctx.services.get(fqdn)
    if port is None:
        port = svc.ports[0].port if svc is not None and len(svc.ports) == 1 else ctx.port
    subset = dest.get("subset", "")
    hashing = ctx.hash_policies(svc, int(port), subset) if svc is not None else []
    return names.outbound_cluster(int(port), fqdn, subset), hashing


def _route_action(rule: Obj, ctx: RouteContext, route: Obj,
                  authority: str, field: str) -> Obj:
    action: Obj = {"timeout": duration(rule["timeout"], f"{field}.timeout")
                   if rule.get("timeout") else "0s"}
    rewrite = rule.get("rewrite") or {}
    if rewrite.get("uriRegexRewrite"):
        regex = rewrite["uriRegexRewrite"]
        action["regex_rewrite"] = {"pattern": {"regex": regex.get("match", "")},
                                   "substitution": regex.get("rewrite", "")}
    elif rewrite.get("uri"):
        action["prefix_rewrite"] = rewrite["uri"]
    authority = rewrite.get("authority") or authority
    destinations = rule.get("route") or []
    hashing: list[Obj] = []
    if len(destinations) == 1:
        action["cluster"], hashing = destination(destinations[0].get("destination") or {}, ctx)
        extra, dest_authority = header_operations(destinations[0].get("headers"))
        _merge_headers(route, extra)
        authority = authority or dest_authority
    else:
        weighted = []
        for dst in destinations:
            if not dst.get("weight"):
                continue  # Istio leaves weight-0 destinations out
            name, more = destination(dst.get("destination") or {}, ctx)
            hashing += [h for h in more if h not in hashing]
            entry: Obj = {"name": name, "weight": int(dst["weight"])}
            extra, dest_authority = header_operations(dst.get("headers"))
            entry.update(extra)
            if dest_authority:
                entry["host_rewrite_literal"] = dest_authority
            weighted.append(entry)
        action["weighted_clusters"] = {"clusters": weighted}
    if authority:
        action["host_rewrite_literal"] = authority
    if hashing:
        action["hash_policy"] = hashing
    mirrors: list[Obj] = []
    if rule.get("mirror") and _mirror_on(rule.get("mirrorPercentage")) \
            and rule.get("mirrorPercent", 1) != 0:
        mirrors.append({"cluster": destination_cluster(rule["mirror"], ctx),
                        "runtime_fraction": {"default_value": fractional(
                            rule.get("mirrorPercentage"), rule.get("mirrorPercent"))},
                        "trace_sampled": False})
    for mirror in rule.get("mirrors") or ():
        if mirror.get("destination") and _mirror_on(mirror.get("percentage")):
            mirrors.append({"cluster": destination_cluster(mirror["destination"], ctx),
                            "runtime_fraction": {"default_value": fractional(
                                mirror.get("percentage"))},
                            "trace_sampled": False})
    if mirrors:
        action["request_mirror_policies"] = mirrors
    # Istio: a single destination hashed to a consistent host retries on that host
    policy = retry_policy(rule.get("retries"), f"{field}.retries",
                          consistent_hash=len(destinations) == 1 and bool(hashing))
    if policy is not None:
        action["retry_policy"] = policy
    return action


def _mirror_on(percentage: Obj | None) -> bool:
    """An explicit 0% turns a mirror off (Istio); absent means 100%."""
    return percentage is None or float(percentage.get("value", 0)) > 0


def _redirect(redirect: Obj, port: int) -> Obj | None:
    out: Obj = {}
    if redirect.get("authority"):
        out["host_redirect"] = redirect["authority"]
    if redirect.get("prefixRewrite"):
        out["prefix_rewrite"] = redirect["prefixRewrite"]
    elif redirect.get("uri"):
        out["path_redirect"] = redirect["uri"]
    scheme = redirect.get("scheme")
    if scheme:
        out["scheme_redirect"] = scheme
    if "port" in redirect or "derivePort" in redirect:
        number = int(redirect["port"]) if "port" in redirect else (
            port if redirect["derivePort"] == "FROM_REQUEST_PORT" else 0)
        if number and (number, scheme or "http") not in ((80, "http"), (443, "https")):
            out["port_redirect"] = number
    code = int(redirect.get("redirectCode") or 301)
    if code not in REDIRECT_CODES:
        return None  # Istio leaves such a route without an action (validation refuses it)
    out["response_code"] = REDIRECT_CODES[code]
    return out


def translate_rule(rule: Obj, match: Obj | None, vs: VirtualService, ctx: RouteContext,
                   field: str) -> Obj | None:
    """One Envoy route for one (rule, match) pair; None when the rule has no action."""
    name = rule.get("name", "")
    if match and match.get("name"):
        name = f"{name}.{match['name']}" if name else match["name"]
    route: Obj = {"match": route_match(match),
                  "metadata": {"filter_metadata": {"istio": {"config": vs.config_path}}}}
    if name:
        route["name"] = name
    extra, authority = header_operations(rule.get("headers"))
    route.update(extra)
    if rule.get("redirect"):
        redirect = _redirect(rule["redirect"], ctx.port)
        if redirect is None:
            return None
        route["redirect"] = redirect
    elif rule.get("directResponse"):
        direct = rule["directResponse"]
        route["direct_response"] = {"status": int(direct["status"])}
        body = direct.get("body") or {}
        if "string" in body:
            route["direct_response"]["body"] = {"inline_string": body["string"]}
        elif "bytes" in body:
            route["direct_response"]["body"] = {"inline_bytes": body["bytes"]}
    elif rule.get("route"):
        route["route"] = _route_action(rule, ctx, route, authority, field)
    else:
        return None
    per_filter: Obj = {}
    if rule.get("fault"):
        fault = fault_config(rule["fault"], f"{field}.fault")
        if fault is not None:
            per_filter[FAULT_FILTER] = fault
    if rule.get("corsPolicy"):
        per_filter[CORS_FILTER] = cors_config(rule["corsPolicy"])
    if per_filter:
        route["typed_per_filter_config"] = per_filter
    return route


def http_routes(virtual_services: list[VirtualService], client: ClientKey,
                ctx: RouteContext) -> list[Obj]:
    """The merged rules of `virtual_services` for a client on `ctx.port`, in order, up
    to the first catch-all (Envoy would never reach past it)."""
    out = []
    for vs in virtual_services:
        for index, rule in enumerate(vs.http):
            field = f"{vs.namespace}/{vs.name}: spec.http[{index}]"
            for match in rule.get("match") or [None]:
                if match and match.get("port") and int(match["port"]) != ctx.port:
                    continue
                if not source_matches(match, client):
                    continue
                route = translate_rule(rule, match, vs, ctx, field)
                if route is None:
                    continue
                out.append(route)
                if is_catch_all(route["match"]):
                    return out
    return out


# -- the route table ------------------------------------------------------------------

def _domains(svc: MeshService, port: int, proxy_namespace: str) -> list[str]:
    hosts = [svc.fqdn, f"{svc.name}.{svc.namespace}.svc", f"{svc.name}.{svc.namespace}"]
    if svc.namespace == proxy_namespace:
        hosts.append(svc.name)
    if svc.vip:
        hosts.append(svc.vip)
    domains = []
    for host in hosts:
        domains += [host, f"{host}:{port}"]
    return domains


def default_route(svc: MeshService, port: int, hash_policies: HashPolicies = no_hash_policies) -> Obj:
    """The route of a service no VirtualService names (Istio's default route)."""
    action: Obj = {"cluster": names.outbound_cluster(port, svc.fqdn), "timeout": "0s"}
    hashing = hash_policies(svc, port, "")
    if hashing:
        action["hash_policy"] = hashing
    action["retry_policy"] = retry_policy(None, "", consistent_hash=bool(hashing))
    return {"name": "default", "match": {"prefix": "/"}, "route": action}


def build_outbound_routes(services: list[MeshService], mesh: MeshConfig,
                          index: VirtualServiceIndex, client: ClientKey,
                          hash_policies: HashPolicies = no_hash_policies) -> list[Obj]:
    """One RouteConfiguration per HTTP port number, named like Istio ("80").
    `hash_policies` answers for `client`'s namespace (DestinationRule lookup)."""
    by_fqdn = {svc.fqdn: svc for svc in services}
    by_port: dict[int, list[Obj]] = {}
    for svc in services:
        applicable = index.for_service(svc.fqdn, client.namespace)
        for sp in svc.ports:
            if not sp.http:
                continue
            ctx = RouteContext(by_fqdn, sp.port, mesh.cluster_domain, hash_policies)
            routes = http_routes(applicable, client, ctx) if applicable else []
            by_port.setdefault(sp.port, []).append({
                "name": f"{svc.fqdn}:{sp.port}",
                "domains": _domains(svc, sp.port, client.namespace),
                "routes": routes or [default_route(svc, sp.port, hash_policies)],
            })
    tables = []
    for port, vhosts in sorted(by_port.items()):
        if mesh.outbound_traffic_policy == REGISTRY_ONLY:
            fallback: Obj = {"name": "block_all", "domains": ["*"], "routes": [{
                "name": "block_all", "match": {"prefix": "/"},
                "direct_response": {"status": 502}}]}
        else:
            fallback = {"name": "allow_any", "domains": ["*"], "routes": [{
                "name": "allow_any", "match": {"prefix": "/"},
                "route": {"cluster": names.PASSTHROUGH, "timeout": "0s"}}]}
        tables.append({"name": names.outbound_route(port), "virtual_hosts": vhosts + [fallback],
                       "validate_clusters": False})
    return tables


# -- TCP and TLS rules (used by the outbound listener) --------------------------------

def _l4_applies(match: Obj, port: int, vip: str | None, client: ClientKey) -> bool:
    if match.get("port") and int(match["port"]) != port:
        return False
    subnets = match.get("destinationSubnets")
    if subnets and (vip is None or not any(
            ipaddress.ip_address(vip) in ipaddress.ip_network(s, strict=False) for s in subnets)):
        return False
    return source_matches(match, client)


def l4_destination(rule: Obj, ctx: RouteContext) -> Obj:
    """tcp_proxy fields for a tcp/tls rule's `route`: cluster or weighted_clusters."""
    dests = rule.get("route") or []
    if len(dests) == 1:
        return {"cluster": destination_cluster(dests[0].get("destination") or {}, ctx)}
    return {"weighted_clusters": {"clusters": [
        {"name": destination_cluster(d.get("destination") or {}, ctx), "weight": int(d["weight"])}
        for d in dests if d.get("weight")]}}


def tcp_route(svc: MeshService, port: int, index: VirtualServiceIndex, client: ClientKey,
              services: Mapping[str, MeshService], domain: str) -> Obj | None:
    """tcp_proxy destination fields of the first `tcp` rule that matches connections to
    svc:port from `client`, or None (then the service's own cluster)."""
    ctx = RouteContext(services, port, domain)
    for vs in index.for_service(svc.fqdn, client.namespace):
        for rule in vs.tcp:
            if not rule.get("route"):
                continue
            matches = rule.get("match") or [{}]
            if any(_l4_applies(m, port, svc.vip, client) for m in matches):
                return l4_destination(rule, ctx)
    return None


def tls_routes(svc: MeshService, port: int, index: VirtualServiceIndex, client: ClientKey,
               services: Mapping[str, MeshService], domain: str) -> list[tuple[list[str], Obj]]:
    """(sniHosts, tcp_proxy destination fields) of each `tls` rule match for svc:port, in
    order; a server name already claimed by an earlier rule is not repeated."""
    ctx = RouteContext(services, port, domain)
    out: list[tuple[list[str], Obj]] = []
    claimed: set[str] = set()
    for vs in index.for_service(svc.fqdn, client.namespace):
        for rule in vs.tls:
            if not rule.get("route"):
                continue
            for match in rule.get("match") or ():
                if not _l4_applies(match, port, svc.vip, client):
                    continue
                sni = [h for h in match.get("sniHosts") or () if h not in claimed]
                if sni:
                    claimed.update(sni)
                    out.append((sni, l4_destination(rule, ctx)))
    return out
