"""Outbound clusters and endpoints, shaped by Istio DestinationRules.

Each service port has an EDS cluster `outbound|PORT||FQDN`; each subset of the
DestinationRule that applies to the service adds `outbound|PORT|SUBSET|FQDN` whose
endpoints are only the pods whose labels carry all of the subset's `labels`. Without
a DestinationRule `tls`, endpoints whose pod has a sidecar carry `tlsMode: istio`
metadata and are reached over mTLS checked against the service's SPIFFE IDs, others in
plaintext (`transport_socket_matches`, Istio's auto-mTLS).

Which DestinationRule applies (Istio's lookup, `DestinationRules.lookup`): the first
namespace of (the client's, the service's, the root namespace) holding a rule for the
host that is visible to the client (`exportTo`: none or `*` = everywhere, `.` = its own
namespace, or namespace names); within a namespace an exact host beats a wildcard, and
a longer wildcard beats a shorter one. Several rules for one host in one namespace merge
as in Istio: the oldest rule's `trafficPolicy`, subsets of all in age order (first
name wins). A short host is resolved in the rule's namespace.

Policy for one port and subset (`port_policy`, Istio's MergeTrafficPolicy): the
top-level policy, replaced wholesale by a `portLevelSettings` entry for that port (port
settings do not inherit); then each of the subset's fields that is set overrides; then
the subset's own `portLevelSettings` entry for the port replaces wholesale.

Fields -> Envoy (as Istio translates them):

    loadBalancer.simple          ROUND_ROBIN, LEAST_REQUEST (default; LEAST_CONN too),
                                 RANDOM, PASSTHROUGH (ORIGINAL_DST + CLUSTER_PROVIDED)
    loadBalancer.consistentHash  RING_HASH (ringHash.minimumRingSize, default 1024) or
                                 MAGLEV (maglev.tableSize); the key is the ROUTE's
                                 hash_policy: `hash_policy(policy)`
    loadBalancer.warmupDurationSecs  {round_robin,least_request}_lb_config.slow_start_config
    connectionPool.tcp           maxConnections, connectTimeout, tcpKeepalive
                                 (upstream_connection_options), maxConnectionDuration
    connectionPool.http          http1MaxPendingRequests, http2MaxRequests, maxRetries
                                 (circuit_breakers thresholds); maxRequestsPerConnection,
                                 idleTimeout (common_http_protocol_options);
                                 h2UpgradePolicy UPGRADE (HTTP/2 upstream);
                                 useClientProtocol; maxConcurrentStreams (h2)
    outlierDetection             consecutive5xxErrors, consecutiveGatewayErrors (each
                                 enforced 100% when > 0), interval, baseEjectionTime,
                                 maxEjectionPercent; success-rate ejection off;
                                 minHealthPercent -> healthy_panic_threshold (default 0)
    tls.mode                     absent: auto-mTLS as above; ISTIO_MUTUAL: mesh mTLS to
                                 every endpoint (sidecar or not); DISABLE: plaintext;
                                 SIMPLE / MUTUAL: the app's own TLS origination with
                                 caCertificates (else the system bundle), subjectAltNames,
                                 sni, insecureSkipVerify, caCrl, clientCertificate +
                                 privateKey files

Not translated (yet): `tls.credentialName` (needs the control plane to serve Kubernetes
Secrets over SDS: the files/system bundle are used instead, so an origination that
needs the secret fails closed), auto-SNI, `localityLbSetting`, `warmup` (the newer
form), rules with a `workloadSelector` (left out entirely rather than applied to
every client), `tunnel`, `proxyProtocol`, `trafficPolicy` of inbound
clusters.

Pure: the same inputs give the same dicts. A value translation cannot use (a duration
that is not one) raises TranslateError naming the rule and the field path; the API
refuses such objects before they get here.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Hashable, Iterable

from shoal.mesh.errors import TranslateError
from shoal.mesh.meshconfig import MeshConfig
from shoal.mesh.source import DESTINATION_RULES, ClusterState
from shoal.mesh.translate import fixed, names, tls
from shoal.mesh.translate.model import Endpoint, MeshService, ServicePort
from shoal.mesh.translate.protos import ADS_SOURCE, typed

Obj = dict[str, Any]

TLS_MODE_KEY = "envoy.transport_socket_match"
POLICY_FIELDS = ("connectionPool", "loadBalancer", "outlierDetection", "tls")
"""The parts of a trafficPolicy that portLevelSettings and subsets replace."""
SYSTEM_CA = "/etc/ssl/certs/ca-certificates.crt"
"""Trust bundle for SIMPLE/MUTUAL without caCertificates (Istio uses the system's)."""
HTTP_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"


# -- which rule applies -------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DestinationRule:
    namespace: str
    name: str
    host: str
    """FQDN or wildcard (`*.ns.svc.cluster.local`, `*`), short names resolved."""
    export_to: frozenset[str]
    """'*' or namespace names ('.' resolved to the rule's namespace)."""
    spec: Obj
    created: str

    def visible_to(self, namespace: str) -> bool:
        return "*" in self.export_to or namespace in self.export_to

    def matches(self, fqdn: str) -> bool:
        if self.host == "*":
            return True
        if self.host.startswith("*."):
            return fqdn.endswith(self.host[1:])
        return self.host == fqdn


def resolve_host(host: str, namespace: str, cluster_domain: str) -> str:
    """Istio's short-name rule: a host without a dot is a service in `namespace`."""
    if "." in host or host == "*":
        return host
    return names.fqdn(host, namespace, cluster_domain)


def destination_rules(state: ClusterState, mesh: MeshConfig) -> list["DestinationRule"]:
    rules = []
    for obj in state.list(DESTINATION_RULES):
        meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
        ns = meta.get("namespace") or "default"
        host = spec.get("host")
        if not host:
            continue  # refused by validation; nothing to apply it to
        if spec.get("workloadSelector"):
            continue  # applies to some client pods only: not translated (yet), never wider
        export = frozenset(ns if e == "." else e for e in (spec.get("exportTo") or ["*"]))
        rules.append(DestinationRule(ns, meta["name"], resolve_host(host, ns, mesh.cluster_domain),
                                     export, spec, meta.get("creationTimestamp") or ""))
    return rules


class DestinationRules:
    """Rules indexed for Istio's lookup. `lookup` answers which (merged) rule spec
    applies to a service for a client namespace. `key(ns)` is equal for two client
    namespaces whenever every lookup gives them the same answer, so the builders
    memoize per key: a rule that lives in its service's namespace and is exported
    everywhere reads the same from every namespace, so only namespaces holding other
    rules (for hosts elsewhere, wildcards beyond their own namespace, restricted
    exportTo) get clusters of their own."""

    def __init__(self, rules: Iterable[DestinationRule], root_namespace: str,
                 cluster_domain: str = "cluster.local") -> None:
        self.root = root_namespace
        self._exact: dict[tuple[str, str], list[DestinationRule]] = {}
        self._wildcards: dict[str, list[DestinationRule]] = {}
        self._own_view: set[str] = set()
        restricted = []
        for rule in sorted(rules, key=lambda r: (r.created, r.name)):
            if rule.host.startswith("*"):
                self._wildcards.setdefault(rule.namespace, []).append(rule)
            else:
                self._exact.setdefault((rule.namespace, rule.host), []).append(rule)
            if "*" not in rule.export_to:
                restricted.append(rule)
            elif not rule.host.endswith(f".{rule.namespace}.svc.{cluster_domain}"):
                self._own_view.add(rule.namespace)  # reaches services of other namespaces
        self._restricted = tuple(restricted)
        self._keys: dict[str, Hashable] = {}
        self._cache: dict[tuple[Hashable, str, str], Obj | None] = {}

    def __bool__(self) -> bool:
        return bool(self._exact or self._wildcards)

    @classmethod
    def from_state(cls, state: ClusterState, mesh: MeshConfig) -> "DestinationRules":
        return cls(destination_rules(state, mesh), mesh.root_namespace, mesh.cluster_domain)

    def key(self, client_namespace: str) -> Hashable:
        if client_namespace not in self._keys:
            seen = tuple((r.namespace, r.name) for r in self._restricted
                         if r.visible_to(client_namespace))
            own = client_namespace if client_namespace in self._own_view else ""
            self._keys[client_namespace] = (own, seen)
        return self._keys[client_namespace]

    def lookup(self, client_namespace: str, svc: MeshService) -> Obj | None:
        """The spec ({trafficPolicy, subsets, rule}) that applies, or None."""
        cache_key = (self.key(client_namespace), svc.fqdn, svc.namespace)
        if cache_key not in self._cache:
            self._cache[cache_key] = self._lookup(client_namespace, svc)
        return self._cache[cache_key]

    def policy(self, client_namespace: str, svc: MeshService, port: int,
               subset: str = "") -> Obj:
        """The effective trafficPolicy for a destination (service, port, subset) as a
        client in `client_namespace` sees it: `port_policy` of the rule that applies,
        e.g. for `hash_policy(...)` on a VirtualService route."""
        return port_policy(self.lookup(client_namespace, svc), port, subset)

    def _lookup(self, client_namespace: str, svc: MeshService) -> Obj | None:
        order = [client_namespace]
        for ns in (svc.namespace, self.root):
            if ns not in order:
                order.append(ns)
        for ns in order:
            exact = [r for r in self._exact.get((ns, svc.fqdn), ())
                     if r.visible_to(client_namespace)]
            if exact:
                return _merge(exact)
            wildcards = [r for r in self._wildcards.get(ns, ())
                         if r.visible_to(client_namespace) and r.matches(svc.fqdn)]
            if wildcards:  # the most specific (longest) wildcard wins
                longest = max(len(r.host) for r in wildcards)
                return _merge([r for r in wildcards if len(r.host) == longest])
        return None


def _merge(rules: list[DestinationRule]) -> Obj:
    """Rules for one host in one namespace, oldest first: the first trafficPolicy,
    subsets of all (the first of a name wins)."""
    policy = next((r.spec["trafficPolicy"] for r in rules if r.spec.get("trafficPolicy")), None)
    subsets: dict[str, Obj] = {}
    for rule in rules:
        for subset in rule.spec.get("subsets") or []:
            if subset.get("name") and subset["name"] not in subsets:
                subsets[subset["name"]] = subset
    merged: Obj = {"subsets": list(subsets.values()),
                   "rule": f"{rules[0].namespace}/{rules[0].name}"}
    if policy is not None:
        merged["trafficPolicy"] = policy
    return merged


def _at_port(policy: Obj, port: int) -> Obj:
    for settings in policy.get("portLevelSettings") or []:
        if int((settings.get("port") or {}).get("number", -1)) == port:
            return {f: settings[f] for f in POLICY_FIELDS if settings.get(f) is not None}
    return {f: policy[f] for f in POLICY_FIELDS if policy.get(f) is not None}


def port_policy(rule: Obj | None, port: int, subset: str = "") -> Obj:
    """The effective trafficPolicy (connectionPool, loadBalancer, outlierDetection, tls)
    of `rule` for a service port and optionally a subset; {} without a rule."""
    if not rule:
        return {}
    merged = _at_port(rule.get("trafficPolicy") or {}, port)
    if subset:
        spec = next((s for s in rule.get("subsets") or [] if s.get("name") == subset), {})
        own = spec.get("trafficPolicy") or {}
        merged.update({f: own[f] for f in POLICY_FIELDS if own.get(f) is not None})
        for settings in own.get("portLevelSettings") or []:
            if int((settings.get("port") or {}).get("number", -1)) == port:
                merged = {f: settings[f] for f in POLICY_FIELDS if settings.get(f) is not None}
    return merged


# -- values ------------------------------------------------------------------------

_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(h|ms|us|µs|ns|m|s)")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def seconds(value: Any, where: str) -> float:
    """A duration as Istio writes it ('1s', '0.5s', '1m', '1h30m', '250ms') in seconds."""
    text = str(value).strip()
    if not text or _DURATION.sub("", text):
        raise TranslateError(f"{where}: invalid duration {value!r}, expected e.g. '1s', "
                             "'500ms', '1m'")
    return sum(float(n) * _UNITS[u] for n, u in _DURATION.findall(text))


def duration(value: Any, where: str) -> str:
    """A duration in Envoy's JSON form ('0.5s')."""
    text = f"{seconds(value, where):.9f}".rstrip("0").rstrip(".")
    return f"{text}s"


# -- route side --------------------------------------------------------------------


def hash_policy(policy: Obj | None, where: str = "trafficPolicy") -> list[Obj]:
    """The route `hash_policy` a consistentHash load balancer needs (Envoy hashes on
    the route, the cluster only picks RING_HASH/MAGLEV); [] for any other policy.
    `policy` is a `port_policy` result."""
    consistent = ((policy or {}).get("loadBalancer") or {}).get("consistentHash")
    if not consistent:
        return []
    if consistent.get("httpHeaderName"):
        return [{"header": {"header_name": consistent["httpHeaderName"]}}]
    if consistent.get("httpCookie"):
        cookie = consistent["httpCookie"]
        body: Obj = {"name": cookie.get("name", "")}
        if cookie.get("path"):
            body["path"] = cookie["path"]
        if cookie.get("ttl") is not None:
            body["ttl"] = duration(cookie["ttl"],
                                   f"{where}.loadBalancer.consistentHash.httpCookie.ttl")
        return [{"cookie": body}]
    if consistent.get("useSourceIp"):
        return [{"connection_properties": {"source_ip": True}}]
    if consistent.get("httpQueryParameterName"):
        return [{"query_parameter": {"name": consistent["httpQueryParameterName"]}}]
    return []


# -- clusters ----------------------------------------------------------------------


def build_outbound(services: list[MeshService], rules: DestinationRules,
                   client_namespace: str) -> tuple[list[Obj], list[Obj]]:
    """(clusters, endpoint assignments) of the outbound side as seen from
    `client_namespace`: passthrough/blackhole plus one cluster per service port and per
    DestinationRule subset and port, each EDS cluster with its assignment."""
    clusters = [fixed.passthrough_cluster(), fixed.blackhole_cluster()]
    assignments = []
    for svc in services:
        rule = rules.lookup(client_namespace, svc)
        where = f"DestinationRule {rule['rule']}: spec" if rule else "spec"
        variants: list[tuple[str, dict[str, str] | None, str]] = [("", None, where)]
        for index, subset in enumerate((rule or {}).get("subsets", ())):
            variants.append((subset["name"], subset.get("labels") or {},
                             f"{where}.subsets[{index}]"))
        for sp in svc.ports:
            for subset, labels, path in variants:
                cluster = service_cluster(svc, sp, port_policy(rule, sp.port, subset), subset,
                                          f"{path}.trafficPolicy")
                clusters.append(cluster)
                if cluster["type"] == "EDS":
                    assignments.append(_assignment(
                        cluster["name"], _select(svc.endpoints.get(sp.port, ()), labels)))
    return clusters, assignments


def _select(endpoints: Iterable[Endpoint], labels: dict[str, str] | None) -> list[Endpoint]:
    if labels is None:
        return list(endpoints)
    return [ep for ep in endpoints if labels.items() <= dict(ep.labels).items()]


def _assignment(cluster_name: str, endpoints: list[Endpoint]) -> Obj:
    lb_endpoints = []
    for ep in endpoints:
        lb: Obj = {"endpoint": {"address": fixed.socket_address(ep.ip, ep.port)}}
        if ep.meshed:
            lb["metadata"] = {"filter_metadata": {TLS_MODE_KEY: {"tlsMode": "istio"}}}
        lb_endpoints.append(lb)
    return {"cluster_name": cluster_name,
            "endpoints": [{"lb_endpoints": lb_endpoints}] if lb_endpoints else []}


def service_cluster(svc: MeshService, sp: ServicePort, policy: Obj | None = None,
                    subset: str = "", where: str = "trafficPolicy") -> Obj:
    """The outbound cluster of one service port (and subset) under `policy`
    (a `port_policy` result; {} = Istio's defaults)."""
    policy = policy or {}
    name = names.outbound_cluster(sp.port, svc.fqdn, subset)
    cluster: Obj = {
        "name": name,
        "type": "EDS",
        "eds_cluster_config": {"eds_config": ADS_SOURCE, "service_name": name},
        "connect_timeout": fixed.CONNECT_TIMEOUT,
        "lb_policy": "LEAST_REQUEST",
    }
    http_options: Obj = {}
    if sp.h2:
        http_options["explicit_http_config"] = {"http2_protocol_options": {}}
    _connection_pool(cluster, http_options, policy.get("connectionPool") or {}, sp,
                     f"{where}.connectionPool")
    _outlier_detection(cluster, policy.get("outlierDetection"), f"{where}.outlierDetection")
    _load_balancer(cluster, policy.get("loadBalancer") or {}, f"{where}.loadBalancer")
    _transport(cluster, policy.get("tls"), svc, sp, subset)
    if http_options:
        cluster["typed_extension_protocol_options"] = {HTTP_OPTIONS: typed(HTTP_OPTIONS, http_options)}
    return cluster


def _positive(settings: Obj, field: str) -> int | None:
    value = settings.get(field)
    return int(value) if value is not None and int(value) > 0 else None


def _connection_pool(cluster: Obj, http_options: Obj, pool: Obj, sp: ServicePort,
                     where: str) -> None:
    tcp, http = pool.get("tcp") or {}, pool.get("http") or {}
    thresholds = dict(fixed.CIRCUIT_BREAKERS["thresholds"][0], track_remaining=True)
    for field, key in (("maxConnections", "max_connections"),):
        if _positive(tcp, field):
            thresholds[key] = _positive(tcp, field)
    for field, key in (("http1MaxPendingRequests", "max_pending_requests"),
                       ("http2MaxRequests", "max_requests"), ("maxRetries", "max_retries")):
        if _positive(http, field):
            thresholds[key] = _positive(http, field)
    cluster["circuit_breakers"] = {"thresholds": [thresholds]}
    if tcp.get("connectTimeout") is not None:
        cluster["connect_timeout"] = duration(tcp["connectTimeout"], f"{where}.tcp.connectTimeout")
    if tcp.get("tcpKeepalive") is not None:
        keepalive = tcp["tcpKeepalive"] or {}
        body: Obj = {}
        if keepalive.get("probes"):
            body["keepalive_probes"] = int(keepalive["probes"])
        for field, key in (("time", "keepalive_time"), ("interval", "keepalive_interval")):
            if keepalive.get(field) is not None:
                body[key] = max(1, round(seconds(keepalive[field],
                                                 f"{where}.tcp.tcpKeepalive.{field}")))
        cluster["upstream_connection_options"] = {"tcp_keepalive": body}
    common: Obj = {}
    idle = http.get("idleTimeout", tcp.get("idleTimeout"))
    if idle is not None:
        common["idle_timeout"] = duration(idle, f"{where}.http.idleTimeout")
    if _positive(http, "maxRequestsPerConnection"):
        common["max_requests_per_connection"] = _positive(http, "maxRequestsPerConnection")
    if tcp.get("maxConnectionDuration") is not None:
        common["max_connection_duration"] = duration(
            tcp["maxConnectionDuration"], f"{where}.tcp.maxConnectionDuration")
    if common:
        http_options["common_http_protocol_options"] = common
    if http.get("h2UpgradePolicy") == "UPGRADE" and sp.http:
        http_options["explicit_http_config"] = {"http2_protocol_options": {}}
    if http.get("useClientProtocol"):
        http_options.pop("explicit_http_config", None)
        http_options["use_downstream_protocol_config"] = {
            "http_protocol_options": {}, "http2_protocol_options": {}}
    streams = _positive(http, "maxConcurrentStreams")
    h2 = (http_options.get("explicit_http_config") or {}).get("http2_protocol_options")
    if streams and h2 is not None:
        h2["max_concurrent_streams"] = streams


def _outlier_detection(cluster: Obj, outlier: Obj | None, where: str) -> None:
    if outlier is None:
        return
    body: Obj = {"enforcing_success_rate": 0}
    for field, key, enforcing in (
            ("consecutive5xxErrors", "consecutive_5xx", "enforcing_consecutive_5xx"),
            ("consecutiveGatewayErrors", "consecutive_gateway_failure",
             "enforcing_consecutive_gateway_failure")):
        if outlier.get(field) is not None:
            value = int(outlier[field])
            body[key] = value
            body[enforcing] = 100 if value > 0 else 0
    for field, key in (("interval", "interval"), ("baseEjectionTime", "base_ejection_time")):
        if outlier.get(field) is not None:
            body[key] = duration(outlier[field], f"{where}.{field}")
    if _positive(outlier, "maxEjectionPercent"):
        body["max_ejection_percent"] = _positive(outlier, "maxEjectionPercent")
    if outlier.get("splitExternalLocalOriginErrors"):
        body["split_external_local_origin_errors"] = True
        body["enforcing_local_origin_success_rate"] = 0
        if _positive(outlier, "consecutiveLocalOriginFailures"):
            body["consecutive_local_origin_failure"] = _positive(
                outlier, "consecutiveLocalOriginFailures")
            body["enforcing_consecutive_local_origin_failure"] = 100
    cluster["outlier_detection"] = body
    # Istio's default minimum health is 0% (Envoy's panic threshold is 50%): with few
    # pods per service, ejecting one must not send traffic back to every pod
    cluster["common_lb_config"] = {"healthy_panic_threshold": {
        "value": float(outlier.get("minHealthPercent") or 0)}}


def _load_balancer(cluster: Obj, lb: Obj, where: str) -> None:
    simple = lb.get("simple")
    warmup = lb.get("warmupDurationSecs")
    if simple == "PASSTHROUGH":
        cluster["type"] = "ORIGINAL_DST"
        cluster["lb_policy"] = "CLUSTER_PROVIDED"
        del cluster["eds_cluster_config"]
        return
    if simple == "RANDOM":
        cluster["lb_policy"] = "RANDOM"
    elif simple == "ROUND_ROBIN":
        cluster["lb_policy"] = "ROUND_ROBIN"
    else:  # LEAST_REQUEST, LEAST_CONN (its old name), UNSPECIFIED: Istio's default
        cluster["lb_policy"] = "LEAST_REQUEST"
    if warmup is not None and cluster["lb_policy"] in ("ROUND_ROBIN", "LEAST_REQUEST"):
        config = f"{cluster['lb_policy'].lower()}_lb_config"
        cluster[config] = {"slow_start_config": {
            "slow_start_window": duration(warmup, f"{where}.warmupDurationSecs")}}
    consistent = lb.get("consistentHash")
    if consistent is None:
        return
    cluster.pop("round_robin_lb_config", None)
    cluster.pop("least_request_lb_config", None)
    if consistent.get("maglev") is not None:
        cluster["lb_policy"] = "MAGLEV"
        if _positive(consistent["maglev"] or {}, "tableSize"):
            cluster["maglev_lb_config"] = {"table_size": _positive(consistent["maglev"], "tableSize")}
        return
    cluster["lb_policy"] = "RING_HASH"
    ring = consistent.get("ringHash") or {}
    size = _positive(ring, "minimumRingSize") or _positive(consistent, "minimumRingSize")
    if consistent.get("ringHash") is None or size:
        cluster["ring_hash_lb_config"] = {"minimum_ring_size": size or 1024}


def _transport(cluster: Obj, settings: Obj | None, svc: MeshService, sp: ServicePort,
               subset: str) -> None:
    sni = names.outbound_sni(sp.port, svc.fqdn, subset)
    if settings is None:  # Istio's auto-mTLS: mTLS to sidecars, plaintext to the rest
        cluster["transport_socket_matches"] = [
            {"name": "tlsMode-istio", "match": {"tlsMode": "istio"},
             "transport_socket": tls.upstream_mtls(svc.service_accounts, sni)},
            {"name": "tlsMode-disabled", "match": {}, "transport_socket": tls.raw_buffer()},
        ]
        return
    mode = settings.get("mode") or "DISABLE"
    if mode == "ISTIO_MUTUAL":
        cluster["transport_socket"] = tls.upstream_mtls(
            settings.get("subjectAltNames") or svc.service_accounts, settings.get("sni") or sni)
    elif mode in ("SIMPLE", "MUTUAL"):
        cluster["transport_socket"] = _origination(settings, mode == "MUTUAL")
    else:
        cluster["transport_socket"] = tls.raw_buffer()


def _origination(settings: Obj, mutual: bool) -> Obj:
    """The app's own TLS to the server (SIMPLE; MUTUAL adds the client certificate)."""
    common: Obj = {}
    if mutual and settings.get("clientCertificate") and settings.get("privateKey"):
        common["tls_certificates"] = [{
            "certificate_chain": {"filename": settings["clientCertificate"]},
            "private_key": {"filename": settings["privateKey"]}}]
    if not settings.get("insecureSkipVerify"):
        validation: Obj = {"trusted_ca": {"filename": settings.get("caCertificates") or SYSTEM_CA}}
        sans = settings.get("subjectAltNames") or []
        if sans:
            validation["match_typed_subject_alt_names"] = [
                {"san_type": kind, "matcher": {"exact": san}}
                for san in sans for kind in ("DNS", "URI")]
        if settings.get("caCrl"):
            validation["crl"] = {"filename": settings["caCrl"]}
        common["validation_context"] = validation
    body: Obj = {"common_tls_context": common}
    if settings.get("sni"):
        body["sni"] = settings["sni"]
    return {"name": "envoy.transport_sockets.tls",
            "typed_config": typed("envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                                  body)}
