"""The side tasks of one running container instance: its probe loops and exit waiter.

`track(...)` starts them for a container the worker started or adopted and returns the
`Instance` that holds their verdicts (started, ready, a kill reason). The side tasks only
record a verdict and call `wake()`; the worker's next sync acts on it (kills, restarts,
readiness in the status). A verdict of an instance that is no longer the current one
(`is_current` false) is dropped.

Startup probes gate liveness and readiness: those loops start once the startup probe
passed. An adopted instance keeps the verdicts the pod status shows for it, so a daemon
restart does not flap Ready.

`run_hook` runs a container's postStart/preStop handler where its probes connect.

Concurrency: all on the daemon's loop; `Instance.cancel()` stops every side task.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any, Callable, Mapping

from shoal.node import lifecycle, probes
from shoal.node.containers import PodContainers

Obj = Mapping[str, Any]


@dataclasses.dataclass
class Instance:
    """Side tasks of one running container instance: probes and the exit waiter."""

    container_id: str
    started: bool
    ready: bool
    has_readiness: bool
    loops: list[probes.ProbeLoop]
    waiter: asyncio.Task | None = None
    kill_reason: str | None = None
    kill_grace: float | None = None  # a probe's own terminationGracePeriodSeconds

    def cancel(self) -> None:
        for loop in self.loops:
            loop.cancel()
        if self.waiter is not None:
            self.waiter.cancel()

    @property
    def is_ready(self) -> bool:
        return lifecycle.is_ready(self.started, self.ready)

    @property
    def sidecar_done(self) -> bool:
        return lifecycle.sidecar_done(self.started, self.ready, self.has_readiness)


def exec_runner(containers: PodContainers, cid: str) -> probes.ExecRunner:
    async def run(args: list[str], timeout: float) -> tuple[int, bytes, bytes]:
        return await containers.exec(cid, args, timeout)

    return run


def track(pod: Obj, c: Obj, cid: str, *, containers: PodContainers, target: lifecycle.HandlerTarget,
          time_scale: float, is_current: Callable[["Instance"], bool], wake: Callable[[], None],
          on_unhealthy: Callable[[str], None]) -> Instance:
    """Start probe loops and the exit waiter of container `c`'s instance `cid`.

    is_current(inst): whether this instance is still the worker's current one;
    on_unhealthy(message): a probe failed (the worker emits the Unhealthy event)."""
    name = c["name"]
    startup, liveness, readiness = c.get("startupProbe"), c.get("livenessProbe"), c.get("readinessProbe")
    inst = Instance(container_id=cid, started=startup is None, ready=readiness is None,
                    has_readiness=readiness is not None, loops=[])
    st = pod.get("status") or {}
    for cs in list(st.get("containerStatuses") or []) + list(st.get("initContainerStatuses") or []):
        if cs.get("name") == name and cs.get("containerID") == f"shoal://{cid}":
            inst.started = inst.started or bool(cs.get("started"))
            inst.ready = inst.ready or bool(cs.get("ready"))

    async def on_change(kind: str, ok: bool, message: str) -> None:
        if not is_current(inst):
            return
        if kind == "startup":
            if ok:
                inst.started = True
                for loop in inst.loops:
                    if loop.kind != "startup" and loop.task is None:
                        loop.start()
            else:
                inst.kill_reason = f"Container {name} failed startup probe, will be restarted"
                inst.kill_grace = lifecycle.probe_grace(startup)
        elif kind == "readiness":
            inst.ready = ok
        elif kind == "liveness" and not ok:
            inst.kill_reason = f"Container {name} failed liveness probe, will be restarted"
            inst.kill_grace = lifecycle.probe_grace(liveness)
        wake()

    def on_failure(kind: str, message: str) -> None:
        if is_current(inst):
            on_unhealthy(f"{kind.capitalize()} probe failed: {message}")

    for kind, probe in (("startup", startup), ("liveness", liveness), ("readiness", readiness)):
        if probe is None:
            continue
        loop = probes.ProbeLoop(kind, probe, host=target.host, container=dict(c),
                                exec_runner=exec_runner(containers, cid), on_change=on_change,
                                time_scale=time_scale, netns=target.netns, on_failure=on_failure)
        inst.loops.append(loop)
        if kind == "startup" or startup is None or inst.started:
            if kind == "startup" and inst.started:
                continue  # passed already: a startup probe does not run again
            loop.start()

    async def wait_exit() -> None:
        try:
            await containers.wait(cid)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the periodic resync notices exits too
            return
        wake()

    inst.waiter = asyncio.create_task(wait_exit(), name=f"wait-{cid}")
    return inst


async def run_hook(hook: Obj, c: Obj, cid: str, *, containers: PodContainers, target: lifecycle.HandlerTarget,
                   timeout: float, bounded: bool = False) -> probes.ProbeResult | None:
    """Run a postStart/preStop handler of instance `cid`; with `bounded`, give up (None)
    when it outlasts `timeout` (preStop must not hold the stop past the grace period)."""
    run = probes.run_handler(dict(hook), host=target.host, container=dict(c), timeout=timeout,
                             exec_runner=exec_runner(containers, cid), netns=target.netns)
    if not bounded:
        return await run
    try:
        return await asyncio.wait_for(run, timeout=timeout)
    except asyncio.TimeoutError:
        return None
