"""`ApiSource`: the mesh's `ClusterSource` over the API (`shoal.api.client.ApiClient`).

One informer per kind the mesh reads (`source.KINDS`) — the same list + watch the
controllers use (`shoal.controllers.engine.Informer`: relist on Gone, bookmarks, error
events, stale events dropped). Every informer change updates a copy-on-write table first
and then tells the subscribers, so a `snapshot()` taken after a change notice contains
that change, and a snapshot already handed out never changes under its holder. A relist
reports every key that differs, so no change is lost, only possibly repeated (the
control loop is level-based).

Works over the in-process LocalClient (the embedded daemon) and over HttpClient (the
control plane as its own process); a Kubernetes-API implementation will have the same
shape.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from typing import Any, Callable

from shoal.controllers.engine import Change, Informer
from shoal.mesh.source import KINDS, ChangeFeed, ClusterChange, ClusterState, state_key

Key = tuple[str | None, str]
Obj = dict[str, Any]


class ApiSource(ChangeFeed):
    def __init__(self, client: Any, *, retry_seconds: float = 1.0,
                 shared: Callable[[str], Informer] | None = None) -> None:
        """`shared`: informers somebody else runs (the daemon passes its controller
        manager's, so one watch per resource serves controllers, kube-proxy and mesh);
        without it the source runs informers of its own."""
        super().__init__()
        self._table: dict[str, dict[Key, Obj]] = {kind: {} for kind in KINDS}
        self._own = shared is None
        make = shared or (lambda kind: Informer(client, kind, retry_delay=retry_seconds))
        self._informers = {kind: make(kind) for kind in KINDS}
        for kind, informer in self._informers.items():
            informer.add_handler(functools.partial(self._on_change, kind))
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Start the informers (when they are our own); returns once each has listed."""
        if self._own:
            self._tasks = [asyncio.create_task(informer.run(), name=f"mesh-source-{kind}")
                           for kind, informer in self._informers.items()]
        await asyncio.gather(*(informer.synced.wait() for informer in self._informers.values()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    def _on_change(self, kind: str, change: Change) -> None:
        key = state_key(kind, change.object)
        table = dict(self._table[kind])  # copy-on-write: snapshots stay values
        if change.type == "DELETED":
            table.pop(key, None)
        else:
            table[key] = change.object
        self._table[kind] = table
        self._notify(ClusterChange(kind, *key))

    async def snapshot(self) -> ClusterState:
        return ClusterState(dict(self._table), self._revision)
