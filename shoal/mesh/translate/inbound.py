"""Inbound side: connections from other pods to this pod's ports.

One listener `virtualInbound` on 15006 (PREROUTING capture lands here) with the
`original_dst` listener filter and filter chains per pod port, shaped by the port's
effective PeerAuthentication mode (see peerauth):

- STRICT: one chain, TLS with a required client certificate; plaintext fails the
  handshake and the connection is closed.
- PERMISSIVE: `tls_inspector` tells the cases apart: mesh TLS (Istio ALPN) -> mTLS
  chain; plaintext -> plaintext chain; other TLS (the app's own) -> passed through.
- DISABLE: plaintext only.

HTTP ports get an HTTP connection manager that sanitizes `x-forwarded-client-cert` and
sets it to the caller's SPIFFE URI (`SANITIZE_SET`, `uri: true`), so the app learns who
called and cannot be fooled by a header the caller set. Traffic goes to the cluster
`inbound|PORT||` = 127.0.0.1:PORT (the app must listen on 0.0.0.0 or 127.0.0.1).
Ports the pod does not declare fall to a default chain with the workload's mode and the
`InboundPassthroughClusterIpv4` (original destination, source 127.0.0.6).

Authentication and authorization (`rbac.InboundAuth`): every HTTP connection manager
runs the workload's jwt_authn and RBAC HTTP filters before the router; every tcp_proxy
(TCP ports, TLS passthrough, undeclared ports) is preceded by its network RBAC filters.
"""

from __future__ import annotations

from typing import Any

from shoal.mesh.meshconfig import MeshConfig
from shoal.mesh.translate import fixed, names, telemetry, tls
from shoal.mesh.translate.model import ContainerPort, is_http
from shoal.mesh.translate.peerauth import DISABLE, PERMISSIVE, MtlsPolicy
from shoal.mesh.translate.rbac import NO_AUTH, InboundAuth
from shoal.mesh.translate.protos import typed

Obj = dict[str, Any]


def build_inbound_clusters(ports: tuple[ContainerPort, ...]) -> list[Obj]:
    clusters = [fixed.inbound_passthrough_cluster()]
    for p in ports:
        name = names.inbound_cluster(p.port)
        clusters.append({
            "name": name, "type": "STATIC", "connect_timeout": fixed.CONNECT_TIMEOUT,
            "circuit_breakers": fixed.CIRCUIT_BREAKERS,
            "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
                {"endpoint": {"address": fixed.socket_address("127.0.0.1", p.port)}}]}]},
        })
    return clusters


def _inbound_filter(port: int, http: bool, cluster: str, auth: InboundAuth = NO_AUTH) -> list[Obj]:
    if not http:
        return [*auth.network_filters, {
            "name": "envoy.filters.network.tcp_proxy",
            "typed_config": typed("envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                                  {"stat_prefix": cluster, "cluster": cluster,
                                   **telemetry.tcp_proxy_logging(telemetry.INBOUND)})}]
    return [{"name": "envoy.filters.network.http_connection_manager",
            "typed_config": typed(
                "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                {
                    "stat_prefix": f"inbound_0.0.0.0_{port}",
                    "codec_type": "AUTO",
                    "route_config": {"name": cluster, "virtual_hosts": [{
                        "name": f"inbound|http|{port}", "domains": ["*"],
                        "routes": [{"name": "default", "match": {"prefix": "/"},
                                    "route": {"cluster": cluster, "timeout": "0s"}}],
                    }]},
                    "http_filters": [*auth.http_filters, fixed.router_filter()],
                    "forward_client_cert_details": "SANITIZE_SET",
                    "set_current_client_cert_details": {"uri": True},
                    "use_remote_address": False,
                    "access_log": telemetry.access_logs(telemetry.INBOUND),
                })}]


def _chains_for(
    mode: str, match: Obj, filters: list[Obj], passthrough_tls: list[Obj] | None,
    trust_domain: str, label: str,
) -> list[Obj]:
    mtls_chain = {"name": f"{label}-mtls", "filter_chain_match": dict(match),
                  "transport_socket": tls.downstream_mtls(trust_domain), "filters": filters}
    plain_chain = {"name": f"{label}-plaintext", "filter_chain_match": dict(match),
                   "filters": filters}
    if mode == DISABLE:
        return [plain_chain]
    if mode == PERMISSIVE:
        mtls_chain["filter_chain_match"].update(
            transport_protocol="tls", application_protocols=list(names.INBOUND_MESH_ALPNS))
        plain_chain["filter_chain_match"]["transport_protocol"] = "raw_buffer"
        chains = [mtls_chain, plain_chain]
        if passthrough_tls is not None:
            chains.append({"name": f"{label}-tls-passthrough",
                           "filter_chain_match": {**match, "transport_protocol": "tls"},
                           "filters": passthrough_tls})
        return chains
    return [mtls_chain]


def build_inbound_listener(
    ports: tuple[ContainerPort, ...], policy: MtlsPolicy, mesh: MeshConfig,
    auth: InboundAuth = NO_AUTH,
) -> Obj:
    chains: list[Obj] = []
    needs_inspector = policy.mode == PERMISSIVE
    for p in ports:
        mode = policy.for_port(p.port)
        needs_inspector |= mode == PERMISSIVE
        cluster = names.inbound_cluster(p.port)
        raw_tcp = _inbound_filter(p.port, False, cluster, auth)
        chains += _chains_for(mode, {"destination_port": p.port},
                              _inbound_filter(p.port, is_http(p.protocol), cluster, auth),
                              raw_tcp, mesh.trust_domain, f"inbound|{p.port}")
    passthrough = _inbound_filter(0, False, names.INBOUND_PASSTHROUGH, auth)
    default_chains = _chains_for(policy.mode, {}, passthrough, passthrough,
                                 mesh.trust_domain, "inbound-passthrough")
    # The default filter chain has no match; under PERMISSIVE the plaintext variant is the
    # fallback and the TLS ones become explicit catch-all chains.
    if len(default_chains) == 1:
        default_chain = default_chains[0]
        default_chain.pop("filter_chain_match", None)
    else:
        default_chain = next(c for c in default_chains if c["name"].endswith("plaintext"))
        default_chain.pop("filter_chain_match", None)
        chains += [c for c in default_chains if c is not default_chain]
    listener_filters = [{
        "name": "envoy.filters.listener.original_dst",
        "typed_config": typed("envoy.extensions.filters.listener.original_dst.v3.OriginalDst"),
    }]
    if needs_inspector:
        listener_filters.append({
            "name": "envoy.filters.listener.tls_inspector",
            "typed_config": typed("envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"),
        })
    return {
        "name": names.VIRTUAL_INBOUND,
        "address": fixed.socket_address("0.0.0.0", names.INBOUND_PORT),
        "listener_filters": listener_filters,
        "filter_chains": chains,
        "default_filter_chain": default_chain,
        "traffic_direction": "INBOUND",
    }
