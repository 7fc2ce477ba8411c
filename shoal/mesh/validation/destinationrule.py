"""DestinationRule (networking.istio.io v1/v1beta1/v1alpha3): its schema and Istio's rules.

`SCHEMA` declares every field of Istio's v1 API (JSON names): unknown fields and wrong
types are refused with the field path. `validate_destination_rule(obj)` adds Istio's
semantic rules:

- `host` required, a valid name (short, FQDN or `*`-prefixed wildcard);
- subsets: names required, DNS-1123 labels, unique; labels valid; each subset's own
  trafficPolicy follows the same rules as the top-level one;
- a trafficPolicy sets at least one field; `loadBalancer` has `simple` or
  `consistentHash`, not both; consistentHash has exactly one hash key (httpHeaderName,
  httpCookie (name and ttl), useSourceIp, httpQueryParameterName) and at most one of
  ringHash/maglev (a prime tableSize); warmup vs warmupDurationSecs exclusive;
  localityLbSetting distribute weights sum to 100;
- connectionPool and outlierDetection counts are >= 0, percentages 0-100, durations as
  Istio writes them (>= 1ms);
- tls: mode one of DISABLE, SIMPLE, MUTUAL, ISTIO_MUTUAL; MUTUAL needs credentialName or
  clientCertificate + privateKey; credentialName excludes file certificates;
  ISTIO_MUTUAL takes no certificates (the mesh supplies them);
- portLevelSettings: port.number 1-65535, unique;
- `exportTo` entries are ".", "*" or namespace names.

Pure.
"""

from __future__ import annotations

from typing import Any

from shoal.api import errors
from shoal.mesh.validation import common
from shoal.mesh.validation.common import Errs, as_dict, as_list

DURATION = "str"
CONSISTENT_HASH = {
    "httpHeaderName": "str",
    "httpCookie": {"name": "str", "path": "str", "ttl": DURATION,
                   "attributes": [{"name": "str", "value": "str"}]},
    "useSourceIp": "bool",
    "httpQueryParameterName": "str",
    "ringHash": {"minimumRingSize": "int"},
    "maglev": {"tableSize": "int"},
    "minimumRingSize": "int",
}
FAILOVER = [{"from": "str", "to": "str"}]
LOAD_BALANCER = {
    "simple": "str",
    "consistentHash": CONSISTENT_HASH,
    "localityLbSetting": {"distribute": [{"from": "str", "to": "Dict[str, int]"}],
                          "failover": FAILOVER, "failoverPriority": "List[str]",
                          "enabled": "bool"},
    "zoneAwareLbSetting": {"enabled": "bool", "failover": FAILOVER,
                           "failoverPriority": "List[str]", "minClusterSize": "int"},
    "warmupDurationSecs": DURATION,
    "warmup": {"duration": DURATION, "minimumPercent": "float", "aggression": "float"},
}
CONNECTION_POOL = {
    "tcp": {"maxConnections": "int", "connectTimeout": DURATION,
            "tcpKeepalive": {"probes": "int", "time": DURATION, "interval": DURATION},
            "maxConnectionDuration": DURATION, "idleTimeout": DURATION},
    "http": {"http1MaxPendingRequests": "int", "http2MaxRequests": "int",
             "maxRequestsPerConnection": "int", "maxRetries": "int", "idleTimeout": DURATION,
             "h2UpgradePolicy": "str", "useClientProtocol": "bool",
             "maxConcurrentStreams": "int",
             "http2KeepAlive": {"interval": DURATION, "timeout": DURATION}},
}
OUTLIER_DETECTION = {
    "consecutiveErrors": "int", "splitExternalLocalOriginErrors": "bool",
    "consecutiveLocalOriginFailures": "int", "consecutiveGatewayErrors": "int",
    "consecutive5xxErrors": "int", "interval": DURATION, "baseEjectionTime": DURATION,
    "maxEjectionPercent": "int", "minHealthPercent": "int",
    "outlierDetectionHttpErrorCodes": "List[int]",
}
CLIENT_TLS = {
    "mode": "str", "clientCertificate": "str", "privateKey": "str", "caCertificates": "str",
    "credentialName": "str", "subjectAltNames": "List[str]", "sni": "str",
    "insecureSkipVerify": "bool", "caCrl": "str",
}
_POLICY_PARTS = {"loadBalancer": LOAD_BALANCER, "connectionPool": CONNECTION_POOL,
                 "outlierDetection": OUTLIER_DETECTION, "tls": CLIENT_TLS}
TRAFFIC_POLICY = {
    **_POLICY_PARTS,
    "portLevelSettings": [{"port": {"number": "int"}, **_POLICY_PARTS}],
    "tunnel": {"protocol": "str", "targetHost": "str", "targetPort": "int"},
    "proxyProtocol": {"version": "str"},
    "retryBudget": {"percent": "float", "minRetryConcurrency": "int",
                    "budgetInterval": DURATION},
}
SPEC = {
    "host": "str",
    "trafficPolicy": TRAFFIC_POLICY,
    "subsets": [{"name": "str", "labels": "Dict[str, str]", "trafficPolicy": TRAFFIC_POLICY}],
    "exportTo": "List[str]",
    "workloadSelector": {"matchLabels": "Dict[str, str]"},
}
SCHEMA = {"spec": SPEC, "status": "object"}
"""The structural schema `kinds.register(schema=...)` takes."""

SIMPLE_LB = ["UNSPECIFIED", "LEAST_CONN", "RANDOM", "PASSTHROUGH", "ROUND_ROBIN",
             "LEAST_REQUEST"]
TLS_MODES = ["DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL"]
H2_UPGRADE_POLICIES = ["DEFAULT", "DO_NOT_UPGRADE", "UPGRADE"]
TUNNEL_PROTOCOLS = ["CONNECT", "POST"]
PROXY_PROTOCOL_VERSIONS = ["V1", "V2"]
HASH_KEYS = ("httpHeaderName", "httpCookie", "useSourceIp", "httpQueryParameterName")


def validate_destination_rule(obj: dict[str, Any]) -> Errs:
    """Every semantic problem of a DestinationRule, with field paths under `spec.`."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [errors.required("spec")] if spec is None else []
    errs: Errs = []
    host = spec.get("host")
    if not host:
        errs.append(errors.required("spec.host"))
    else:
        errs += common.host("spec.host", host)
    if spec.get("trafficPolicy") is not None:
        errs += _traffic_policy("spec.trafficPolicy", as_dict(spec["trafficPolicy"]))
    subsets = as_list(spec.get("subsets"))
    for i, subset in enumerate(subsets):
        subset, path = as_dict(subset), f"spec.subsets[{i}]"
        if not subset.get("name"):
            errs.append(errors.required(f"{path}.name"))
        errs += common.dns_label(f"{path}.name", subset.get("name") or None)
        errs += common.labels(f"{path}.labels", subset.get("labels"))
        if subset.get("trafficPolicy") is not None:
            errs += _traffic_policy(f"{path}.trafficPolicy", as_dict(subset["trafficPolicy"]))
    errs += common.unique_names("spec.subsets", subsets)
    errs += common.export_to("spec.exportTo", spec.get("exportTo"))
    selector = as_dict(spec.get("workloadSelector"))
    errs += common.labels("spec.workloadSelector.matchLabels", selector.get("matchLabels"))
    return errs


def _traffic_policy(path: str, policy: dict[str, Any]) -> Errs:
    if not any(v not in (None, [], {}) for v in policy.values()):
        return [errors.required(path, "a traffic policy must set at least one field")]
    errs = _policy_parts(path, policy)
    ports = as_list(policy.get("portLevelSettings"))
    for i, setting in enumerate(ports):
        setting, at = as_dict(setting), f"{path}.portLevelSettings[{i}]"
        number = as_dict(setting.get("port")).get("number")
        if number in (None, 0):
            errs.append(errors.required(f"{at}.port.number"))
        errs += common.port(f"{at}.port.number", number)
        if not any(setting.get(k) not in (None, {}) for k in _POLICY_PARTS):
            errs.append(errors.required(at, "a port traffic policy must set at least one of "
                                        "loadBalancer, connectionPool, outlierDetection, tls"))
        errs += _policy_parts(at, setting)
    seen: set[int] = set()
    for i, setting in enumerate(ports):
        number = as_dict(as_dict(setting).get("port")).get("number")
        if type(number) is int:
            if number in seen:
                errs.append(errors.duplicate(f"{path}.portLevelSettings[{i}].port.number", number))
            seen.add(number)
    if policy.get("tunnel") is not None:
        tunnel, at = as_dict(policy["tunnel"]), f"{path}.tunnel"
        errs += common.enum(f"{at}.protocol", tunnel.get("protocol"), TUNNEL_PROTOCOLS)
        if not tunnel.get("targetHost"):
            errs.append(errors.required(f"{at}.targetHost"))
        if not tunnel.get("targetPort"):
            errs.append(errors.required(f"{at}.targetPort"))
        errs += common.port(f"{at}.targetPort", tunnel.get("targetPort"))
    errs += common.enum(f"{path}.proxyProtocol.version",
                        as_dict(policy.get("proxyProtocol")).get("version"),
                        PROXY_PROTOCOL_VERSIONS)
    budget = as_dict(policy.get("retryBudget"))
    errs += common.number_between(f"{path}.retryBudget.percent", budget.get("percent"), 0, 100)
    errs += common.duration(f"{path}.retryBudget.budgetInterval", budget.get("budgetInterval"))
    return errs


def _policy_parts(path: str, policy: dict[str, Any]) -> Errs:
    errs: Errs = []
    if policy.get("loadBalancer") is not None:
        errs += _load_balancer(f"{path}.loadBalancer", as_dict(policy["loadBalancer"]))
    if policy.get("connectionPool") is not None:
        errs += _connection_pool(f"{path}.connectionPool", as_dict(policy["connectionPool"]))
    if policy.get("outlierDetection") is not None:
        errs += _outlier_detection(f"{path}.outlierDetection",
                                   as_dict(policy["outlierDetection"]))
    if policy.get("tls") is not None:
        errs += _tls(f"{path}.tls", as_dict(policy["tls"]))
    return errs


def _load_balancer(path: str, lb: dict[str, Any]) -> Errs:
    errs = common.one_of_fields(path, lb, ("simple", "consistentHash"))
    errs += common.enum(f"{path}.simple", lb.get("simple"), SIMPLE_LB)
    if lb.get("consistentHash") is not None:
        ch, at = as_dict(lb["consistentHash"]), f"{path}.consistentHash"
        errs += common.one_of_fields(at, ch, HASH_KEYS, required=True,
                                     what=" (the hash key)")
        errs += common.one_of_fields(at, ch, ("ringHash", "maglev"))
        errs += common.one_of_fields(at, ch, ("ringHash", "minimumRingSize"))
        if ch.get("httpHeaderName") is not None:
            errs += common.header_name(f"{at}.httpHeaderName", ch.get("httpHeaderName"))
        if ch.get("httpCookie") is not None:
            cookie = as_dict(ch["httpCookie"])
            if not cookie.get("name"):
                errs.append(errors.required(f"{at}.httpCookie.name"))
            errs += common.duration(f"{at}.httpCookie.ttl", cookie.get("ttl"), allow_zero=True)
        table_size = as_dict(ch.get("maglev")).get("tableSize")
        if type(table_size) is int and not _is_prime(table_size):
            errs.append(errors.invalid(f"{at}.maglev.tableSize", table_size,
                                       "must be a prime number"))
    locality = as_dict(lb.get("localityLbSetting"))
    if locality:
        at = f"{path}.localityLbSetting"
        if as_list(locality.get("distribute")) and as_list(locality.get("failover")):
            errs.append(errors.forbidden(f"{at}.failover",
                                         "distribute and failover cannot both be set"))
        for i, item in enumerate(as_list(locality.get("distribute"))):
            weights = [w for w in as_dict(as_dict(item).get("to")).values() if type(w) is int]
            if weights and sum(weights) != 100:
                errs.append(errors.invalid(f"{at}.distribute[{i}].to", sum(weights),
                                           "the weights must sum to 100"))
        for i, item in enumerate(as_list(locality.get("failover"))):
            item = as_dict(item)
            if item.get("from") and item.get("from") == item.get("to"):
                errs.append(errors.invalid(f"{at}.failover[{i}].to", item.get("to"),
                                           "failover must go to a different region"))
    errs += common.one_of_fields(path, lb, ("warmupDurationSecs", "warmup"))
    errs += common.duration(f"{path}.warmupDurationSecs", lb.get("warmupDurationSecs"))
    if lb.get("warmup") is not None:
        warmup, at = as_dict(lb["warmup"]), f"{path}.warmup"
        if not warmup.get("duration"):
            errs.append(errors.required(f"{at}.duration"))
        errs += common.duration(f"{at}.duration", warmup.get("duration"))
        errs += common.number_between(f"{at}.minimumPercent", warmup.get("minimumPercent"), 0, 100)
        aggression = warmup.get("aggression")
        if type(aggression) in (int, float) and aggression < 1:
            errs.append(errors.invalid(f"{at}.aggression", aggression,
                                       "must be greater than or equal to 1"))
    return errs


def _is_prime(n: int) -> bool:
    if n < 2:
        return False
    i = 2
    while i * i <= n:
        if n % i == 0:
            return False
        i += 1
    return True


def _connection_pool(path: str, pool: dict[str, Any]) -> Errs:
    if not any(v not in (None, {}) for v in pool.values()):
        return [errors.required(path, "a connection pool must set tcp or http")]
    errs: Errs = []
    tcp, at = as_dict(pool.get("tcp")), f"{path}.tcp"
    errs += common.non_negative(f"{at}.maxConnections", tcp.get("maxConnections"))
    for key in ("connectTimeout", "maxConnectionDuration", "idleTimeout"):
        errs += common.duration(f"{at}.{key}", tcp.get(key))
    keepalive = as_dict(tcp.get("tcpKeepalive"))
    errs += common.non_negative(f"{at}.tcpKeepalive.probes", keepalive.get("probes"))
    for key in ("time", "interval"):
        errs += common.duration(f"{at}.tcpKeepalive.{key}", keepalive.get(key))
    http, at = as_dict(pool.get("http")), f"{path}.http"
    for key in ("http1MaxPendingRequests", "http2MaxRequests", "maxRequestsPerConnection",
                "maxRetries", "maxConcurrentStreams"):
        errs += common.non_negative(f"{at}.{key}", http.get(key))
    errs += common.duration(f"{at}.idleTimeout", http.get("idleTimeout"))
    errs += common.enum(f"{at}.h2UpgradePolicy", http.get("h2UpgradePolicy"), H2_UPGRADE_POLICIES)
    h2_keepalive = as_dict(http.get("http2KeepAlive"))
    for key in ("interval", "timeout"):
        errs += common.duration(f"{at}.http2KeepAlive.{key}", h2_keepalive.get(key))
    return errs


def _outlier_detection(path: str, outlier: dict[str, Any]) -> Errs:
    errs: Errs = []
    for key in ("consecutiveErrors", "consecutiveLocalOriginFailures",
                "consecutiveGatewayErrors", "consecutive5xxErrors"):
        errs += common.non_negative(f"{path}.{key}", outlier.get(key))
    for key in ("interval", "baseEjectionTime"):
        errs += common.duration(f"{path}.{key}", outlier.get(key))
    for key in ("maxEjectionPercent", "minHealthPercent"):
        errs += common.int_between(f"{path}.{key}", outlier.get(key), 0, 100)
    for i, code in enumerate(as_list(outlier.get("outlierDetectionHttpErrorCodes"))):
        errs += common.int_between(f"{path}.outlierDetectionHttpErrorCodes[{i}]", code, 100, 599)
    return errs


def _tls(path: str, tls: dict[str, Any]) -> Errs:
    mode = tls.get("mode") or "DISABLE"
    errs = common.enum(f"{path}.mode", mode, TLS_MODES)
    files = [k for k in ("clientCertificate", "privateKey", "caCertificates") if tls.get(k)]
    if mode == "ISTIO_MUTUAL":
        for key in files + (["credentialName"] if tls.get("credentialName") else []):
            errs.append(errors.forbidden(f"{path}.{key}", "ISTIO_MUTUAL uses the mesh's own "
                                         "certificates: set no certificate fields"))
    elif mode in ("SIMPLE", "MUTUAL") and tls.get("credentialName"):
        for key in files:
            errs.append(errors.forbidden(f"{path}.{key}", "cannot be set together with "
                                         "credentialName"))
    elif mode == "MUTUAL":
        for key in ("clientCertificate", "privateKey"):
            if not tls.get(key):
                errs.append(errors.required(f"{path}.{key}", "MUTUAL needs credentialName or "
                                            "clientCertificate and privateKey"))
    for i, name in enumerate(as_list(tls.get("subjectAltNames"))):
        if name == "":
            errs.append(errors.invalid(f"{path}.subjectAltNames[{i}]", name, "must not be empty"))
    return errs
