"""Event expiry: Events older than a TTL are deleted (Kubernetes keeps them one hour).

Kubernetes expires Events through etcd leases; our store keeps everything until deleted,
so a periodic sweep does it: list Events (live, not cached: they are many and nobody
else needs them in memory), delete those whose lastTimestamp (or eventTime, or
creationTimestamp) is older than `ttl`, then sweep again after `interval`.

Concurrency: one key ("sweep"), so one sweep at a time; a failed sweep is retried by the
engine with backoff.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Mapping

from shoal import timestamps
from shoal.api import errors as api_errors
from shoal.controllers import pods as podutil
from shoal.controllers.engine import Controller, Manager, Request, Result

log = logging.getLogger(__name__)

EVENTS = "events"
SWEEP = Request(None, "sweep")


def last_seen(event: Mapping[str, Any]) -> float | None:
    for field in ("lastTimestamp", "eventTime", "firstTimestamp"):
        value = event.get(field)
        if value:
            try:
                return timestamps.epoch_seconds(value)
            except ValueError:
                continue
    return timestamps.epoch_seconds(podutil.meta(event).get("creationTimestamp"))


class EventTTL:
    """Deletes Events not seen for `ttl` seconds, every `interval` seconds."""

    def __init__(self, manager: Manager, *, ttl: float = 3600.0, interval: float = 300.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.client = manager.client
        self.ttl = ttl
        self.interval = interval
        self.clock = clock

    def controller(self) -> Controller:
        return Controller("event-ttl", self.reconcile, [], initial=[SWEEP])

    async def reconcile(self, request: Request) -> Result:
        events, _ = await self.client.list(EVENTS)
        cutoff = self.clock() - self.ttl
        expired = 0
        for event in events:
            seen = last_seen(event)
            if seen is None or seen >= cutoff:
                continue
            try:
                await self.client.delete(EVENTS, podutil.meta(event).get("namespace"),
                                         podutil.meta(event)["name"])
                expired += 1
            except api_errors.NotFound:
                pass
        if expired:
            log.info("event-ttl: deleted %d events older than %.0fs", expired, self.ttl)
        return Result(requeue_after=self.interval)
