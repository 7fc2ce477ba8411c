"""One container from an image snapshot: snapshot -> intent -> create (-> start), and on
any failure clean up what was made, so a failed create leaves neither a container nor a
snapshot behind.

Every creator of containers (`shoal run`, the node agent, the image builder's RUN steps)
goes through `create_container`:

    created = await create_container(runtime, build_intent, image_config,
                                     snapshots=store.snapshots, key=cid, image=img,
                                     start=True)

- `snapshots`/`key`/`image`: prepare snapshot `key` of `image` (in a thread) and hand its
  root to `build_intent`; or pass `rootfs=` for a root someone else prepared (no snapshot
  is made or removed).
- `build_intent(rootfs)`: returns the `ContainerIntent` (may be a coroutine function, for
  callers that touch the root first).
- `adopt_existing`: when this very id exists already, a `running`/`created` container is
  adopted (`Created.adopted` names its state) instead of failing; a dead leftover of a
  create that failed half-way is deleted and created again. Used by the node agent,
  whose observation may have missed an instance.
- `start`: also start it; a failed start deletes the container and the snapshot too.

The snapshot protocol is declared here (the runtime layer) so that the image store, which
sits beside the runtime, satisfies it without either importing the other.

Concurrency: one call per container id at a time (the callers' own serialization); the
runtime's per-id lock covers create/delete races with other callers.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import logging
from pathlib import Path
from typing import Any, Awaitable, Callable, Mapping, Protocol

from shoal.runtime.errors import ContainerExists
from shoal.runtime.intent import ContainerIntent
from shoal.runtime.status import ContainerStatus

log = logging.getLogger(__name__)


class Snapshots(Protocol):
    """Copy-on-write roots keyed by name (`shoal.images.snapshots.Snapshots`)."""

    def prepare(self, key: str, image: Any) -> Path: ...

    def remove(self, key: str) -> None: ...


class ContainerCreator(Protocol):
    """The part of `shoal.runtime.Runtime` this module drives."""

    async def create(self, intent: ContainerIntent, image_config: Mapping[str, Any] | None = None) -> str: ...

    async def start(self, cid: str) -> None: ...

    async def status(self, cid: str) -> ContainerStatus: ...

    async def delete(self, cid: str, force: bool = False) -> None: ...


IntentBuilder = Callable[[Path], "ContainerIntent | Awaitable[ContainerIntent]"]


@dataclasses.dataclass(frozen=True)
class Created:
    """The container made (or found): its id and, when it was adopted, its state."""

    container_id: str
    adopted: str | None = None  # "running" | "created" when an existing one was kept


async def create_container(
    runtime: ContainerCreator,
    build_intent: IntentBuilder,
    image_config: Mapping[str, Any] | None = None,
    *,
    snapshots: Snapshots | None = None,
    key: str | None = None,
    image: Any = None,
    rootfs: Path | None = None,
    start: bool = False,
    adopt_existing: bool = False,
) -> Created:
    """Snapshot, intent, create and (with `start`) start one container; on failure remove
    the container and the snapshot, then re-raise the original error."""
    if rootfs is None:
        if snapshots is None or key is None:
            raise ValueError("create_container: pass snapshots= and key= (with image=), or rootfs=")
        rootfs = await asyncio.to_thread(snapshots.prepare, key, image)
    made_snapshot = snapshots is not None and key is not None
    cid: str | None = None
    try:
        intent = build_intent(rootfs)
        if inspect.isawaitable(intent):
            intent = await intent
        cid = intent.id
        try:
            await runtime.create(intent, image_config)
        except ContainerExists:
            if not adopt_existing:
                # not ours: never delete a container (or its snapshot) this call did not make
                cid, made_snapshot = None, False
                raise
            state = (await runtime.status(intent.id)).state
            if state in ("running", "created"):
                log.warning("container %s already exists (%s); adopting it", intent.id, state)
                return Created(intent.id, adopted=state)
            await runtime.delete(intent.id, force=True)
            await runtime.create(intent, image_config)
        if start:
            await runtime.start(intent.id)
    except BaseException:
        if cid is not None:
            with contextlib.suppress(Exception):
                await runtime.delete(cid, force=True)
        if made_snapshot:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(snapshots.remove, key)  # type: ignore[union-attr]
        raise
    return Created(intent.id)


__all__ = ["ContainerCreator", "Created", "IntentBuilder", "Snapshots", "create_container"]
