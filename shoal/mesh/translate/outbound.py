"""Outbound side: what the app's own connections turn into.

One listener `virtualOutbound` on 15001 (captured traffic lands here) with the
`original_dst` listener filter and one filter chain per Service VIP:port
(`filter_chain_match: destination_port + prefix_ranges VIP/32`). HTTP ports get an
HTTP connection manager (cors, fault, router) whose routes come over RDS (built by
`routes`: one route configuration per port number, `"80"`); other ports get a
tcp_proxy to the service cluster, or where a VirtualService `tcp` rule matches, to its
(weighted) destinations, plus one chain per `tls` rule's sniHosts on tls/https ports.
Anything else uses the default filter chain: `PassthroughCluster` (ALLOW_ANY) or
`BlackHoleCluster` (REGISTRY_ONLY). The listener depends on the client only through
VirtualService tcp/tls rules (their exportTo and source matches).

The clusters and endpoints these point at (`outbound|PORT||FQDN`, DestinationRule
subsets and policies) are built in `clusters`.
"""

from __future__ import annotations

from typing import Any

from shoal.mesh.meshconfig import REGISTRY_ONLY, MeshConfig
from shoal.mesh.translate import fixed, names, routes, telemetry
from shoal.mesh.translate.model import MeshService
from shoal.mesh.translate.protos import ADS_SOURCE, typed
from shoal.mesh.translate.virtualservice import ClientKey, VirtualServiceIndex

Obj = dict[str, Any]

TLS_PROTOCOLS = ("tls", "https")
"""Opaque ports whose VirtualService `tls` rules route by SNI."""
HTTP_FILTERS = [
    {"name": routes.CORS_FILTER,
     "typed_config": typed("envoy.extensions.filters.http.cors.v3.Cors")},
    {"name": routes.FAULT_FILTER,
     "typed_config": typed("envoy.extensions.filters.http.fault.v3.HTTPFault")},
    fixed.router_filter(),
]
"""Istio's outbound chain: cors and fault do nothing unless a route configures them
(typed_per_filter_config), then the router."""


def _tcp_proxy(stat_prefix: str, cluster: str, destination: Obj | None = None) -> Obj:
    """tcp_proxy to `cluster`, or to `destination` (cluster / weighted_clusters fields of
    a VirtualService tcp/tls rule) when given."""
    return {"name": "envoy.filters.network.tcp_proxy",
            "typed_config": typed("envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                                  {"stat_prefix": stat_prefix, **(destination or {"cluster": cluster}),
                                   **telemetry.tcp_proxy_logging(telemetry.OUTBOUND)})}


def _outbound_hcm(port: int) -> Obj:
    return {"name": "envoy.filters.network.http_connection_manager",
            "typed_config": typed(
                "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                {
                    "stat_prefix": f"outbound_0.0.0.0_{port}",
                    "rds": {"route_config_name": names.outbound_route(port),
                            "config_source": ADS_SOURCE},
                    "http_filters": HTTP_FILTERS,
                    "codec_type": "AUTO",
                    "use_remote_address": False,
                    "access_log": telemetry.access_logs(telemetry.OUTBOUND),
                })}


def build_outbound_listener(services: list[MeshService], mesh: MeshConfig,
                            index: VirtualServiceIndex, client: ClientKey) -> Obj:
    """virtualOutbound for a client: VirtualService `tcp` rules pick the tcp_proxy
    destination of an opaque port, `tls` rules add one chain per SNI set (server_names,
    read by the tls_inspector, enabled only on those ports)."""
    by_fqdn = {svc.fqdn: svc for svc in services}
    chains = []
    tls_ports: set[int] = set()
    for svc in services:
        if svc.vip is None:
            continue
        for sp in svc.ports:
            cluster = names.outbound_cluster(sp.port, svc.fqdn)
            match = {"destination_port": sp.port,
                     "prefix_ranges": [{"address_prefix": svc.vip, "prefix_len": 32}]}
            if sp.http:
                chains.append({"name": f"{svc.vip}_{sp.port}", "filter_chain_match": match,
                               "filters": [_outbound_hcm(sp.port)]})
                continue
            if index.has_l4_rules and sp.protocol in TLS_PROTOCOLS:
                for n, (sni, dest) in enumerate(routes.tls_routes(
                        svc, sp.port, index, client, by_fqdn, mesh.cluster_domain)):
                    tls_ports.add(sp.port)
                    chains.append({
                        "name": f"{svc.vip}_{sp.port}_tls{n}",
                        "filter_chain_match": {**match, "server_names": sni,
                                               "transport_protocol": "tls"},
                        "filters": [_tcp_proxy(cluster, cluster, dest)]})
            dest = routes.tcp_route(svc, sp.port, index, client, by_fqdn, mesh.cluster_domain) \
                if index.has_l4_rules else None
            chains.append({"name": f"{svc.vip}_{sp.port}", "filter_chain_match": match,
                           "filters": [_tcp_proxy(cluster, cluster, dest)]})
    default = names.BLACKHOLE if mesh.outbound_traffic_policy == REGISTRY_ONLY else names.PASSTHROUGH
    listener_filters: list[Obj] = [{
        "name": "envoy.filters.listener.original_dst",
        "typed_config": typed("envoy.extensions.filters.listener.original_dst.v3.OriginalDst"),
    }]
    if tls_ports:
        # only where SNI routing needs it: a server-first protocol elsewhere must not
        # wait for a ClientHello that never comes
        rules = [{"destination_port_range": {"start": p, "end": p + 1}} for p in sorted(tls_ports)]
        on = rules[0] if len(rules) == 1 else {"or_match": {"rules": rules}}
        listener_filters.append({
            "name": "envoy.filters.listener.tls_inspector",
            "typed_config": typed("envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"),
            "filter_disabled": {"not_match": on}})
    return {
        "name": names.VIRTUAL_OUTBOUND,
        "address": fixed.socket_address("0.0.0.0", names.OUTBOUND_PORT),
        "listener_filters": listener_filters,
        "filter_chains": chains,
        "default_filter_chain": {"name": default, "filters": [_tcp_proxy(default, default)]},
        "traffic_direction": "OUTBOUND",
    }
