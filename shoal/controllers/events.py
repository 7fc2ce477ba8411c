"""EventRecorder: core/v1 Events about objects, with repeats aggregated.

Controllers and the node agent record what they decide (`ScalingReplicaSet`,
`SuccessfulCreate`, `Scheduled`, `Pulled`, `BackOff`, ...) with
`await recorder.event(obj, "Normal", reason, message)`.

Aggregation follows Kubernetes' event correlator for identical events: the same source,
involved object, type, reason and message within the recorder's memory (an LRU of
`cache_size` keys) updates the existing Event — count + 1 and a new lastTimestamp —
instead of creating another. Different events create a new Event named
`<object name>.<hex nanoseconds>` as Kubernetes names them.

Similar events are combined as Kubernetes' EventAggregator does: when one source records
10 or more different messages with the same object, type and reason within 10 minutes,
further ones update a single Event whose message is "(combined from similar events): "
followed by the latest message.

Recording is best effort: an API failure is logged, never raised, so a controller's
decision never fails because its event could not be written.

Concurrency: one asyncio lock per aggregation key, so concurrent repeats of one event
count correctly; different events are written concurrently.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import time
from typing import Any, Callable, Mapping

from shoal import timestamps
from shoal.api import errors as api_errors
from shoal.api.client import ApiClient, Obj
from shoal.controllers.errors import namespace_terminating

log = logging.getLogger(__name__)

NORMAL = "Normal"
WARNING = "Warning"
SIMILAR_LIMIT = 10
"""Different messages for one object/type/reason before they are combined."""
SIMILAR_WINDOW = 600.0
"""Seconds after which the similar-message count starts again."""
COMBINED_PREFIX = "(combined from similar events): "


@dataclasses.dataclass
class _Similar:
    messages: set[str]
    last: float


@dataclasses.dataclass
class _Seen:
    namespace: str
    name: str
    count: int
    first_timestamp: str


def involved_object(obj: Mapping[str, Any], field_path: str | None = None) -> Obj:
    """The ObjectReference an Event points at."""
    meta = obj.get("metadata") or {}
    ref: Obj = {
        "kind": obj.get("kind"),
        "apiVersion": obj.get("apiVersion"),
        "name": meta.get("name"),
        "uid": meta.get("uid"),
        "resourceVersion": meta.get("resourceVersion"),
    }
    if meta.get("namespace"):
        ref["namespace"] = meta["namespace"]
    if field_path:
        ref["fieldPath"] = field_path
    return {k: v for k, v in ref.items() if v is not None}


class EventRecorder:
    """Writes Events for one component (e.g. "deployment-controller", "kubelet")."""

    def __init__(
        self,
        client: ApiClient,
        component: str,
        *,
        host: str | None = None,
        cache_size: int = 4096,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.component = component
        self.host = host
        self.cache_size = cache_size
        self.clock = clock
        self._seen: collections.OrderedDict[tuple, _Seen] = collections.OrderedDict()
        self._similar: collections.OrderedDict[tuple, _Similar] = collections.OrderedDict()
        self._locks: dict[tuple, tuple[asyncio.Lock, int]] = {}

    async def event(
        self,
        obj: Mapping[str, Any],
        type_: str,
        reason: str,
        message: str,
        *,
        field_path: str | None = None,
    ) -> Obj | None:
        """Record an event about obj; returns the Event written (None if it failed)."""
        ref = involved_object(obj, field_path)
        similar = (ref.get("kind"), ref.get("apiVersion"), ref.get("namespace"), ref.get("name"),
                   ref.get("uid"), field_path, type_, reason)
        message, key = self._aggregate(similar, message)
        lock, users = self._locks.get(key) or (asyncio.Lock(), 0)
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                return await self._record(key, ref, type_, reason, message)
        except Exception as exc:  # noqa: BLE001 - events are best effort
            if namespace_terminating(exc):
                return None
            log.warning("%s: could not record event %s %s on %s/%s: %s", self.component,
                        type_, reason, ref.get("namespace"), ref.get("name"), exc)
            return None
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def _aggregate(self, similar: tuple, message: str) -> tuple[str, tuple]:
        """(message, cache key): the event's own, or the combined event's once too many
        different messages were seen (Kubernetes' EventAggregator)."""
        now = self.clock()
        record = self._similar.get(similar)
        if record is None or now - record.last > SIMILAR_WINDOW:
            record = _Similar(set(), now)
        self._similar[similar] = record
        self._similar.move_to_end(similar)
        while len(self._similar) > self.cache_size:
            self._similar.popitem(last=False)
        record.last = now
        record.messages.add(message)
        if len(record.messages) < SIMILAR_LIMIT:
            return message, similar + (message,)
        record.messages.pop()
        return COMBINED_PREFIX + message, similar + (COMBINED_PREFIX,)

    async def _record(self, key: tuple, ref: Obj, type_: str, reason: str,
                      message: str) -> Obj:
        stamp = timestamps.format_time(self.clock())
        seen = self._seen.get(key)
        if seen is not None:
            self._seen.move_to_end(key)
            try:
                updated = await self.client.patch(
                    "events", seen.namespace, seen.name,
                    {"count": seen.count + 1, "lastTimestamp": stamp, "message": message},
                    "merge")
                seen.count += 1
                return updated
            except api_errors.NotFound:
                del self._seen[key]
        namespace = ref.get("namespace") or "default"
        name = f"{ref.get('name')}.{time.time_ns():x}"
        source: Obj = {"component": self.component}
        if self.host:
            source["host"] = self.host
        body: Obj = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name[-253:].lstrip(".-"), "namespace": namespace},
            "involvedObject": ref,
            "reason": reason,
            "message": message,
            "type": type_,
            "count": 1,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "source": source,
            "reportingComponent": self.component,
            "reportingInstance": self.host or "",
        }
        created = await self.client.create("events", body)
        self._seen[key] = _Seen(namespace, created["metadata"]["name"], 1, stamp)
        while len(self._seen) > self.cache_size:
            self._seen.popitem(last=False)
        return created

    async def normal(self, obj: Mapping[str, Any], reason: str, message: str) -> Obj | None:
        return await self.event(obj, NORMAL, reason, message)

    async def warning(self, obj: Mapping[str, Any], reason: str, message: str) -> Obj | None:
        return await self.event(obj, WARNING, reason, message)
