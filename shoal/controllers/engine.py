"""The reconcile engine: informers, a shared cache, work queues and controllers.

Shape (controller-runtime's):

- An `Informer` per resource (shoal.controllers.informer) lists, then watches from the
  list's revision, and keeps an in-memory cache (`Lister`) current. On `Gone` (the revision was compacted away) it
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
from typing import Any, Awaitable, Callable, Hashable, Iterable, Mapping

from shoal.api import errors as api_errors
from shoal.api.client import ApiClient, Obj
from shoal.controllers.errors import ControllerError
from shoal.controllers.informer import Change, Handler, Informer, Lister, labels_of, resource_version
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
