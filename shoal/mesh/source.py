"""`ClusterSource`: the only way the mesh reads cluster state.

The mesh needs a handful of Kubernetes kinds, as plain dicts in Kubernetes JSON shape:
namespaces, services, endpoints, pods, Istio's security kinds (PeerAuthentication,
AuthorizationPolicy, RequestAuthentication) and networking kinds (VirtualService,
DestinationRule, EnvoyFilter) (`KINDS`). A source gives
a consistent `ClusterState` value on demand and tells when something changed; the
control plane re-reads the state after a (debounced) change, level-based, so a source
may coalesce or repeat change notices freely but must never lose the last one.

Implementations:

- `InMemorySource` here (tests, `shoal mesh inject`, benchmarks): `put`/`delete` dicts.
- `shoal.mesh.apisource.ApiSource` over `shoal.api.client.ApiClient` (one informer per
  kind: `snapshot()` = the cached lists, `changes()` = their events).
- later, one over a real Kubernetes API (same shape, kubernetes_asyncio or the
  official client in a thread).

Concurrency: `snapshot()` returns an immutable value (callers must not mutate the
dicts); `changes()` may be iterated by one consumer at a time per call; each call
returns an independent subscription.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
from typing import Any, AsyncIterator, Iterable, Mapping, Protocol

Obj = dict[str, Any]

NAMESPACES = "namespaces"
SERVICES = "services"
ENDPOINTS = "endpoints"
PODS = "pods"
PEER_AUTHENTICATIONS = "peerauthentications.security.istio.io"
VIRTUAL_SERVICES = "virtualservices.networking.istio.io"
DESTINATION_RULES = "destinationrules.networking.istio.io"
ENVOY_FILTERS = "envoyfilters.networking.istio.io"
AUTHORIZATION_POLICIES = "authorizationpolicies.security.istio.io"
REQUEST_AUTHENTICATIONS = "requestauthentications.security.istio.io"
KINDS = (NAMESPACES, SERVICES, ENDPOINTS, PODS, PEER_AUTHENTICATIONS,
         VIRTUAL_SERVICES, DESTINATION_RULES, ENVOY_FILTERS, AUTHORIZATION_POLICIES,
         REQUEST_AUTHENTICATIONS)
"""Resource names as the ApiClient spells them."""


@dataclasses.dataclass(frozen=True)
class ClusterChange:
    """Something of `kind` named namespace/name changed (added, modified or deleted)."""

    kind: str
    namespace: str | None
    name: str


@dataclasses.dataclass(frozen=True)
class ClusterState:
    """A point-in-time view: kind -> {(namespace, name): object}. Treat as read-only."""

    objects: Mapping[str, Mapping[tuple[str | None, str], Obj]] = dataclasses.field(
        default_factory=dict)
    revision: int = 0
    """Increases with every change the source saw; equal revisions mean equal state."""

    def list(self, kind: str, namespace: str | None = None) -> list[Obj]:
        items = self.objects.get(kind, {})
        return [o for (ns, _), o in sorted(items.items(), key=lambda kv: (kv[0][0] or "", kv[0][1]))
                if namespace is None or ns == namespace]

    def get(self, kind: str, namespace: str | None, name: str) -> Obj | None:
        return self.objects.get(kind, {}).get((namespace, name))

    @classmethod
    def of(cls, objects: Iterable[tuple[str, Obj]], revision: int = 0) -> "ClusterState":
        """State from (kind, object) pairs; handy in tests."""
        table: dict[str, dict[tuple[str | None, str], Obj]] = {k: {} for k in KINDS}
        for kind, obj in objects:
            table.setdefault(kind, {})[state_key(kind, obj)] = obj
        return cls(table, revision)


def state_key(kind: str, obj: Obj) -> tuple[str | None, str]:
    """(namespace, name) of an object in a ClusterState; namespaces have no namespace."""
    meta = obj.get("metadata") or {}
    return (None if kind == NAMESPACES else meta.get("namespace") or "default", meta["name"])


class ClusterSource(Protocol):
    async def snapshot(self) -> ClusterState:
        """The current state of every kind in KINDS."""

    def changes(self) -> AsyncIterator[ClusterChange]:
        """Change notices from the moment of this call on (subscribe first, then read
        `snapshot()`, so nothing falls between), until the iterator is closed."""


class ChangeFeed:
    """The notice side every ClusterSource shares: `changes()` subscriptions, each fed
    every notice from the moment it was made, and a revision counting the notices."""

    def __init__(self) -> None:
        self._revision = 0
        self._subscribers: set[asyncio.Queue[ClusterChange]] = set()

    def _notify(self, change: ClusterChange) -> None:
        self._revision += 1
        for queue in self._subscribers:
            queue.put_nowait(change)

    def changes(self) -> AsyncIterator[ClusterChange]:
        queue: asyncio.Queue[ClusterChange] = asyncio.Queue()
        self._subscribers.add(queue)  # subscribed now, not at the first iteration
        return self._drain(queue)

    async def _drain(self, queue: asyncio.Queue[ClusterChange]) -> AsyncIterator[ClusterChange]:
        try:
            while True:
                yield await queue.get()
        finally:
            self._subscribers.discard(queue)


class InMemorySource(ChangeFeed):
    """A ClusterSource over dicts held in memory. `put`/`delete` notify subscribers."""

    def __init__(self, objects: Iterable[tuple[str, Obj]] = ()) -> None:
        super().__init__()
        self._table: dict[str, dict[tuple[str | None, str], Obj]] = {k: {} for k in KINDS}
        for kind, obj in objects:
            self.put(kind, obj)

    def put(self, kind: str, obj: Obj) -> None:
        key = state_key(kind, obj)
        self._table.setdefault(kind, {})[key] = copy.deepcopy(obj)
        self._notify(ClusterChange(kind, *key))

    def delete(self, kind: str, namespace: str | None, name: str) -> None:
        if self._table.get(kind, {}).pop((namespace, name), None) is not None:
            self._notify(ClusterChange(kind, namespace, name))

    async def snapshot(self) -> ClusterState:
        return ClusterState({k: dict(v) for k, v in self._table.items()}, self._revision)
