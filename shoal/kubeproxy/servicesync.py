"""ServiceSync: keep the node's service rules and the cluster DNS answers in step
with the API's Services and Endpoints.

Two informers (Services, Endpoints; the controllers' `Informer`) hold the picture; any
change marks it dirty,
and one sync loop turns the whole picture into views (`shoal.network.service_view`),
hands them to the DNS directory and applies the proxy rules in one atomic
`iptables-restore` (`ServiceProxy.sync`). Changes arriving together are coalesced
(`debounce_seconds`), so a rollout that touches many Endpoints rewrites the rules once.

Level-based: a failed sync is retried on the next change or after `retry_seconds`; the
informers relist when a watch ends (Gone, a restart of the store).

Concurrency: one sync loop task (plus the informers' tasks when it runs its own); the
handlers only set the dirty flag, so they never block an informer.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

from shoal.controllers.informer import Informer
from shoal.network import ServiceProxy, service_view
from shoal.tasks import cancel_and_wait

log = logging.getLogger(__name__)

Key = tuple[str, str]


class ServiceSync:
    def __init__(self, client: Any, proxy: ServiceProxy, directory: Any, *,
                 debounce_seconds: float = 0.05, retry_seconds: float = 2.0,
                 shared: Callable[[str], Informer] | None = None) -> None:
        """`shared`: informers somebody else runs (the daemon's controller manager);
        without it ServiceSync runs informers of its own."""
        self._proxy = proxy
        self._directory = directory
        self._debounce = debounce_seconds
        self._retry = retry_seconds
        self._own = shared is None
        make = shared or (lambda resource: Informer(client, resource, retry_delay=retry_seconds))
        self._services, self._endpoints = make("services"), make("endpoints")
        self._dirty = asyncio.Event()
        for informer in (self._services, self._endpoints):
            informer.add_handler(lambda _change: self._dirty.set())
        self._tasks: list[asyncio.Task[None]] = []
        self.synced = asyncio.Event()
        """Set after the first successful sync (tests and start-up ordering wait on it)."""

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._sync_loop(), name="proxy-sync")]
        if self._own:
            self._tasks += [asyncio.create_task(self._services.run(), name="proxy-services"),
                            asyncio.create_task(self._endpoints.run(), name="proxy-endpoints")]

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks = []

    async def _sync_loop(self) -> None:
        # The first sync waits for both lists (no rules for Services whose Endpoints are
        # not read yet) and runs even when both are empty: `synced` means "in step".
        await asyncio.gather(self._services.synced.wait(), self._endpoints.synced.wait())
        self._dirty.set()
        while True:
            await self._dirty.wait()
            await asyncio.sleep(self._debounce)
            self._dirty.clear()
            views = [service_view(svc, self._endpoints.lister.get(*_key(svc)))
                     for svc in sorted(self._services.lister.list(), key=_key)]
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
