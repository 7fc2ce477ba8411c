"""Pure translation: (cluster state, proxy identity, mesh config) -> Envoy resources.

No I/O, no clock, no randomness: the same inputs give byte-identical resources, so
versions can be content hashes and a change that does not affect a proxy produces no
push to it. Modules, one per concern:

    model      Kubernetes dicts -> MeshService / ProxyIdentity values
    peerauth   PeerAuthentication precedence and validation
    outbound   virtualOutbound listener (incl. VirtualService tcp/tls rules)
    clusters   outbound clusters and endpoints: DestinationRule lookup, subsets, policies
    routes     outbound RDS: default routes and VirtualService http rules -> Envoy routes
    virtualservice  which VirtualServices apply to a service and a client (hosts, gateways,
               exportTo, merge, delegate, source matches)
    inbound    virtualInbound listener and inbound clusters
    rbac       AuthorizationPolicy -> RBAC filters (HTTP and network), which policies apply
    jwt        RequestAuthentication -> jwt_authn (remote JWKS handed in as a `JwksTable`)
    tls        mTLS transport sockets (SDS names only, never key material)
    fixed      passthrough/blackhole/admin clusters, readiness and prometheus listeners
    envoyfilter  EnvoyFilter patches, applied last, per proxy (skips in `problems`)
    names      Istio-compatible resource names and well-known ports
    protos     dict -> typed protobuf, type URLs

Secrets (SDS) are not translated here: the control loop adds them from the CA.
`Outbound(state, mesh)` is the part shared between proxies, built once per state and
passed to every proxy's `translate(...)`: clusters and endpoints are proxy-independent;
route configurations and the outbound listener depend on the client only through its
`ClientKey` (namespace, and the labels VirtualService `sourceLabels` name) and are
memoized per key, so a VirtualService change yields new resources only for the
clients it concerns. Parsed messages are memoized and shared, so treat every returned
message as immutable.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Hashable

from google.protobuf.message import Message

from shoal.mesh.meshconfig import MeshConfig
from shoal.mesh.source import ENVOY_FILTERS, ClusterState
from shoal.mesh.translate import clusters, inbound, jwt, outbound, protos, rbac, routes
from shoal.mesh.translate.envoyfilter import apply_envoy_filters
from shoal.mesh.translate.model import (
    ContainerPort, MeshService, ProxyIdentity, mesh_services, proxy_identity,
)
from shoal.mesh.translate.peerauth import MtlsPolicy, effective_mtls, validate_peer_authentication
from shoal.mesh.translate.virtualservice import ClientKey, VirtualServiceIndex

__all__ = [
    "Resources", "translate", "Outbound", "ProxyIdentity", "MeshService", "mesh_services",
    "proxy_identity", "effective_mtls", "validate_peer_authentication", "ClientKey",
]


@dataclasses.dataclass(frozen=True)
class Resources:
    """Typed Envoy resources for one proxy, each tuple sorted by name."""

    clusters: tuple[Message, ...] = ()
    endpoints: tuple[Message, ...] = ()
    listeners: tuple[Message, ...] = ()
    routes: tuple[Message, ...] = ()
    problems: tuple[str, ...] = ()
    """What translation skipped for this proxy and why (an EnvoyFilter patch that does
    not parse or apply); not served, shown by `shoal mesh status`."""

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
    """The shared part of translation for one cluster state, built once and used by
    every proxy: services, the VirtualService index, outbound clusters and endpoints;
    route configurations and the outbound listener per `ClientKey` (the short service
    name is a domain only in the service's own namespace; VirtualServices have
    exportTo and source matches)."""

    def __init__(self, state: ClusterState, mesh: MeshConfig,
                 jwks: jwt.JwksTable | None = None) -> None:
        self.mesh = mesh
        self.jwks: jwt.JwksTable = jwks or {}
        """Remote JWKS the control plane fetched (RequestAuthentication jwksUri)."""
        self.services = mesh_services(state, mesh)
        self.virtual_services = VirtualServiceIndex(state, mesh)
        self.rules = clusters.DestinationRules.from_state(state, mesh)
        self._clusters: dict[Hashable, tuple[tuple[Message, ...], tuple[Message, ...]]] = {}
        self._routes: dict[ClientKey, tuple[Message, ...]] = {}
        self._listeners: dict[ClientKey | None, Message] = {}

    def clusters(self, namespace: str) -> tuple[Message, ...]:
        return self._outbound(namespace)[0]

    def endpoints(self, namespace: str) -> tuple[Message, ...]:
        return self._outbound(namespace)[1]

    def _outbound(self, namespace: str) -> tuple[tuple[Message, ...], tuple[Message, ...]]:
        key = self.rules.key(namespace)  # namespaces that see the same rules share
        if key not in self._clusters:
            bodies, assignments = clusters.build_outbound(self.services, self.rules, namespace)
            self._clusters[key] = (_typed(protos.CLUSTER, bodies),
                                   _typed(protos.ENDPOINT, assignments))
        return self._clusters[key]

    def client(self, proxy: ProxyIdentity) -> ClientKey:
        return self.virtual_services.client_key(proxy.namespace, proxy.label_dict)

    def routes(self, client: ClientKey) -> tuple[Message, ...]:
        if client not in self._routes:
            self._routes[client] = _typed(protos.ROUTE, routes.build_outbound_routes(
                self.services, self.mesh, self.virtual_services, client,
                self._hash_policies(client.namespace) if self.rules else routes.no_hash_policies))
        return self._routes[client]

    def _hash_policies(self, client_namespace: str) -> routes.HashPolicies:
        """The route hash_policy of each destination's DestinationRule, as clients in
        `client_namespace` see it (Istio hashes on the route; the cluster picks RING_HASH)."""
        rules = self.rules

        def hash_policies(svc: MeshService, port: int, subset: str) -> list[dict]:
            return clusters.hash_policy(rules.policy(client_namespace, svc, port, subset))
        return hash_policies

    def listener(self, client: ClientKey) -> Message:
        # without tcp/tls rules the listener is the same for every client
        key = client if self.virtual_services.has_l4_rules else None
        if key not in self._listeners:
            self._listeners[key] = protos.to_proto(protos.LISTENER, outbound.build_outbound_listener(
                self.services, self.mesh, self.virtual_services, client))
        return self._listeners[key]


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
    auth = rbac.inbound_auth(state, mesh, proxy.namespace, proxy.label_dict, shared.jwks)
    inbound_clusters, inbound_listener = _inbound(proxy.ports, policy, mesh, auth)
    client = shared.client(proxy)
    resources = Resources(
        clusters=tuple(sorted(shared.clusters(proxy.namespace) + inbound_clusters,
                              key=protos.resource_name)),
        endpoints=shared.endpoints(proxy.namespace),
        listeners=tuple(sorted((shared.listener(client), inbound_listener),
                               key=protos.resource_name)),
        routes=shared.routes(client),
        problems=auth.problems,
    )
    return apply_envoy_filters(resources, state.list(ENVOY_FILTERS), proxy, mesh.root_namespace)


@functools.lru_cache(maxsize=1024)
def _inbound(ports: tuple[ContainerPort, ...], policy: MtlsPolicy, mesh: MeshConfig,
             auth: rbac.InboundAuth = rbac.NO_AUTH) -> tuple[tuple[Message, ...], Message]:
    """Inbound clusters and listener: a function of hashable values only, so proxies
    with the same ports and policies share them (most replicas of a workload)."""
    return (_typed(protos.CLUSTER, inbound.build_inbound_clusters(ports)),
            protos.to_proto(protos.LISTENER,
                            inbound.build_inbound_listener(ports, policy, mesh, auth)))
