"""Outbound side: what the app's own connections turn into.

One listener `virtualOutbound` on 15001 (captured traffic lands here) with the
`original_dst` listener filter and one filter chain per Service VIP:port
(`filter_chain_match: destination_port + prefix_ranges VIP/32`). HTTP ports get an
HTTP connection manager whose routes come over RDS, one route configuration per port
number (`"80"`), with one virtual host per service on that port; other ports get a
tcp_proxy straight to the service cluster. Anything else uses the default filter chain:
`PassthroughCluster` (ALLOW_ANY) or `BlackHoleCluster` (REGISTRY_ONLY).

The clusters and endpoints these point at (`outbound|PORT||FQDN`, DestinationRule
subsets and policies) are built in `clusters`.
"""

from __future__ import annotations

from typing import Any

from shoal.mesh.meshconfig import REGISTRY_ONLY, MeshConfig
from shoal.mesh.translate import fixed, names
from shoal.mesh.translate.model import MeshService
from shoal.mesh.translate.protos import ADS_SOURCE, typed

Obj = dict[str, Any]


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


def build_outbound_routes(
    services: list[MeshService], mesh: MeshConfig, proxy_namespace: str,
) -> list[Obj]:
    """One RouteConfiguration per HTTP port number, named like Istio ("80")."""
    by_port: dict[int, list[Obj]] = {}
    for svc in services:
        for sp in svc.ports:
            if not sp.http:
                continue
            by_port.setdefault(sp.port, []).append({
                "name": f"{svc.fqdn}:{sp.port}",
                "domains": _domains(svc, sp.port, proxy_namespace),
                "routes": [{
                    "name": "default",
                    "match": {"prefix": "/"},
                    "route": {"cluster": names.outbound_cluster(sp.port, svc.fqdn),
                              "timeout": "0s"},
                }],
            })
    routes = []
    for port, vhosts in sorted(by_port.items()):
        if mesh.outbound_traffic_policy == REGISTRY_ONLY:
            fallback: Obj = {"name": "block_all", "domains": ["*"], "routes": [{
                "name": "block_all", "match": {"prefix": "/"},
                "direct_response": {"status": 502}}]}
        else:
            fallback = {"name": "allow_any", "domains": ["*"], "routes": [{
                "name": "allow_any", "match": {"prefix": "/"},
                "route": {"cluster": names.PASSTHROUGH, "timeout": "0s"}}]}
        routes.append({
            "name": names.outbound_route(port),
            "virtual_hosts": vhosts + [fallback],
            "validate_clusters": False,
        })
    return routes


def _tcp_proxy(stat_prefix: str, cluster: str) -> Obj:
    return {"name": "envoy.filters.network.tcp_proxy",
            "typed_config": typed("envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                                  {"stat_prefix": stat_prefix, "cluster": cluster})}


def _outbound_hcm(port: int) -> Obj:
    return {"name": "envoy.filters.network.http_connection_manager",
            "typed_config": typed(
                "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                {
                    "stat_prefix": f"outbound_0.0.0.0_{port}",
                    "rds": {"route_config_name": names.outbound_route(port),
                            "config_source": ADS_SOURCE},
                    "http_filters": [fixed.router_filter()],
                    "codec_type": "AUTO",
                    "use_remote_address": False,
                })}


def build_outbound_listener(services: list[MeshService], mesh: MeshConfig) -> Obj:
    chains = []
    for svc in services:
        if svc.vip is None:
            continue
        for sp in svc.ports:
            cluster = names.outbound_cluster(sp.port, svc.fqdn)
            chains.append({
                "name": f"{svc.vip}_{sp.port}",
                "filter_chain_match": {
                    "destination_port": sp.port,
                    "prefix_ranges": [{"address_prefix": svc.vip, "prefix_len": 32}],
                },
                "filters": [_outbound_hcm(sp.port) if sp.http
                            else _tcp_proxy(cluster, cluster)],
            })
    default = names.BLACKHOLE if mesh.outbound_traffic_policy == REGISTRY_ONLY else names.PASSTHROUGH
    return {
        "name": names.VIRTUAL_OUTBOUND,
        "address": fixed.socket_address("0.0.0.0", names.OUTBOUND_PORT),
        "listener_filters": [{
            "name": "envoy.filters.listener.original_dst",
            "typed_config": typed("envoy.extensions.filters.listener.original_dst.v3.OriginalDst"),
        }],
        "filter_chains": chains,
        "default_filter_chain": {"name": default, "filters": [_tcp_proxy(default, default)]},
        "traffic_direction": "OUTBOUND",
    }
