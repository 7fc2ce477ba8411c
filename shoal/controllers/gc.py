"""Garbage collection by ownerReferences, over the informer caches (Kubernetes' GC).

The graph is the caches themselves: every `Lister` indexes objects by uid and by owner
uid, so "the owners of X" and "the dependents of Y" are lookups. One engine controller
per collected resource (`garbage-collector-pods`, ...) reconciles objects of that
resource:

- an object whose owners are all gone is deleted (Background; Foreground when an owner
  is itself waiting in foreground deletion and the object has dependents of its own);
  owners missing from the cache are confirmed gone with a live GET first (a cache may
  simply not have seen a new owner yet), and a uid mismatch counts as gone;
- an object with some owners alive loses only its references to owners that are gone
  or deleting in foreground;
- an owner deleted with propagationPolicy=Foreground (deletionTimestamp + finalizer
  `foregroundDeletion`, set by the API server) deletes its dependents and, once none
  that blocks it (blockOwnerDeletion) is left, drops the finalizer so the server
  removes it;
- an owner deleted with propagationPolicy=Orphan (finalizer `orphan`) removes its
  reference from every dependent, then drops the finalizer.

Background deletion needs nothing from the owner: it is gone at once, its dependents
become ownerless and are collected by the first rule, level by level (Deployment ->
ReplicaSets -> Pods).

Concurrency: reconciles are serialised per object by the engine; every write is a
compare-and-swap on resourceVersion, so a concurrent change makes the write fail with
Conflict and the engine retries on fresh state.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Iterable

from shoal.api import errors as api_errors
from shoal.api import kinds
from shoal.api.client import Obj
from shoal.controllers import engine, pods as podutil
from shoal.controllers.engine import Change, Controller, Manager, Request, Result

log = logging.getLogger(__name__)

FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"

COLLECTED = (
    "deployments.apps", "replicasets.apps", "pods", "services", "endpoints", "configmaps",
    "secrets", "serviceaccounts", "persistentvolumeclaims",
    "statefulsets.apps", "daemonsets.apps", "controllerrevisions.apps", "leases",
)
"""Resources whose objects can be owners or dependents."""


def owner_resource(ref: dict[str, Any]) -> tuple[str, bool] | None:
    """(resource, namespaced) of an ownerReference's kind; None when unknown."""
    try:
        rt = kinds.by_kind(ref.get("apiVersion") or "", ref.get("kind") or "")
    except api_errors.StatusError:
        return None
    return rt.resource, rt.namespaced


def _served(resource: str) -> bool:
    try:
        kinds.by_resource(resource)
    except api_errors.StatusError:
        log.warning("garbage collector: %s is not served; not collecting it", resource)
        return False
    return True


def finalizers(obj: Obj) -> list[str]:
    return list(podutil.meta(obj).get("finalizers") or [])


class GarbageCollector:
    """Builds one controller per collected resource, sharing the manager's caches."""

    def __init__(self, manager: Manager, resources: Iterable[str] = COLLECTED, *,
                 workers: int = 1) -> None:
        self.manager = manager
        self.writer = manager.writer
        self.resources = tuple(r for r in resources if _served(r))
        self.workers = workers
        self.listers = {r: manager.lister(r) for r in self.resources}

    def controllers(self) -> list[Controller]:
        result = []
        for resource in self.resources:
            watches: list[tuple[str, engine.Mapper]] = [(resource, self._map_self)]
            for other in self.resources:
                watches.append((other, functools.partial(self._map_dependents, resource)))
                watches.append((other, functools.partial(self._map_owners, resource)))
            result.append(Controller(f"garbage-collector-{resource}",
                                     functools.partial(self.reconcile, resource), watches,
                                     workers=self.workers))
        return result

    # -- mapping ----------------------------------------------------------------------

    @staticmethod
    def _map_self(change: Change) -> Iterable[Request]:
        """Objects with owners or a GC finalizer, when those (or deletion) change."""
        if change.type == "DELETED":
            return ()
        meta = podutil.meta(change.object)
        if not (meta.get("ownerReferences") or FOREGROUND in finalizers(change.object)
                or ORPHAN in finalizers(change.object)):
            return ()
        if change.old is not None:
            old = podutil.meta(change.old)
            if all(old.get(k) == meta.get(k) for k in
                   ("ownerReferences", "finalizers", "deletionTimestamp")):
                return ()
        return [engine.object_key(change.object)]

    def _map_dependents(self, resource: str, change: Change) -> Iterable[Request]:
        """An owner went away or started deleting: look at its dependents of `resource`."""
        if change.type != "DELETED" and not podutil.is_deleting(change.object):
            return ()
        uid = podutil.meta(change.object).get("uid")
        if not uid:
            return ()
        return [engine.object_key(d) for d in self.listers[resource].dependents(uid)]

    def _map_owners(self, resource: str, change: Change) -> Iterable[Request]:
        """A dependent went away or started deleting: wake owners of `resource` that may
        be waiting for it (foreground deletion)."""
        if change.type != "DELETED" and not podutil.is_deleting(change.object):
            return ()
        keys = []
        for ref in podutil.meta(change.object).get("ownerReferences") or []:
            owner = self.listers[resource].by_uid(ref.get("uid") or "")
            if owner is not None and podutil.is_deleting(owner):
                keys.append(engine.object_key(owner))
        return keys

    # -- graph ------------------------------------------------------------------------

    def dependents(self, uid: str) -> list[tuple[str, Obj]]:
        return [(r, obj) for r, lister in self.listers.items() for obj in lister.dependents(uid)]

    async def _owner(self, ref: dict[str, Any], namespace: str | None) -> Obj | None:
        """The live owner an ownerReference names, or None if it is gone."""
        located = owner_resource(ref)
        if located is None:
            return {"metadata": {"uid": ref.get("uid")}}  # unknown kind: never collect
        resource, namespaced = located
        lister = self.listers.get(resource)
        if lister is not None:
            cached = lister.by_uid(ref.get("uid") or "")
            if cached is not None:
                return cached
        try:
            live = await self.manager.client.get(resource, namespace if namespaced else None,
                                                 ref.get("name") or "")
        except api_errors.NotFound:
            return None
        if podutil.meta(live).get("uid") != ref.get("uid"):
            return None
        return live

    # -- reconcile --------------------------------------------------------------------

    async def reconcile(self, resource: str, request: Request) -> Result | None:
        cached = self.listers[resource].get(request.namespace, request.name)
        if cached is None:
            return None
        obj = engine.clone(cached)
        if podutil.is_deleting(obj):
            if FOREGROUND in finalizers(obj):
                return await self._delete_dependents(resource, obj)
            if ORPHAN in finalizers(obj):
                return await self._orphan_dependents(resource, obj)
            return None
        refs = podutil.meta(obj).get("ownerReferences") or []
        if not refs:
            return None
        solid, gone, waiting = [], [], []
        for ref in refs:
            owner = await self._owner(ref, request.namespace)
            if owner is None:
                gone.append(ref)
            elif podutil.is_deleting(owner) and FOREGROUND in finalizers(owner):
                waiting.append(ref)
            else:
                solid.append(ref)
        if solid:
            if gone or waiting:
                obj["metadata"]["ownerReferences"] = solid
                await self.writer.update(resource, obj)
            return None
        policy = "Background"
        if waiting and self.dependents(podutil.meta(obj)["uid"]):
            policy = "Foreground"
        log.info("garbage collector: deleting %s %s (owners gone: %s)", resource, request,
                 ", ".join(f"{r.get('kind')}/{r.get('name')}" for r in gone + waiting))
        try:
            await self.writer.delete(resource, request.namespace, request.name,
                                     propagation_policy=policy)
        except api_errors.NotFound:
            pass
        return None

    async def _delete_dependents(self, resource: str, owner: Obj) -> Result | None:
        uid = podutil.meta(owner)["uid"]
        blocking = 0
        for dep_resource, dep in self.dependents(uid):
            ref = next((r for r in podutil.meta(dep).get("ownerReferences") or []
                        if r.get("uid") == uid), {})
            if ref.get("blockOwnerDeletion"):
                blocking += 1
            if podutil.is_deleting(dep):
                continue
            policy = "Foreground" if self.dependents(podutil.meta(dep)["uid"]) else "Background"
            try:
                await self.writer.delete(dep_resource, podutil.meta(dep).get("namespace"),
                                         podutil.meta(dep)["name"], propagation_policy=policy)
            except api_errors.NotFound:
                pass
        if blocking:
            return None  # woken again as each dependent goes away
        await self._drop_finalizer(resource, owner, FOREGROUND)
        return None

    async def _orphan_dependents(self, resource: str, owner: Obj) -> Result | None:
        uid = podutil.meta(owner)["uid"]
        for dep_resource, dep in self.dependents(uid):
            dep = engine.clone(dep)
            dep["metadata"]["ownerReferences"] = [
                r for r in dep["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
            try:
                await self.writer.update(dep_resource, dep)
            except api_errors.NotFound:
                pass
        await self._drop_finalizer(resource, owner, ORPHAN)
        return None

    async def _drop_finalizer(self, resource: str, obj: Obj, name: str) -> None:
        obj = engine.clone(obj)
        obj["metadata"]["finalizers"] = [f for f in finalizers(obj) if f != name]
        try:
            await self.writer.update(resource, obj)
        except api_errors.NotFound:
            pass
