"""PodContainers: the node's container operations on the runtime, for every pod worker.

It keeps an index of the pod containers (pod uid part -> container ids), filled from one
`runtime.list()` at start and then kept by `create`/`remove`: the agent is the only
creator of pod containers, so a worker asks the runtime about its own containers only.

`create` goes through `shoal.runtime.create_container` (snapshot -> intent -> create,
cleaned up on failure; a container of this very id that already runs is adopted);
`start` removes the instance when it cannot start. Both raise `ContainerCreateError` with
a message fit for the pod status.

Concurrency: all on the daemon's loop; a worker drives only its own pod's ids, so no two
callers touch one id at once. Snapshot work runs in threads.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from shoal.node import intent, paths
from shoal.node.errors import ContainerCreateError
from shoal.node.hooks import ContainerPlan
from shoal.node.messages import clean_runtime_error
from shoal.node.seams import ContainerRuntime, ImageSource, Sandbox
from shoal.runtime import ContainerIntent, ContainerNotFound, ContainerStatus, create_container

log = logging.getLogger(__name__)
Obj = Mapping[str, Any]


class PodContainers:
    def __init__(self, runtime: ContainerRuntime, images: ImageSource, *,
                 make_intent: Callable[[Mapping[str, Any]], ContainerIntent] = intent.to_intent) -> None:
        """make_intent: intent fields -> the runtime's ContainerIntent (tests may wrap it)."""
        self.runtime = runtime
        self.images = images
        self.make_intent = make_intent
        self._known: dict[str, set[str]] = {}  # uid part -> container ids

    async def load(self) -> None:
        """Index every container the runtime has (once, at start)."""
        for st in await self.runtime.list():
            self._index(st.id, add=True)

    def pods(self) -> dict[str, set[str]]:
        """Container ids by pod uid part (a copy)."""
        return {k: set(v) for k, v in self._known.items()}

    def _index(self, cid: str, *, add: bool) -> None:
        key = paths.parse_container_id(cid)
        if key is None:
            return
        ids = self._known.setdefault(key.pod_uid, set())
        if add:
            ids.add(cid)
        else:
            ids.discard(cid)
            if not ids:
                self._known.pop(key.pod_uid, None)

    async def of_pod(self, pod_uid: str) -> list[ContainerStatus]:
        """Runtime status of every container of one pod (only the indexed ids are asked)."""
        out = []
        for cid in sorted(self._known.get(paths.uid_part(pod_uid), ())):
            try:
                out.append(await self.runtime.status(cid))
            except ContainerNotFound:  # removed behind our back
                self._index(cid, add=False)
            except Exception:  # noqa: BLE001 - a transient failure: keep it, ask next time
                log.warning("status of %s failed; keeping it", cid, exc_info=True)
        return out

    async def create(self, pod: Obj, c: Obj, cid: str, source: Any, env: Mapping[str, str],
                     mounts: Sequence[intent.MountSpec], sandbox: Sandbox, index: int, log_path: Path) -> bool:
        """Create one container instance from an image (`source` an Image: a snapshot
        keyed by `cid`) or a `ContainerPlan` (its prepared root). False when this very
        instance already ran and was adopted (nothing to start)."""
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._index(cid, add=True)
        plan = source if isinstance(source, ContainerPlan) else None

        def build(rootfs: Path) -> ContainerIntent:
            fields = intent.intent_fields(pod, c, container_id=cid, rootfs=rootfs, env=env, mounts=list(mounts),
                                          sandbox=sandbox, log_path=log_path, restart_count=index)
            if plan is not None:
                fields["command"], fields["args"] = plan.command, None
            return self.make_intent(fields)

        try:
            if plan is not None:
                created = await create_container(self.runtime, build, plan.image_config, rootfs=plan.rootfs,
                                                 adopt_existing=True)
            else:
                created = await create_container(self.runtime, build, source.config, snapshots=self.images.snapshots,
                                                 key=cid, image=source, adopt_existing=True)
        except Exception as exc:  # noqa: BLE001 - translated at this boundary
            await self.remove(cid)
            raise ContainerCreateError(clean_runtime_error(describe(exc))) from exc
        return created.adopted != "running"

    async def start(self, cid: str) -> None:
        try:
            await self.runtime.start(cid)
        except Exception as exc:  # noqa: BLE001 - translated at this boundary
            await self.remove(cid)
            raise ContainerCreateError(clean_runtime_error(describe(exc))) from exc

    async def stop(self, cid: str, grace: float) -> None:
        try:
            await self.runtime.stop(cid, grace)
        except Exception:  # noqa: BLE001 - already gone
            log.debug("stop %s", cid, exc_info=True)

    async def remove(self, cid: str, *, stop: bool = False) -> None:
        """Delete the container and its snapshot (idempotent)."""
        if stop:
            await self.stop(cid, 0)
        try:
            await self.runtime.delete(cid, force=True)
        except Exception:  # noqa: BLE001 - idempotent
            log.debug("delete %s", cid, exc_info=True)
        self._index(cid, add=False)
        try:
            await asyncio.to_thread(self.images.snapshots.remove, cid)
        except Exception:  # noqa: BLE001
            log.debug("snapshot remove %s", cid, exc_info=True)

    async def exec(self, cid: str, args: list[str], timeout: float) -> tuple[int, bytes, bytes]:
        return await self.runtime.exec(cid, args, timeout=timeout)

    async def wait(self, cid: str) -> ContainerStatus:
        return await self.runtime.wait(cid)


def describe(exc: BaseException) -> str:
    """An exception as a user-facing message; one without text (a timeout) by its kind."""
    text = str(exc)
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return f"timed out ({type(exc).__name__}) {text}".strip()
    return text or type(exc).__name__
