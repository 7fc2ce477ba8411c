"""LocalClient: the in-process `ApiClient` (the embedded default).

Calls go straight to the `Registry` — the same defaulting, admission, validation and
store as over HTTP, without serialisation or a socket. Objects returned are fresh dicts
the caller may mutate.

For tests and tools that need an API without the daemon::

    async with LocalClient.open(settings.store_path) as client:
        await client.create("namespaces", {...})
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, AsyncIterator

from shoal.api import client as api_client, kinds
from shoal.api.builtin.namespaces import SYSTEM_NAMESPACES, ensure_namespaces
from shoal.api.client import PATCH_CONTENT_TYPES, Obj, WatchEvent
from shoal.apiserver.admission import AdmissionChain
from shoal.apiserver.registry import Registry, ServiceAllocator
from shoal.store import Store

__all__ = ["LocalClient", "PATCH_CONTENT_TYPES", "SYSTEM_NAMESPACES", "ensure_namespaces"]


class LocalClient:
    """ApiClient over a Registry in this process."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls,
        store_path: Path | str,
        *,
        admission: AdmissionChain | None = None,
        services: ServiceAllocator | None = None,
        bootstrap: bool = True,
    ) -> AsyncIterator["LocalClient"]:
        """A client over a store opened at store_path; closes the store on exit.
        With bootstrap, the namespaces every cluster has are created if missing."""
        store = await Store.open(store_path)
        try:
            client = cls(Registry(store, admission=admission, services=services))
            if bootstrap:
                await ensure_namespaces(client)
            yield client
        finally:
            await store.close()

    async def get(self, resource: str, namespace: str | None, name: str) -> Obj:
        return await self.registry.get(kinds.by_resource(resource), namespace, name)

    async def list(
        self,
        resource: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> tuple[list[Obj], int]:
        return await self.registry.list(
            kinds.by_resource(resource), namespace,
            label_selector=label_selector, field_selector=field_selector,
        )

    async def create(self, resource: str, obj: Obj) -> Obj:
        rt = kinds.by_resource(resource)
        namespace = (obj.get("metadata") or {}).get("namespace")
        return await self.registry.create(rt, namespace, obj)

    async def update(self, resource: str, obj: Obj) -> Obj:
        namespace, name = api_client.name_of(obj)
        return await self.registry.update(kinds.by_resource(resource), namespace, name, obj)

    async def update_status(self, resource: str, obj: Obj) -> Obj:
        namespace, name = api_client.name_of(obj)
        return await self.registry.update(
            kinds.by_resource(resource), namespace, name, obj, subresource="status"
        )

    async def patch(
        self,
        resource: str,
        namespace: str | None,
        name: str,
        patch: Any,
        patch_type: str = "merge",
        *,
        subresource: str | None = None,
    ) -> Obj:
        return await self.registry.patch(
            kinds.by_resource(resource), namespace, name, patch,
            api_client.patch_content_type(patch_type),
            subresource=subresource,
        )

    async def delete(
        self,
        resource: str,
        namespace: str | None,
        name: str,
        *,
        propagation_policy: str = "Background",
        grace_period_seconds: int | None = None,
    ) -> Obj:
        return await self.registry.delete(
            kinds.by_resource(resource), namespace, name,
            propagation_policy=propagation_policy,
            grace_period_seconds=grace_period_seconds,
        )

    async def watch(
        self,
        resource: str,
        namespace: str | None = None,
        *,
        resource_version: int | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> AsyncIterator[WatchEvent]:
        events = await self.registry.watch(
            kinds.by_resource(resource), namespace,
            resource_version=resource_version,
            label_selector=label_selector, field_selector=field_selector,
        )
        try:
            async for event in events:
                yield event
        finally:
            await events.aclose()
