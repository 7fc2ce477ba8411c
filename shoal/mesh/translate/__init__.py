"""Pure translation: (cluster state, proxy identity, mesh config) -> Envoy resources.

No I/O, no clock, no randomness: the same inputs give byte-identical resources, so
versions can be content hashes and a change that does not affect a proxy produces no
push to it. Modules, one per concern:

    model      Kubernetes dicts -> MeshService / ProxyIdentity values
    peerauth   PeerAuthentication precedence and validation
    outbound   virtualOutbound listener, outbound clusters, endpoints, routes
    inbound    virtualInbound listener and inbound clusters
    tls        mTLS transport sockets (SDS names only, never key material)
    fixed      passthrough/blackhole/admin clusters, readiness and prometheus listeners
    names      Istio-compatible resource names and well-known ports
    protos     dict -> typed protobuf, type URLs

Secrets (SDS) are not translated here: the server adds them from the CA.
"""

from __future__ import annotations

import dataclasses

from google.protobuf.message import Message

from shoal.mesh.meshconfig import MeshConfig
from shoal.mesh.source import ClusterState
from shoal.mesh.translate import inbound, outbound, protos
from shoal.mesh.translate.model import MeshService, ProxyIdentity, mesh_services, proxy_identity
from shoal.mesh.translate.peerauth import effective_mtls, validate_peer_authentication

__all__ = [
    "Resources", "translate", "ProxyIdentity", "MeshService", "mesh_services",
    "proxy_identity", "effective_mtls", "validate_peer_authentication",
]


@dataclasses.dataclass(frozen=True)
class Resources:
    """Typed Envoy resources for one proxy, each tuple sorted by name."""

    clusters: tuple[Message, ...] = ()
    endpoints: tuple[Message, ...] = ()
    listeners: tuple[Message, ...] = ()
    routes: tuple[Message, ...] = ()

    def by_type(self) -> dict[str, dict[str, Message]]:
        """type URL -> {resource name: message}."""
        return {
            protos.CLUSTER: {protos.resource_name(m): m for m in self.clusters},
            protos.ENDPOINT: {protos.resource_name(m): m for m in self.endpoints},
            protos.LISTENER: {protos.resource_name(m): m for m in self.listeners},
            protos.ROUTE: {protos.resource_name(m): m for m in self.routes},
        }


def _typed(type_url: str, bodies: list[dict]) -> tuple[Message, ...]:
    messages = [protos.to_proto(type_url, b) for b in bodies]
    return tuple(sorted(messages, key=protos.resource_name))


def translate(
    state: ClusterState,
    proxy: ProxyIdentity,
    mesh: MeshConfig,
    services: list[MeshService] | None = None,
) -> Resources:
    """Envoy resources for `proxy`. `services` may be passed when already computed for
    this state (it depends on the state only, not the proxy)."""
    if services is None:
        services = mesh_services(state, mesh)
    policy = effective_mtls(state, mesh, proxy.namespace, proxy.label_dict)
    return Resources(
        clusters=_typed(protos.CLUSTER, outbound.build_outbound_clusters(services, mesh)
                        + inbound.build_inbound_clusters(proxy.ports)),
        endpoints=_typed(protos.ENDPOINT, outbound.build_outbound_endpoints(services)),
        listeners=_typed(protos.LISTENER, [
            outbound.build_outbound_listener(services, mesh),
            inbound.build_inbound_listener(proxy.ports, policy, mesh),
        ]),
        routes=_typed(protos.ROUTE, outbound.build_outbound_routes(services, mesh, proxy.namespace)),
    )
