"""Informers and their caches: list + watch of one resource into an in-memory `Lister`.

An `Informer` lists, then watches from the list's revision, and keeps its `Lister`
current. On `Gone` (the revision was compacted away) it relists; on any other failure it
waits and relists. Every change is handed to the registered handlers as a
`Change(type, object, old)`; a change not newer than what the cache holds is dropped
(kine's rule), and tombstones keep late write-through results from resurrecting a
deleted object.

Used by the controllers' engine (shoal.controllers.engine, which shares one informer per
resource through its `Manager`), the kube-proxy role and the mesh's API source.

Concurrency: one informer task per resource on the daemon's loop; handlers run
synchronously inside it and must not block. Cached objects are shared: callers never
mutate them.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import logging
from typing import Any, Callable, Iterable, Mapping, Protocol

from shoal import timestamps
from shoal.api import errors as api_errors
from shoal.api.client import ApiClient, Obj

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Change:
    """One change seen by an informer: type ADDED, MODIFIED or DELETED."""

    type: str
    object: Obj
    old: Obj | None = None



def resource_version(obj: Mapping[str, Any] | None) -> int:
    if not obj:
        return 0
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except (TypeError, ValueError):
        return 0


# -- the cache --------------------------------------------------------------------------


class Selector(Protocol):
    def matches(self, labels: Mapping[str, str] | None) -> bool: ...


class Lister:
    """The in-memory cache of one resource, indexed by namespace, uid and owner uid.

    Objects returned are the cached ones: never mutate them."""

    def __init__(self, resource: str) -> None:
        self.resource = resource
        self._objects: dict[tuple[str | None, str], Obj] = {}
        self._by_namespace: dict[str | None, dict[str, Obj]] = {}
        self._by_uid: dict[str, Obj] = {}
        self._by_owner: dict[str, dict[tuple[str | None, str], Obj]] = {}

    def __len__(self) -> int:
        return len(self._objects)

    def get(self, namespace: str | None, name: str) -> Obj | None:
        return self._objects.get((namespace or None, name))

    def by_uid(self, uid: str) -> Obj | None:
        return self._by_uid.get(uid)

    def dependents(self, owner_uid: str) -> list[Obj]:
        """Objects with an ownerReference to this uid."""
        return list(self._by_owner.get(owner_uid, {}).values())

    def list(
        self,
        namespace: str | None = None,
        selector: Selector | Mapping[str, str] | None = None,
    ) -> list[Obj]:
        """Objects in a namespace (None: all), matching a label selector (an object with
        `matches(labels)`, or a plain map of required labels)."""
        if namespace is None:
            items: Iterable[Obj] = self._objects.values()
        else:
            items = self._by_namespace.get(namespace, {}).values()
        if selector is None:
            return list(items)
        if isinstance(selector, Mapping):
            wanted = dict(selector)
            return [o for o in items if _labels_contain(labels_of(o), wanted)]
        return [o for o in items if selector.matches(labels_of(o))]

    # -- maintained by the informer ---------------------------------------------------

    def _put(self, obj: Obj) -> Obj | None:
        key = _key(obj)
        old = self._objects.get(key)
        if old is not None:
            self._unindex(key, old)
        self._objects[key] = obj
        self._by_namespace.setdefault(key[0], {})[key[1]] = obj
        uid = (obj.get("metadata") or {}).get("uid")
        if uid:
            self._by_uid[uid] = obj
        for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
            if ref.get("uid"):
                self._by_owner.setdefault(ref["uid"], {})[key] = obj
        return old

    def _remove(self, key: tuple[str | None, str]) -> Obj | None:
        old = self._objects.pop(key, None)
        if old is not None:
            self._unindex(key, old)
        return old

    def _unindex(self, key: tuple[str | None, str], old: Obj) -> None:
        ns_map = self._by_namespace.get(key[0])
        if ns_map is not None:
            ns_map.pop(key[1], None)
            if not ns_map:
                del self._by_namespace[key[0]]
        uid = (old.get("metadata") or {}).get("uid")
        if uid and self._by_uid.get(uid) is old:
            del self._by_uid[uid]
        for ref in (old.get("metadata") or {}).get("ownerReferences") or []:
            owned = self._by_owner.get(ref.get("uid") or "")
            if owned is not None:
                owned.pop(key, None)
                if not owned:
                    del self._by_owner[ref["uid"]]

    def _keys(self) -> list[tuple[str | None, str]]:
        return list(self._objects)


def labels_of(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def _labels_contain(labels: Mapping[str, str], wanted: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in wanted.items())


def _key(obj: Mapping[str, Any]) -> tuple[str | None, str]:
    meta = obj.get("metadata") or {}
    return (meta.get("namespace") or None, meta.get("name") or "")


Handler = Callable[[Change], None]
TOMBSTONE_LIMIT = 10_000


class Informer:
    """List + watch of one resource feeding a `Lister`; restarts on Gone with a relist."""

    def __init__(self, client: ApiClient, resource: str, *, retry_delay: float = 1.0) -> None:
        self.client = client
        self.resource = resource
        self.lister = Lister(resource)
        self.synced = asyncio.Event()
        self.retry_delay = retry_delay
        self._handlers: list[Handler] = []
        self._tombstones: dict[tuple[str | None, str], int] = {}

    def add_handler(self, handler: Handler) -> None:
        self._handlers.append(handler)
        # A handler added after sync sees the current objects, as a late informer would.
        if self.synced.is_set():
            for obj in self.lister.list():
                self._call(handler, Change("ADDED", obj))

    async def run(self) -> None:
        while True:
            try:
                items, revision = await self.client.list(self.resource)
                self._replace(items, revision)
                self.synced.set()
                while True:
                    revision = await self._watch_from(revision)
            except asyncio.CancelledError:
                raise
            except api_errors.Gone:
                log.info("informer %s: revision compacted, relisting", self.resource)
            except Exception:  # noqa: BLE001 - an informer must survive any failure
                log.exception("informer %s failed; relisting in %.1fs", self.resource,
                              self.retry_delay)
                await asyncio.sleep(self.retry_delay)

    async def _watch_from(self, revision: int) -> int:
        stream = self.client.watch(self.resource, resource_version=revision)
        try:
            async for event in stream:
                if event.type == "BOOKMARK":
                    revision = max(revision, event.revision)
                    continue
                if event.type == "ERROR":
                    status = event.object or {}
                    if status.get("code") == 410:
                        raise api_errors.Gone(status.get("message") or "watch expired")
                    raise api_errors.from_status(status)
                self.apply(event.type, event.object)
                revision = max(revision, event.revision)
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
        return revision

    # -- cache updates ----------------------------------------------------------------

    def apply(self, type_: str, obj: Obj) -> None:
        """Apply one change unless it is not newer than what the cache already holds.

        A DELETED event is applied whatever the cached revision (a write-through may
        have cached the deleted object at the delete's own revision); only a tombstone
        at or after its revision makes it stale."""
        key = _key(obj)
        revision = resource_version(obj)
        if revision and self._tombstones.get(key, 0) >= revision:
            return
        if type_ == "DELETED":
            old = self.lister._remove(key)
            self._remember_deleted(key, revision)
            self._notify(Change("DELETED", obj, old))
            return
        current = self.lister.get(*key)
        if current is not None and revision and resource_version(current) >= revision:
            return
        self._tombstones.pop(key, None)
        old = self.lister._put(obj)
        self._notify(Change("MODIFIED" if old is not None else "ADDED", obj, old))

    def _remember_deleted(self, key: tuple[str | None, str], revision: int) -> None:
        """Tombstones stop late write-through results from resurrecting a deleted
        object; only recent ones matter, so the oldest are forgotten past a bound."""
        self._tombstones.pop(key, None)
        self._tombstones[key] = revision
        if len(self._tombstones) > TOMBSTONE_LIMIT:
            for old_key in list(self._tombstones)[: TOMBSTONE_LIMIT // 2]:
                del self._tombstones[old_key]

    def observe(self, obj: Obj) -> None:
        """Write-through of an object the API returned from a write."""
        self.apply("MODIFIED", obj)

    def observe_deleted(self, obj: Obj) -> None:
        """Write-through of a delete's result. The object is cached as being deleted
        (with a deletionTimestamp) until the watch reports it gone: whether it is gone
        already or waits for finalizers or a grace period, nobody should count it."""
        meta = obj.get("metadata") or {}
        if not meta.get("deletionTimestamp"):
            obj = copy.deepcopy(obj)
            obj["metadata"]["deletionTimestamp"] = timestamps.now()
        self.apply("MODIFIED", obj)

    def _replace(self, items: list[Obj], revision: int) -> None:
        """Make the cache equal to a fresh list taken at `revision`. Objects cached from
        a write newer than the list are kept: the watch from `revision` confirms them."""
        seen = set()
        for obj in items:
            key = _key(obj)
            seen.add(key)
            current = self.lister.get(*key)
            if current is not None and resource_version(current) >= resource_version(obj):
                continue
            old = self.lister._put(obj)
            self._notify(Change("MODIFIED" if old is not None else "ADDED", obj, old))
        for key in self.lister._keys():
            if key not in seen:
                current = self.lister.get(*key)
                if current is not None and resource_version(current) > revision:
                    continue
                old = self.lister._remove(key)
                if old is not None:
                    self._notify(Change("DELETED", old, old))
        self._tombstones = {k: r for k, r in self._tombstones.items() if r > revision}

    def _notify(self, change: Change) -> None:
        for handler in self._handlers:
            self._call(handler, change)

    def _call(self, handler: Handler, change: Change) -> None:
        try:
            handler(change)
        except Exception:  # noqa: BLE001 - one bad mapper must not stop the informer
            log.exception("informer %s: handler failed", self.resource)
