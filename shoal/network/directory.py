"""What the cluster DNS knows: the `ServiceLookup` protocol and an in-memory directory.

The DNS server only reads through `ServiceLookup`. The daemon keeps a `ServiceDirectory`
filled from its Services/Endpoints watch (`replace_all` on each resync, or `put` /
`remove` per event) and hands the same views to `ServiceProxy.sync`.

Concurrency: the directory is mutated and read on the event loop only; each update
replaces a whole entry, so a reader never sees half an update.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from shoal.network.model import ServiceView


class ServiceLookup(Protocol):
    """Read side used by ClusterDNS."""

    def get_service(self, namespace: str, name: str) -> ServiceView | None:
        """The service namespace/name, or None if there is none."""
        ...


class ServiceDirectory:
    """In-memory ServiceLookup fed by the daemon."""

    def __init__(self, services: Iterable[ServiceView] = ()) -> None:
        self._services: dict[tuple[str, str], ServiceView] = {}
        self.replace_all(services)

    def replace_all(self, services: Iterable[ServiceView]) -> None:
        self._services = {(s.namespace, s.name): s for s in services}

    def put(self, service: ServiceView) -> None:
        self._services[(service.namespace, service.name)] = service

    def remove(self, namespace: str, name: str) -> None:
        self._services.pop((namespace, name), None)

    def get_service(self, namespace: str, name: str) -> ServiceView | None:
        return self._services.get((namespace.lower(), name.lower()))

    def services(self) -> list[ServiceView]:
        return list(self._services.values())
