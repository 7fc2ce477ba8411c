"""The scheduler: binds every unscheduled Pod to the one node, when it fits there.

A Pod is schedulable when it has no spec.nodeName, is not being deleted, is not finished,
and asks for the default scheduler (spec.schedulerName empty or "default-scheduler").

Filtering (`shoal.controllers.scheduling`, pure): the node's Node object decides —
cordon, taints, nodeSelector and required node affinity, host ports, and allocatable
against the requests of the pods already bound there. A pod that fits is bound through
the `binding` subresource when the API server offers it (what Kubernetes' scheduler does:
POST pods/NAME/binding), otherwise through a merge patch of spec.nodeName; then the
PodScheduled condition is set True and a `Scheduled` event recorded ("Successfully
assigned default/web-abc to shoal"). A pod that does not fit stays Pending with
PodScheduled=False, reason Unschedulable, and a Warning `FailedScheduling` event worded
as Kubernetes words it ("0/1 nodes are available: 1 Insufficient cpu."); it is tried
again when the Node's spec, labels or allocatable change, when a pod on the node goes
away or finishes, and every `retry_seconds` (Kubernetes' unschedulable queue).

No Node object for `node_name` (controllers running without a node agent, as in the
controller tests): pods are bound without filtering, as before there were Nodes.

Concurrency: reconciles are serialised per Pod by the engine; two workers may place two
pods at once, so the node's pods are re-read from the cache (which holds every binding
this scheduler wrote, through the manager's write-through) right before each decision,
and binding is serialised by one lock so two pods never squeeze into the same room.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable, Iterable

from shoal import timestamps
from shoal.api import errors as api_errors
from shoal.api.client import Obj
from shoal.controllers import engine, pods as podutil, scheduling
from shoal.controllers.engine import Change, Controller, Manager, Request, Result
from shoal.controllers.events import EventRecorder

log = logging.getLogger(__name__)

PODS = "pods"
NODES = "nodes"
DEFAULT_SCHEDULER = "default-scheduler"
RETRY_SECONDS = 60.0
"""How long an unschedulable pod waits at most before it is tried again."""


def schedulable(pod: Obj) -> bool:
    spec = pod.get("spec") or {}
    return (not spec.get("nodeName")
            and not podutil.is_deleting(pod)
            and podutil.phase(pod) not in ("Succeeded", "Failed")
            and (spec.get("schedulerName") or DEFAULT_SCHEDULER) == DEFAULT_SCHEDULER)


def scheduled_condition(now: float) -> Obj:
    return {"type": "PodScheduled", "status": "True", "lastProbeTime": None,
            "lastTransitionTime": timestamps.format_time(now)}


def unschedulable_condition(message: str, now: float) -> Obj:
    return {"type": "PodScheduled", "status": "False", "lastProbeTime": None,
            "lastTransitionTime": timestamps.format_time(now), "reason": "Unschedulable",
            "message": message}


def _node_changed(change: Change) -> bool:
    """Changes that can make a waiting pod fit (not the 10 s heartbeat)."""
    if change.old is None or change.type == "DELETED":
        return True
    old, new = change.old, change.object
    return (old.get("spec") != new.get("spec")
            or (old.get("metadata") or {}).get("labels") != (new.get("metadata") or {}).get("labels")
            or (old.get("status") or {}).get("allocatable") != (new.get("status") or {}).get("allocatable"))


def _frees_room(change: Change) -> bool:
    """A pod change that may free room on the node: deleted, finished or its requests gone."""
    old = change.old if change.old is not None else change.object
    if not scheduling.occupies_node(old):
        return False
    return change.type == "DELETED" or not scheduling.occupies_node(change.object)


class Scheduler:
    """Binds Pods to `node_name`; build its engine `Controller` with `controller()`."""

    def __init__(self, manager: Manager, recorder: EventRecorder, node_name: str, *,
                 clock: Callable[[], float] = time.time,
                 retry_seconds: float = RETRY_SECONDS) -> None:
        self.manager = manager
        self.client = manager.client
        self.writer = manager.writer
        self.recorder = recorder
        self.node_name = node_name
        self.clock = clock
        self.retry_seconds = retry_seconds
        self.pods = manager.lister(PODS)
        self.nodes = manager.lister(NODES)
        self._binding_supported: bool | None = None
        self._placing = asyncio.Lock()

    def controller(self) -> Controller:
        return Controller("scheduler", self.reconcile,
                          [(PODS, self._map_pod), (NODES, self._map_node)], workers=2)

    def _waiting(self) -> list[Request]:
        return [engine.object_key(p) for p in self.pods.list() if schedulable(p)]

    def _map_pod(self, change: Change) -> Iterable[Request]:
        if change.type != "DELETED" and schedulable(change.object):
            # A status-only change (our own Unschedulable condition) changes no decision.
            if change.old is None or change.old.get("spec") != change.object.get("spec"):
                return [engine.object_key(change.object)]
            return ()
        if _frees_room(change):
            return self._waiting()
        return ()

    def _map_node(self, change: Change) -> Iterable[Request]:
        name = (change.object.get("metadata") or {}).get("name")
        if name == self.node_name and _node_changed(change):
            return self._waiting()
        return ()

    async def reconcile(self, request: Request) -> Result | None:
        pod = self.pods.get(request.namespace, request.name)
        if pod is None or not schedulable(pod):
            return None
        async with self._placing:
            pod = self.pods.get(request.namespace, request.name)
            if pod is None or not schedulable(pod):
                return None
            node = self.nodes.get(None, self.node_name)
            if node is not None:
                on_node = [p for p in self.pods.list()
                           if (p.get("spec") or {}).get("nodeName") == self.node_name]
                reasons = scheduling.filter_node(pod, node, on_node)
                if reasons:
                    message = scheduling.unschedulable_message({self.node_name: reasons}, 1)
                    await self._mark_unschedulable(pod, message)
                    return Result(requeue_after=self.retry_seconds)
            try:
                bound = await self.bind(pod)
            except api_errors.NotFound:
                return None
        await self._mark_scheduled(bound)
        await self.recorder.normal(
            bound, "Scheduled",
            f"Successfully assigned {request.namespace}/{request.name} to {self.node_name}")
        return None

    async def _mark_unschedulable(self, pod: Obj, message: str) -> None:
        await self.recorder.warning(pod, "FailedScheduling", message)
        old = podutil.condition(pod, "PodScheduled")
        if old is not None and old.get("status") == "False" and old.get("message") == message:
            return
        body = engine.clone(pod)
        status = body.setdefault("status", {})
        conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
        conditions.append(unschedulable_condition(message, self.clock()))
        status["conditions"] = conditions
        try:
            await self.writer.update_status(PODS, body)
        except (api_errors.Conflict, api_errors.NotFound):
            pass  # the next attempt writes it

    async def bind(self, pod: Obj) -> Obj:
        """Set spec.nodeName, through the binding subresource where there is one."""
        ns, name = podutil.meta(pod).get("namespace"), podutil.meta(pod)["name"]
        patch = {"metadata": {"resourceVersion": podutil.meta(pod).get("resourceVersion")},
                 "spec": {"nodeName": self.node_name}}
        if self._binding_supported is not False:
            try:
                bound = await self.writer.patch(PODS, ns, name, patch, "merge",
                                                subresource="binding")
                self._binding_supported = True
                return bound
            except (api_errors.NotFound, api_errors.MethodNotAllowed,
                    api_errors.BadRequest) as exc:
                if self._binding_supported:
                    raise
                # No binding subresource here: fall back to patching the pod.
                if isinstance(exc, api_errors.NotFound) and "binding" not in str(exc):
                    raise
                self._binding_supported = False
        return await self.writer.patch(PODS, ns, name, patch, "merge")

    async def _mark_scheduled(self, pod: Obj) -> None:
        if podutil.condition(pod, "PodScheduled") is not None and \
                podutil.condition(pod, "PodScheduled").get("status") == "True":
            return
        body = engine.clone(pod)
        status = body.setdefault("status", {})
        conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
        conditions.append(scheduled_condition(self.clock()))
        status["conditions"] = conditions
        try:
            await self.writer.update_status(PODS, body)
        except (api_errors.Conflict, api_errors.NotFound):
            # The node agent may have written status first; PodScheduled is cosmetic.
            pass
