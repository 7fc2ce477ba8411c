"""`ApiSource`: the mesh's `ClusterSource` over the API (`shoal.api.client.ApiClient`).

One list + watch per kind the mesh reads (`source.KINDS`) keeps an in-memory table;
every event updates the table first and then tells the subscribers, so a `snapshot()`
taken after a change notice always contains that change. A watch that ends (Gone after
compaction, an API restart) re-lists and reports every key that differs, so no change
is lost, only possibly repeated (the control loop is level-based).

Works over the in-process LocalClient (the embedded daemon) and over HttpClient (the
control plane as its own process); a Kubernetes-API implementation will have the same
shape.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, AsyncIterator

from shoal.api import errors
from shoal.mesh.source import KINDS, NAMESPACES, ClusterChange, ClusterState

log = logging.getLogger(__name__)

Key = tuple[str | None, str]
Obj = dict[str, Any]


class ApiSource:
    def __init__(self, client: Any, *, retry_seconds: float = 1.0) -> None:
        self._client = client
        self._retry = retry_seconds
        self._table: dict[str, dict[Key, Obj]] = {kind: {} for kind in KINDS}
        self._revision = 0
        self._subscribers: set[asyncio.Queue[ClusterChange]] = set()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """List every kind, then follow changes; returns once the first lists are in."""
        ready = [asyncio.Event() for _ in KINDS]
        self._tasks = [asyncio.create_task(self._follow(kind, event), name=f"mesh-source-{kind}")
                       for kind, event in zip(KINDS, ready)]
        await asyncio.gather(*(event.wait() for event in ready))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    @staticmethod
    def _key(kind: str, obj: Obj) -> Key:
        meta = obj.get("metadata") or {}
        return (None if kind == NAMESPACES else meta.get("namespace", "default"), meta["name"])

    async def _follow(self, kind: str, ready: asyncio.Event) -> None:
        while True:
            try:
                items, revision = await self._client.list(kind)
                fresh = {self._key(kind, obj): obj for obj in items}
                old = self._table[kind]
                self._table[kind] = fresh
                for key in set(old) | set(fresh):
                    if old.get(key) != fresh.get(key):
                        self._notify(ClusterChange(kind, key[0], key[1]))
                ready.set()
                async for event in self._client.watch(kind, resource_version=revision):
                    key = self._key(kind, event.object)
                    table = dict(self._table[kind])  # copy-on-write: snapshots stay values
                    if event.type == "DELETED":
                        table.pop(key, None)
                    else:
                        table[key] = event.object
                    self._table[kind] = table
                    self._notify(ClusterChange(kind, key[0], key[1]))
            except asyncio.CancelledError:
                raise
            except errors.Gone:
                continue
            except Exception:
                log.exception("mesh source: watch of %s failed; re-listing", kind)
                ready.set()
                await asyncio.sleep(self._retry)

    def _notify(self, change: ClusterChange) -> None:
        self._revision += 1
        for queue in self._subscribers:
            queue.put_nowait(change)

    async def snapshot(self) -> ClusterState:
        return ClusterState(dict(self._table), self._revision)

    def changes(self) -> AsyncIterator[ClusterChange]:
        queue: asyncio.Queue[ClusterChange] = asyncio.Queue()
        self._subscribers.add(queue)
        return self._drain(queue)

    async def _drain(self, queue: asyncio.Queue[ClusterChange]) -> AsyncIterator[ClusterChange]:
        try:
            while True:
                yield await queue.get()
        finally:
            self._subscribers.discard(queue)
