"""Stopping a pod's containers the kubelet's way, and removing every trace of a pod.

`kill` runs the container's preStop handler (bounded by the grace period), then stops
it (the stop signal, grace, SIGKILL). `stop_all` stops the regular containers first,
concurrently, then the native sidecars in reverse order, all sharing one grace period;
`stop_sidecars` only the sidecars (a Never/OnFailure pod whose regular containers
ended). `remove_everything` deletes containers, snapshots, sandbox, hook state, volumes
and the pod dir.

These act for one pod worker, which they see as a `StoppingPod` (the worker satisfies
it), through the node's `NodeServices`.

Concurrency: called from the pod's worker task only.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path
from typing import Any, Protocol

from shoal.node import instances, lifecycle, volumes
from shoal.node.instances import Instance
from shoal.node.observed import ObservedPod, running_id
from shoal.node.seams import Sandbox
from shoal.node.services import NodeServices

Obj = dict[str, Any]


class StoppingPod(Protocol):
    node: NodeServices
    pod: Obj
    key: str
    uid: str
    root: Path
    instances: dict[str, Instance]

    def emit(self, type_: str, reason: str, message: str, c: Obj | None = None) -> None: ...

    def handler_target(self, sandbox: Sandbox | None) -> lifecycle.HandlerTarget: ...

    async def observe(self) -> ObservedPod: ...

    async def stop_side_tasks(self) -> None: ...


async def kill(w: StoppingPod, c: Obj, cid: str, grace: float, message: str) -> None:
    """Stop container `c`'s instance `cid` (Killing event, preStop, stop)."""
    w.emit("Normal", "Killing", message, c)
    inst = w.instances.pop(c["name"], None)
    if inst is not None:
        inst.cancel()
    hook = (c.get("lifecycle") or {}).get("preStop")
    if hook:
        result = await instances.run_hook(hook, c, cid, containers=w.node.containers, bounded=True,
                                          target=w.handler_target(await w.node.network.get_sandbox(w.key)),
                                          timeout=max(grace, 1.0))
        if result is not None and not result.success:
            w.emit("Warning", "FailedPreStopHook", f"PreStopHook failed: {result.message}", c)
    await w.node.containers.stop(cid, grace)


def _sidecars(pod: Obj) -> list[Obj]:
    return [c for c in pod["spec"].get("initContainers") or [] if lifecycle.is_sidecar(c)]


async def stop_sidecars(w: StoppingPod, observed: ObservedPod, grace: float) -> None:
    for c in reversed(_sidecars(w.pod)):
        cid = running_id(observed, c)
        if cid:
            await kill(w, c, cid, grace, f"Stopping container {c['name']}")


async def stop_all(w: StoppingPod, observed: ObservedPod, grace: float) -> None:
    """Stop every running container: regular ones first (concurrently), then sidecars
    in reverse order, sharing one grace period as the kubelet does."""
    spec = w.pod["spec"]
    deadline = time.monotonic() + grace
    regular = list(spec["containers"]) + [c for c in spec.get("initContainers") or [] if not lifecycle.is_sidecar(c)]
    await asyncio.gather(*(
        kill(w, c, cid, grace, f"Stopping container {c['name']}")
        for c in regular if (cid := running_id(observed, c))))
    for c in reversed(_sidecars(w.pod)):
        cid = running_id(observed, c)
        if cid:
            await kill(w, c, cid, max(1.0, deadline - time.monotonic()), f"Stopping container {c['name']}")
    await w.stop_side_tasks()


async def remove_everything(w: StoppingPod) -> None:
    await w.stop_side_tasks()
    for insts in (await w.observe()).values():
        for o in insts:
            await w.node.containers.remove(o.container_id)
    await w.node.network.delete_sandbox(w.key)
    await w.node.hooks.release_pod(w.pod, w.root)
    await asyncio.to_thread(volumes.teardown_pod_volumes, w.root)
    await asyncio.to_thread(shutil.rmtree, w.root, True)
    w.node.backoff.forget_prefix(f"{w.uid}/")
