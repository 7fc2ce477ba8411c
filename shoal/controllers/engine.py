"""The reconcile engine: informers, a shared cache, work queues and controllers.

Shape (controller-runtime's):

- An `Informer` per resource lists, then watches from the list's revision, and keeps an
  in-memory cache (`Lister`) current. On `Gone` (the revision was compacted away) it
  relists; on any other failure it waits and relists. Every change is handed to the
  registered handlers as a `Change(type, object, old)`.
- A `Controller` owns a `WorkQueue` of `Request(namespace, name)` keys and a reconcile
  function. Watches are `(resource, mapper)` pairs: the mapper turns a `Change` into the
  keys to reconcile (`map_own`, `map_owner("ReplicaSet")`, or any function).
- Reconcilers are level-based: a request carries a name only, the reconciler re-reads
  state from the listers, makes one decision and returns a `Result`. The engine decides
  what follows: an exception -> rate-limited retry (exponential, 5 ms doubling to 1000 s
  by default); `Result(requeue_after=s)` -> again after s seconds; `Result(requeue=True)`
  -> rate-limited retry; otherwise the key's failure count is forgotten.
- The `Manager` shares informers between controllers, starts informers first (and waits
  until every cache has synced), then the controllers; `stop()` cancels everything.

Concurrency rules. Everything runs on one asyncio loop. The queue guarantees per-key
serialization: a key is handed to at most one worker at a time; a key added while it is
being processed is queued again when the worker calls `done` (dedup: a key waiting in the
queue is never queued twice). Informer handlers run synchronously inside the informer
task and must not block (mappers only compute keys). Cached objects are shared: callers
never mutate them (`copy.deepcopy` before editing).

Cache freshness. A controller that has just written an object must not act again on the
older cached copy (a ReplicaSet would create its pods twice). Writes go through
`Manager.writer` (`WriteThrough`), which feeds the result of every successful write into
the informer cache at once; the watch event that follows carries the same revision and
is dropped as not newer (kine's rule: drop what is not newer than what you have).
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import logging
import time
from collections import deque
from typing import Any, Awaitable, Callable, Hashable, Iterable, Mapping, Protocol

from shoal import timestamps
from shoal.api import errors as api_errors
from shoal.api.client import ApiClient, Obj
from shoal.controllers.errors import ControllerError
from shoal.tasks import cancel_and_wait

log = logging.getLogger(__name__)


# -- keys and results -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, order=True)
class Request:
    """What to reconcile: a name only; the reconciler re-reads the state."""

    namespace: str | None
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


@dataclasses.dataclass(frozen=True)
class Result:
    """What the engine does after a successful reconcile."""

    requeue_after: float | None = None
    """Reconcile this key again after this many seconds (and forget its failures)."""
    requeue: bool = False
    """Reconcile again after the key's rate-limited delay."""


Reconcile = Callable[[Request], Awaitable["Result | None"]]


@dataclasses.dataclass(frozen=True)
class Change:
    """One change seen by an informer: type ADDED, MODIFIED or DELETED."""

    type: str
    object: Obj
    old: Obj | None = None


Mapper = Callable[[Change], Iterable[Request]]


def object_key(obj: Mapping[str, Any]) -> Request:
    meta = obj.get("metadata") or {}
    return Request(meta.get("namespace") or None, meta.get("name") or "")


def map_own(change: Change) -> Iterable[Request]:
    """The changed object's own key."""
    return [object_key(change.object)]


def controller_ref(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The ownerReference with controller=true, if any."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def map_owner(kind: str) -> Mapper:
    """A mapper to the key of the controlling owner of the given kind (old and new
    state, so an object whose owner changed wakes both owners)."""

    def mapper(change: Change) -> Iterable[Request]:
        keys = set()
        for obj in (change.old, change.object):
            if obj is None:
                continue
            ref = controller_ref(obj)
            if ref is not None and ref.get("kind") == kind:
                keys.add(Request((obj.get("metadata") or {}).get("namespace") or None, ref["name"]))
        return keys

    return mapper


def resource_version(obj: Mapping[str, Any] | None) -> int:
    if not obj:
        return 0
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except (TypeError, ValueError):
        return 0


# -- rate limiting and the work queue ---------------------------------------------------


@dataclasses.dataclass
class RateLimiter:
    """Per-key exponential backoff: base * 2**failures, capped (controller-runtime's
    default item limiter: 5 ms to 1000 s)."""

    base: float = 0.005
    """Seconds before the first retry."""
    cap: float = 1000.0
    """Longest delay in seconds."""
    _failures: dict[Hashable, int] = dataclasses.field(default_factory=dict)

    def when(self, key: Hashable) -> float:
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        return min(self.cap, self.base * (2 ** min(failures, 64)))

    def forget(self, key: Hashable) -> None:
        self._failures.pop(key, None)

    def failures(self, key: Hashable) -> int:
        return self._failures.get(key, 0)


class ShutDown(Exception):
    """The queue was shut down while waiting for a key."""


class WorkQueue:
    """client-go's work queue on asyncio: dedup, per-key serialization, delayed adds.

    `add` of a key already waiting is a no-op; `add` of a key being processed marks it
    dirty, and `done` queues it again. `add_after` keeps only the earliest pending time
    per key."""

    def __init__(self, rate_limiter: RateLimiter | None = None) -> None:
        self.rate_limiter = rate_limiter or RateLimiter()
        self._queue: deque[Hashable] = deque()
        self._dirty: set[Hashable] = set()
        self._processing: set[Hashable] = set()
        self._waiting: dict[Hashable, tuple[float, asyncio.TimerHandle]] = {}
        self._ready = asyncio.Event()
        self._shut = False

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def idle(self) -> bool:
        """Nothing queued and nothing being processed (delayed keys do not count)."""
        return not self._queue and not self._processing

    def add(self, key: Hashable) -> None:
        if self._shut or key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return
        self._queue.append(key)
        self._ready.set()

    def add_after(self, key: Hashable, delay: float) -> None:
        if self._shut:
            return
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        when = loop.time() + delay
        pending = self._waiting.get(key)
        if pending is not None:
            if pending[0] <= when:
                return
            pending[1].cancel()
        handle = loop.call_at(when, self._fire, key)
        self._waiting[key] = (when, handle)

    def _fire(self, key: Hashable) -> None:
        self._waiting.pop(key, None)
        self.add(key)

    def add_rate_limited(self, key: Hashable) -> None:
        self.add_after(key, self.rate_limiter.when(key))

    def forget(self, key: Hashable) -> None:
        self.rate_limiter.forget(key)

    async def get(self) -> Hashable:
        while not self._queue:
            if self._shut:
                raise ShutDown()
            self._ready.clear()
            await self._ready.wait()
        key = self._queue.popleft()
        self._processing.add(key)
        self._dirty.discard(key)
        return key

    def done(self, key: Hashable) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.append(key)
            self._ready.set()

    def shutdown(self) -> None:
        self._shut = True
        for _, handle in self._waiting.values():
            handle.cancel()
        self._waiting.clear()
        self._ready.set()


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


# -- controllers ------------------------------------------------------------------------


class Controller:
    """A reconcile function, its watches and its work queue."""

    def __init__(
        self,
        name: str,
        reconcile: Reconcile,
        watches: Iterable[tuple[str, Mapper]],
        *,
        workers: int = 1,
        rate_limiter: RateLimiter | None = None,
        initial: Iterable[Request] = (),
    ) -> None:
        self.name = name
        self.initial = list(initial)
        """Keys queued when the controller starts (periodic jobs without watches)."""
        self.reconcile = reconcile
        self.watches = list(watches)
        self.workers = workers
        self.queue = WorkQueue(rate_limiter)
        self.reconciles = 0
        """How many reconciles ran (for tests and metrics)."""
        self.errors = 0

    def enqueue(self, request: Request, after: float = 0.0) -> None:
        self.queue.add_after(request, after) if after > 0 else self.queue.add(request)

    def _handler(self, mapper: Mapper) -> Handler:
        def handle(change: Change) -> None:
            for request in mapper(change):
                self.queue.add(request)

        return handle

    async def run(self) -> None:
        for request in self.initial:
            self.queue.add(request)
        workers = [asyncio.create_task(self._work(), name=f"{self.name}-worker-{i}")
                   for i in range(self.workers)]
        try:
            await asyncio.gather(*workers)
        finally:
            self.queue.shutdown()
            await cancel_and_wait(workers)

    async def _work(self) -> None:
        while True:
            try:
                request = await self.queue.get()
            except ShutDown:
                return
            try:
                self.reconciles += 1
                result = await self.reconcile(request)  # type: ignore[arg-type]
            except asyncio.CancelledError:
                self.queue.done(request)
                raise
            except Exception as exc:  # noqa: BLE001 - the engine owns retries
                self.errors += 1
                if isinstance(exc, api_errors.Conflict):
                    log.debug("%s: %s: conflict, retrying", self.name, request)
                else:
                    log.warning("%s: reconcile %s failed: %s", self.name, request, exc,
                                exc_info=not isinstance(exc, (api_errors.StatusError,
                                                              ControllerError)))
                self.queue.add_rate_limited(request)
            else:
                if result is not None and result.requeue_after is not None:
                    self.queue.forget(request)
                    self.queue.add_after(request, result.requeue_after)
                elif result is not None and result.requeue:
                    self.queue.add_rate_limited(request)
                else:
                    self.queue.forget(request)
            finally:
                self.queue.done(request)


class WriteThrough:
    """The write half of ApiClient, feeding every result into the manager's caches."""

    def __init__(self, client: ApiClient, manager: "Manager") -> None:
        self.client = client
        self._manager = manager

    def _observe(self, resource: str, obj: Obj) -> Obj:
        informer = self._manager.informers.get(resource)
        if informer is not None:
            informer.observe(obj)
        return obj

    async def create(self, resource: str, obj: Obj) -> Obj:
        return self._observe(resource, await self.client.create(resource, obj))

    async def update(self, resource: str, obj: Obj) -> Obj:
        return self._observe(resource, await self.client.update(resource, obj))

    async def update_status(self, resource: str, obj: Obj) -> Obj:
        return self._observe(resource, await self.client.update_status(resource, obj))

    async def patch(self, resource: str, namespace: str | None, name: str, patch: Any,
                    patch_type: str = "merge", *, subresource: str | None = None) -> Obj:
        result = await self.client.patch(resource, namespace, name, patch, patch_type,
                                         subresource=subresource)
        if subresource in (None, "status", "binding"):  # /scale returns a Scale, not the object
            self._observe(resource, result)
        return result

    async def delete(self, resource: str, namespace: str | None, name: str, *,
                     propagation_policy: str = "Background",
                     grace_period_seconds: int | None = None) -> Obj:
        obj = await self.client.delete(resource, namespace, name,
                                       propagation_policy=propagation_policy,
                                       grace_period_seconds=grace_period_seconds)
        informer = self._manager.informers.get(resource)
        if informer is not None and isinstance(obj, dict) and obj.get("metadata"):
            informer.observe_deleted(obj)
        return obj


class Manager:
    """Shares informers between controllers; starts and stops them all."""

    def __init__(self, client: ApiClient, *, informer_retry_delay: float = 1.0) -> None:
        self.client = client
        self.informers: dict[str, Informer] = {}
        self.controllers: list[Controller] = []
        self.writer = WriteThrough(client, self)
        self._retry_delay = informer_retry_delay
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False

    def informer(self, resource: str) -> Informer:
        informer = self.informers.get(resource)
        if informer is None:
            if self._started:
                raise RuntimeError(f"informer {resource!r} requested after the manager started")
            informer = Informer(self.client, resource, retry_delay=self._retry_delay)
            self.informers[resource] = informer
        return informer

    def lister(self, resource: str) -> Lister:
        return self.informer(resource).lister

    def add(self, controller: Controller) -> Controller:
        if self._started:
            raise RuntimeError("controllers are added before the manager starts")
        for resource, mapper in controller.watches:
            self.informer(resource).add_handler(controller._handler(mapper))
        self.controllers.append(controller)
        return controller

    def controller(self, name: str) -> Controller:
        for controller in self.controllers:
            if controller.name == name:
                return controller
        raise KeyError(name)

    async def start(self, *, sync_timeout: float = 30.0) -> None:
        """Start informers, wait until every cache has synced, then start controllers."""
        self._started = True
        for informer in self.informers.values():
            self._tasks.append(asyncio.create_task(informer.run(),
                                                   name=f"informer-{informer.resource}"))
        try:
            await asyncio.wait_for(
                asyncio.gather(*(i.synced.wait() for i in self.informers.values())),
                sync_timeout)
        except BaseException:
            await self.stop()
            raise
        for controller in self.controllers:
            self._tasks.append(asyncio.create_task(controller.run(),
                                                   name=f"controller-{controller.name}"))

    async def stop(self) -> None:
        """Cancel every task and wait for them; safe to call twice."""
        tasks, self._tasks = self._tasks, []
        for controller in self.controllers:
            controller.queue.shutdown()
        await cancel_and_wait(tasks)

    async def __aenter__(self) -> "Manager":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def idle(self) -> bool:
        return all(c.queue.idle for c in self.controllers)


def clone(obj: Obj) -> Obj:
    """A deep copy of a cached object, safe to edit."""
    return copy.deepcopy(obj)


def now() -> float:
    return time.time()


__all__ = [
    "Change", "Controller", "Informer", "Lister", "Manager", "Mapper", "RateLimiter",
    "Request", "Result", "WorkQueue", "WriteThrough", "clone", "controller_ref",
    "labels_of", "map_own", "map_owner", "object_key", "resource_version",
]
