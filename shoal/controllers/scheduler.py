"""The scheduler: binds every unscheduled Pod to the one node.

A Pod is schedulable when it has no spec.nodeName, is not being deleted, is not finished,
and asks for the default scheduler (spec.schedulerName empty or "default-scheduler").
Binding goes through the `binding` subresource when the API server offers it (what
Kubernetes' scheduler does: POST pods/NAME/binding); otherwise through a merge patch of
spec.nodeName. Then the PodScheduled condition is set True, and a `Scheduled` event is
recorded: "Successfully assigned default/web-abc to shoal".

There is one node, so there is no filtering or scoring: the decision is only *whether*
a pod is ready to be bound.

Concurrency: reconciles are serialised per Pod by the engine; a pod bound meanwhile by
someone else is skipped (the next reconcile sees spec.nodeName).
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Iterable

from shoal import timestamps
from shoal.api import errors as api_errors
from shoal.api.client import Obj
from shoal.controllers import engine, pods as podutil
from shoal.controllers.engine import Change, Controller, Manager, Request, Result
from shoal.controllers.events import EventRecorder

log = logging.getLogger(__name__)

PODS = "pods"
DEFAULT_SCHEDULER = "default-scheduler"


def schedulable(pod: Obj) -> bool:
    spec = pod.get("spec") or {}
    return (not spec.get("nodeName")
            and not podutil.is_deleting(pod)
            and podutil.phase(pod) not in ("Succeeded", "Failed")
            and (spec.get("schedulerName") or DEFAULT_SCHEDULER) == DEFAULT_SCHEDULER)


def scheduled_condition(now: float) -> Obj:
    return {"type": "PodScheduled", "status": "True", "lastProbeTime": None,
            "lastTransitionTime": timestamps.format_time(now)}


class Scheduler:
    """Binds Pods to `node_name`; build its engine `Controller` with `controller()`."""

    def __init__(self, manager: Manager, recorder: EventRecorder, node_name: str, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.manager = manager
        self.client = manager.client
        self.writer = manager.writer
        self.recorder = recorder
        self.node_name = node_name
        self.clock = clock
        self.pods = manager.lister(PODS)
        self._binding_supported: bool | None = None

    def controller(self) -> Controller:
        return Controller("scheduler", self.reconcile, [(PODS, self._map_pod)], workers=2)

    @staticmethod
    def _map_pod(change: Change) -> Iterable[Request]:
        if change.type != "DELETED" and schedulable(change.object):
            return [engine.object_key(change.object)]
        return ()

    async def reconcile(self, request: Request) -> Result | None:
        pod = self.pods.get(request.namespace, request.name)
        if pod is None or not schedulable(pod):
            return None
        try:
            bound = await self.bind(pod)
        except api_errors.NotFound:
            return None
        await self._mark_scheduled(bound)
        await self.recorder.normal(
            bound, "Scheduled",
            f"Successfully assigned {request.namespace}/{request.name} to {self.node_name}")
        return None

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
