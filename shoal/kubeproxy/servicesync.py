"""ServiceSync: keep the node's service rules and the cluster DNS answers in step
with the API's Services and Endpoints.

Two informers (Services, Endpoints; the controllers' `Informer`) hold the picture; on
any change the shared `Resync` loop turns the whole picture into views
(`shoal.network.service_view`), hands them to the DNS directory and applies the proxy
rules in one atomic `iptables-restore` (`ServiceProxy.sync`), coalescing changes that
arrive together and retrying a failed sync (see resync.py).
"""

from __future__ import annotations

from typing import Any, Callable

from shoal.controllers.informer import Informer
from shoal.kubeproxy.resync import Resync
from shoal.network import ServiceProxy, service_view

Key = tuple[str, str]


class ServiceSync:
    def __init__(self, client: Any, proxy: ServiceProxy, directory: Any, *,
                 debounce_seconds: float = 0.05, retry_seconds: float = 2.0,
                 shared: Callable[[str], Informer] | None = None) -> None:
        """`shared`: informers somebody else runs (the daemon's controller manager);
        without it ServiceSync runs informers of its own."""
        self._proxy = proxy
        self._directory = directory
        make = shared or (lambda resource: Informer(client, resource, retry_delay=retry_seconds))
        self._services, self._endpoints = make("services"), make("endpoints")
        self._resync = Resync("proxy", [self._services, self._endpoints], self._apply,
                              run_informers=shared is None, debounce_seconds=debounce_seconds,
                              retry_seconds=retry_seconds)
        self.synced = self._resync.synced
        """Set after the first successful sync (tests and start-up ordering wait on it)."""

    async def start(self) -> None:
        await self._resync.start()

    async def stop(self) -> None:
        await self._resync.stop()

    async def _apply(self) -> None:
        views = [service_view(svc, self._endpoints.lister.get(*_key(svc)))
                 for svc in sorted(self._services.lister.list(), key=_key)]
        self._directory.replace_all(views)
        await self._proxy.sync(views)


def _key(obj: dict[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return meta.get("namespace", ""), meta.get("name", "")
