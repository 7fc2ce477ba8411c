"""Per-kind strategies: what the generic registry asks a kind before and after it writes.

Kubernetes' generic registry (`k8s.io/apiserver/pkg/registry/rest`) knows nothing of
pods or namespaces; each kind hands it a strategy (`PrepareForCreate`,
`PrepareForUpdate`, `BeginCreate` for allocations, graceful deletion, ...). This module
is that seam for shoal: `Strategy` is the default behaviour every kind gets, and a kind
that needs more subclasses it and passes an instance to `shoal.api.kinds.register(...,
strategy=)`. `shoal.apiserver.registry.Registry` calls only these hooks, so a new kind
plugs in without touching the generic code.

Order of calls on create: `prepare_for_create` -> defaulting -> mutating admission ->
validation (the kind's validator) -> validating admission -> `allocate` -> store write
(`release` of what `allocate` took if the write fails). On update of the main resource:
merge of server fields (status is kept when `keeps_status`) -> `prepare_for_update`
-> defaulting -> admission
-> validation -> `allocate(new, old)` -> write. On delete: `prepare_for_delete` decides
whether deletion waits (graceful); `finalized` decides when a waiting object may go;
`release(obj, None)` frees everything once it is gone.

Hooks that need server-side services (a ClusterIP allocator) get them through the
`ServerServices` protocol declared here, which the API server implements; this package
never imports the API server.

Concurrency: strategies are stateless and shared by every request; hooks must not block
(allocators are in-memory and synchronous).
"""

from __future__ import annotations

import copy
from typing import Any, Protocol

Obj = dict[str, Any]


class ServiceAllocator(Protocol):
    """Hands out ClusterIPs and NodePorts (implemented over shoal.network's pools)."""

    def allocate_cluster_ip(self, service_key: str, requested: str | None = None) -> str: ...
    def release_cluster_ip(self, service_key: str) -> None: ...
    def allocate_node_port(self, service_key: str, requested: int | None = None) -> int: ...
    def release_node_ports(self, service_key: str) -> None: ...


class ServerServices(Protocol):
    """What the API server offers strategies: allocators that live outside the store."""

    @property
    def services(self) -> ServiceAllocator | None:
        """The Service address allocator, or None when addresses are not allocated."""


class Strategy:
    """The default strategy: generic Kubernetes behaviour for any kind.

    Subclass and override only what a kind does differently. Every hook receives the
    object as a private copy it may change in place.
    """

    keeps_status: bool | None = None
    """Whether an update of the main resource keeps the stored status (the client's
    status is ignored; only /status changes it). None: when the kind has a status
    subresource, as Kubernetes' strategies for such kinds do."""

    graceful: bool = False
    """Deletion waits for a grace period (pods): DELETE answers 200 with the object while
    the grace runs, not 202 Accepted as for an object held by finalizers."""

    def prepare_for_create(self, obj: Obj, subresources: tuple[str, ...]) -> None:
        """PrepareForCreate: status is the server's, not the client's. Default: an empty
        status for kinds with a status subresource, the client's status otherwise."""
        if "status" in subresources:
            obj["status"] = {}

    def merge_subresource(self, subresource: str, current: Obj, obj: Obj) -> Obj | None:
        """The object after a write to `subresource`: a copy of the stored `current` with
        only the part that subresource owns taken from the client's `obj`; None when the
        kind has no writable subresource of that name. Default: `status`."""
        if subresource != "status":
            return None
        new = copy.deepcopy(current)
        if "status" in obj:
            new["status"] = obj["status"]
        return new

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        """PrepareForUpdate of the main resource, before defaulting: keep what the server
        set on the stored object that the client's replacement leaves out."""

    def allocate(self, obj: Obj, old: Obj | None, server: ServerServices) -> Any:
        """Take what the object needs from server-side pools before it is written
        (old is the stored object on update). Returns a token of what was newly taken,
        passed to `release` if the write fails. Raise `errors.Invalid` naming the field
        when the pool refuses."""
        return None

    def release(self, obj: Obj, taken: Any, server: ServerServices) -> None:
        """Give back what `allocate` took (`taken`), or everything the object holds when
        `taken` is None (the object was deleted)."""

    def prepare_for_delete(self, current: Obj, new: Obj, grace_seconds: int | None) -> bool:
        """Adjust `new` (a copy of `current` about to get deletionTimestamp) and return
        True when this kind's deletion must wait even without finalizers."""
        return False

    def finalized(self, obj: Obj) -> bool:
        """For an object with deletionTimestamp and no metadata.finalizers left: True
        when nothing of this kind still holds it, so the server removes it now."""
        return True


DEFAULT = Strategy()
"""The strategy of kinds registered without one."""
