"""Resources every sidecar has regardless of cluster state.

Clusters `PassthroughCluster` (ORIGINAL_DST: unknown destinations go where the app
meant), `BlackHoleCluster` (REGISTRY_ONLY), `InboundPassthroughClusterIpv4` (inbound to
undeclared ports, from 127.0.0.6 so capture does not loop) and the admin cluster; the
static listeners on 15021 (`/healthz/ready` -> Envoy's `/ready`, 200 only once the
initial xDS config is warm) and 15090 (`/stats/prometheus`). The bootstrap embeds the
admin cluster and the two static listeners, so readiness and metrics answer even
before the control plane does.
"""

from __future__ import annotations

from typing import Any

from shoal.mesh.translate import names, telemetry
from shoal.mesh.translate.protos import typed

Obj = dict[str, Any]

CONNECT_TIMEOUT = "10s"
MAX = 4294967295
CIRCUIT_BREAKERS = {"thresholds": [{
    "max_connections": MAX, "max_pending_requests": MAX, "max_requests": MAX, "max_retries": MAX,
}]}
"""Envoy's default thresholds (1024) would throttle a busy sidecar; Istio lifts them too."""


def socket_address(ip: str, port: int) -> Obj:
    return {"socket_address": {"address": ip, "port_value": port}}


def passthrough_cluster() -> Obj:
    return {
        "name": names.PASSTHROUGH, "type": "ORIGINAL_DST", "lb_policy": "CLUSTER_PROVIDED",
        "connect_timeout": CONNECT_TIMEOUT, "circuit_breakers": CIRCUIT_BREAKERS,
    }


def inbound_passthrough_cluster() -> Obj:
    return {
        "name": names.INBOUND_PASSTHROUGH, "type": "ORIGINAL_DST",
        "lb_policy": "CLUSTER_PROVIDED", "connect_timeout": CONNECT_TIMEOUT,
        "circuit_breakers": CIRCUIT_BREAKERS,
        "upstream_bind_config": {"source_address": {
            "address": names.INBOUND_BIND_ADDRESS, "port_value": 0}},
    }


def blackhole_cluster() -> Obj:
    return {"name": names.BLACKHOLE, "type": "STATIC", "connect_timeout": CONNECT_TIMEOUT}


def admin_cluster() -> Obj:
    return {
        "name": names.ADMIN_CLUSTER, "type": "STATIC", "connect_timeout": "1s",
        "load_assignment": {"cluster_name": names.ADMIN_CLUSTER, "endpoints": [{
            "lb_endpoints": [{"endpoint": {"address": socket_address(
                "127.0.0.1", names.ADMIN_PORT)}}]}]},
    }


def router_filter() -> Obj:
    return {"name": "envoy.filters.http.router",
            "typed_config": typed("envoy.extensions.filters.http.router.v3.Router")}


def _admin_route_listener(name: str, port: int, path: str, rewrite: str | None,
                          filters: list[Obj] | None = None) -> Obj:
    route: Obj = {"cluster": names.ADMIN_CLUSTER, "timeout": "5s"}
    if rewrite:
        route["prefix_rewrite"] = rewrite
    return {
        "name": name,
        "address": socket_address("0.0.0.0", port),
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": typed(
                "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                {
                    "stat_prefix": name,
                    "route_config": {"virtual_hosts": [{
                        "name": name, "domains": ["*"],
                        "routes": [{"match": {"path": path}, "route": route}],
                    }]},
                    "http_filters": [*(filters or []), router_filter()],
                }),
        }]}],
    }


def readiness_listener() -> Obj:
    """15021: GET /healthz/ready answers 200 once Envoy's initial config is warm."""
    return _admin_route_listener(names.READINESS_LISTENER, names.READINESS_PORT,
                                 "/healthz/ready", "/ready")


def prometheus_listener(node_id: str | None = None) -> Obj:
    """15090: GET /stats/prometheus serves Envoy's stats in Prometheus format; with the
    proxy's `node_id`, followed by its Istio series from the metrics service."""
    return _admin_route_listener(names.PROMETHEUS_LISTENER, names.PROMETHEUS_PORT,
                                 "/stats/prometheus", None,
                                 telemetry.prometheus_filters(node_id) if node_id else None)
