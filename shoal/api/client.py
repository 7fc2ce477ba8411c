"""The `ApiClient` protocol: how every component above the API server talks to it.

Controllers, the node agent, the mesh control plane and the CLI use only this protocol.
Two implementations: `shoal.apiserver.local.LocalClient` (in-process, the embedded
default: same validation, admission and store as HTTP, without the HTTP hop) and
`shoal.client.HttpClient` (HTTPS with the kubeconfig token), so any
component can run as its own process.

Resources are named as Kubernetes names them on the command line: the plural, then the
group for non-core groups: ``pods``, ``services``, ``deployments.apps``,
``virtualservices.networking.istio.io``. Objects are plain dicts in Kubernetes JSON shape.

Errors are `shoal.api.errors.StatusError` subclasses: `NotFound`, `AlreadyExists`,
`Conflict` (stale resourceVersion), `Invalid` (field errors), `Gone` (watch revision
compacted away).
"""

from __future__ import annotations

import dataclasses
from typing import Any, AsyncIterator, Protocol

from shoal.api import errors, patch as patches

Obj = dict[str, Any]

PATCH_CONTENT_TYPES = {
    "merge": patches.MERGE_PATCH,
    "json": patches.JSON_PATCH,
    "strategic": patches.STRATEGIC_MERGE_PATCH,
}
"""`patch_type` of `ApiClient.patch` -> the Content-Type Kubernetes names it with."""


def patch_content_type(patch_type: str) -> str:
    """The Content-Type of a `patch_type`; BadRequest naming the accepted ones."""
    try:
        return PATCH_CONTENT_TYPES[patch_type]
    except (KeyError, TypeError):
        raise errors.BadRequest(
            f"patch_type: expected one of {', '.join(PATCH_CONTENT_TYPES)}, got {patch_type!r}"
        ) from None


def name_of(obj: Obj) -> tuple[str | None, str]:
    """(namespace, name) of an object to update; BadRequest when it has no name."""
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    name = meta.get("name") if isinstance(meta, dict) else None
    if not name or not isinstance(name, str):
        raise errors.BadRequest("metadata.name: Required value: an update names its object")
    return meta.get("namespace"), name


@dataclasses.dataclass(frozen=True)
class WatchEvent:
    """One change: type is ADDED, MODIFIED, DELETED (or BOOKMARK); object is the new state
    (for DELETED, the last state), with metadata.resourceVersion = the event's revision."""

    type: str
    object: Obj

    @property
    def revision(self) -> int:
        return int(self.object.get("metadata", {}).get("resourceVersion") or 0)


class ApiClient(Protocol):
    async def get(self, resource: str, namespace: str | None, name: str) -> Obj:
        """The object; raises NotFound."""

    async def list(
        self,
        resource: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> tuple[list[Obj], int]:
        """(items, revision of the list). namespace None lists across all namespaces."""

    async def create(self, resource: str, obj: Obj) -> Obj:
        """Create (defaulted, validated, admitted); raises AlreadyExists, Invalid."""

    async def update(self, resource: str, obj: Obj) -> Obj:
        """Replace spec/metadata; compare-and-swap on metadata.resourceVersion when set,
        raising Conflict when stale. Status is ignored (use update_status)."""

    async def update_status(self, resource: str, obj: Obj) -> Obj:
        """Replace status only (the /status subresource); same CAS rule as update."""

    async def patch(
        self, resource: str, namespace: str | None, name: str, patch: Any,
        patch_type: str = "merge", *, subresource: str | None = None,
    ) -> Obj:
        """patch_type: 'merge' (RFC 7386), 'json' (RFC 6902) or 'strategic'."""

    async def delete(
        self, resource: str, namespace: str | None, name: str, *,
        propagation_policy: str = "Background", grace_period_seconds: int | None = None,
    ) -> Obj:
        """Delete; returns the deleted object (or its state with deletionTimestamp set
        when finalizers keep it). Raises NotFound."""

    def watch(
        self,
        resource: str,
        namespace: str | None = None,
        *,
        resource_version: int | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> AsyncIterator[WatchEvent]:
        """Events after resource_version (None: from now, preceded by ADDED for every
        current object, as Kubernetes does for a watch without a resourceVersion).
        Raises Gone if resource_version was compacted away."""
