"""Pure translation: (cluster state, proxy identity, mesh config) -> Envoy resources.

No I/O, no clock, no randomness: the same inputs give byte-identical resources, so
versions can be content hashes and a change that does not affect a proxy produces no
push to it. Modules, one per concern:

    model      Kubernetes dicts -> MeshService / ProxyIdentity values
    peerauth   PeerAuthentication precedence and validation
    outbound   virtualOutbound listener and outbound routes
    clusters   outbound clusters and endpoints: DestinationRule lookup, subsets, policies
    inbound    virtualInbound listener and inbound clusters
    tls        mTLS transport sockets (SDS names only, never key material)
    fixed      passthrough/blackhole/admin clusters, readiness and prometheus listeners
    names      Istio-compatible resource names and well-known ports
    protos     dict -> typed protobuf, type URLs

Secrets (SDS) are not translated here: the control loop adds them from the CA.
`Outbound(state, mesh)` is the proxy-independent part, built once per state and
shared by every proxy's `translate(...)`; what depends on the client namespace
(DestinationRule lookup, short route domains) is built once per namespace and shared
by the namespaces that see the same rules. Parsed messages are memoized and shared,
so treat every returned message as immutable.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Hashable

from google.protobuf.message import Message

from shoal.mesh.meshconfig import MeshConfig
from shoal.mesh.source import ClusterState
from shoal.mesh.translate import clusters, inbound, outbound, protos
from shoal.mesh.translate.model import (
    ContainerPort, MeshService, ProxyIdentity, mesh_services, proxy_identity,
)
from shoal.mesh.translate.peerauth import MtlsPolicy, effective_mtls, validate_peer_authentication

__all__ = [
    "Resources", "translate", "Outbound", "ProxyIdentity", "MeshService", "mesh_services",
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


class Outbound:
    """The proxy-independent part of translation for one cluster state, built once and
    shared by every proxy: services, the outbound listener; outbound clusters and
    endpoints once per DestinationRule view (`rules.key(namespace)`: namespaces that
    see the same rules share them); route configurations once per client namespace
    (the short service name is a domain only in the service's own namespace)."""

    def __init__(self, state: ClusterState, mesh: MeshConfig) -> None:
        self.mesh = mesh
        self.services = mesh_services(state, mesh)
        self.rules = clusters.DestinationRules.from_state(state, mesh)
        self._clusters: dict[Hashable, tuple[tuple[Message, ...], tuple[Message, ...]]] = {}
        self.listener = protos.to_proto(
            protos.LISTENER, outbound.build_outbound_listener(self.services, mesh))
        self._routes: dict[str, tuple[Message, ...]] = {}

    def clusters(self, namespace: str) -> tuple[Message, ...]:
        return self._outbound(namespace)[0]

    def endpoints(self, namespace: str) -> tuple[Message, ...]:
        return self._outbound(namespace)[1]

    def _outbound(self, namespace: str) -> tuple[tuple[Message, ...], tuple[Message, ...]]:
        key = self.rules.key(namespace)
        if key not in self._clusters:
            bodies, assignments = clusters.build_outbound(self.services, self.rules, namespace)
            self._clusters[key] = (_typed(protos.CLUSTER, bodies),
                                   _typed(protos.ENDPOINT, assignments))
        return self._clusters[key]

    def routes(self, namespace: str) -> tuple[Message, ...]:
        if namespace not in self._routes:
            self._routes[namespace] = _typed(protos.ROUTE, clusters.apply_default_hash_policies(
                outbound.build_outbound_routes(self.services, self.mesh, namespace),
                self.services, self.rules, namespace))
        return self._routes[namespace]


def translate(
    state: ClusterState,
    proxy: ProxyIdentity,
    mesh: MeshConfig,
    shared: Outbound | None = None,
) -> Resources:
    """Envoy resources for `proxy`. `shared` is `Outbound(state, mesh)`, passed when
    translating many proxies for the same state (it does not depend on the proxy)."""
    if shared is None:
        shared = Outbound(state, mesh)
    policy = effective_mtls(state, mesh, proxy.namespace, proxy.label_dict)
    inbound_clusters, inbound_listener = _inbound(proxy.ports, policy, mesh)
    return Resources(
        clusters=tuple(sorted(shared.clusters(proxy.namespace) + inbound_clusters,
                              key=protos.resource_name)),
        endpoints=shared.endpoints(proxy.namespace),
        listeners=tuple(sorted((shared.listener, inbound_listener), key=protos.resource_name)),
        routes=shared.routes(proxy.namespace),
    )


@functools.lru_cache(maxsize=1024)
def _inbound(ports: tuple[ContainerPort, ...], policy: MtlsPolicy,
             mesh: MeshConfig) -> tuple[tuple[Message, ...], Message]:
    """Inbound clusters and listener: a function of hashable values only, so proxies
    with the same ports and policy share them (most replicas of a workload)."""
    return (_typed(protos.CLUSTER, inbound.build_inbound_clusters(ports)),
            protos.to_proto(protos.LISTENER, inbound.build_inbound_listener(ports, policy, mesh)))
