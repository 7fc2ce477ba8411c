"""Resync: the one loop kube-proxy's syncs share (Services and NetworkPolicies).

Informers (the controllers' `Informer`) hold the picture; any change marks it dirty, and
one task turns the whole picture into rules by calling `apply()` (level-based: it reads
the informers' listers, never the change). Changes arriving together are coalesced
(`debounce_seconds`), so a rollout that touches many objects rewrites the rules once. A
failed `apply` is retried after `retry_seconds` (or sooner, on the next change); the
informers relist when a watch ends.

The first `apply` waits until every informer has listed and runs even when all are
empty: `synced` means "the rules are in step with the API".

Concurrency: one loop task (plus one task per informer when the Resync runs its own);
the handlers only set the dirty flag, so they never block an informer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from shoal.controllers.informer import Informer
from shoal.tasks import cancel_and_wait

log = logging.getLogger(__name__)


class Resync:
    def __init__(self, name: str, informers: Sequence[Informer], apply: Callable[[], Awaitable[None]], *,
                 run_informers: bool, debounce_seconds: float = 0.05, retry_seconds: float = 2.0) -> None:
        """run_informers: start the informers' tasks too (False when a controller
        manager already runs them)."""
        self._name = name
        self._informers = list(informers)
        self._apply = apply
        self._run_informers = run_informers
        self._debounce = debounce_seconds
        self._retry = retry_seconds
        self._dirty = asyncio.Event()
        for informer in self._informers:
            informer.add_handler(lambda _change: self._dirty.set())
        self._tasks: list[asyncio.Task[None]] = []
        self.synced = asyncio.Event()

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._loop(), name=f"{self._name}-sync")]
        if self._run_informers:
            self._tasks += [asyncio.create_task(i.run(), name=f"{self._name}-{i.resource}")
                            for i in self._informers]

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks = []

    async def _loop(self) -> None:
        await asyncio.gather(*(i.synced.wait() for i in self._informers))
        self._dirty.set()
        while True:
            await self._dirty.wait()
            await asyncio.sleep(self._debounce)
            self._dirty.clear()
            try:
                await self._apply()
                self.synced.set()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s sync failed; retrying", self._name)
                await asyncio.sleep(self._retry)
                self._dirty.set()
