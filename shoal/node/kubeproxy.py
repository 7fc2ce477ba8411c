"""The kube-proxy role: keep the node's service rules and the cluster DNS answers in step
with the API's Services and Endpoints.

Two watches (Services, Endpoints) feed one in-memory picture; any change marks it dirty,
and one sync loop turns the whole picture into views (`shoal.network.service_view`),
hands them to the DNS directory and applies the proxy rules in one atomic
`iptables-restore` (`ServiceProxy.sync`). Changes arriving together are coalesced
(`debounce_seconds`), so a rollout that touches many Endpoints rewrites the rules once.

Level-based: a failed sync is retried on the next change or after `retry_seconds`; a
watch that ends (Gone, a restart of the store) is re-established with a fresh list.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from shoal.api import errors
from shoal.network import ServiceProxy, service_view

log = logging.getLogger(__name__)

Key = tuple[str, str]


class ServiceSync:
    def __init__(self, client: Any, proxy: ServiceProxy, directory: Any, *,
                 debounce_seconds: float = 0.05, retry_seconds: float = 2.0) -> None:
        self._client = client
        self._proxy = proxy
        self._directory = directory
        self._debounce = debounce_seconds
        self._retry = retry_seconds
        self._services: dict[Key, dict[str, Any]] = {}
        self._endpoints: dict[Key, dict[str, Any]] = {}
        self._dirty = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.synced = asyncio.Event()
        """Set after the first successful sync (tests and start-up ordering wait on it)."""

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._watch("services", self._services), name="proxy-services"),
            asyncio.create_task(self._watch("endpoints", self._endpoints), name="proxy-endpoints"),
            asyncio.create_task(self._sync_loop(), name="proxy-sync"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _watch(self, resource: str, into: dict[Key, dict[str, Any]]) -> None:
        while True:
            try:
                items, rev = await self._client.list(resource)
                into.clear()
                for obj in items:
                    into[_key(obj)] = obj
                self._dirty.set()
                async for event in self._client.watch(resource, resource_version=rev):
                    key = _key(event.object)
                    if event.type == "DELETED":
                        into.pop(key, None)
                    else:
                        into[key] = event.object
                    self._dirty.set()
            except asyncio.CancelledError:
                raise
            except errors.Gone:
                continue
            except Exception:
                log.exception("watch of %s failed; re-listing", resource)
                await asyncio.sleep(self._retry)

    async def _sync_loop(self) -> None:
        while True:
            await self._dirty.wait()
            await asyncio.sleep(self._debounce)
            self._dirty.clear()
            views = [service_view(svc, self._endpoints.get(key))
                     for key, svc in sorted(self._services.items())]
            try:
                self._directory.replace_all(views)
                await self._proxy.sync(views)
                self.synced.set()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("service rules sync failed; retrying")
                await asyncio.sleep(self._retry)
                self._dirty.set()


def _key(obj: dict[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return meta.get("namespace", ""), meta.get("name", "")
