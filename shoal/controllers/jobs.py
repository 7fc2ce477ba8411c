"""The Job controller: run a Job's pods to completion, as Kubernetes' job controller does.

One reconcile per Job (level-based): read the Job and the pods it controls from the
caches, ask `jobstate.plan` what to do, then do it — create pods (slow-start batches of
1, 2, 4, ... like the ReplicaSet controller; a failing batch stops the rest), delete the
ones the plan names, record events, write the status when it changed, delete the Job
itself once `ttlSecondsAfterFinished` has passed (propagationPolicy Foreground, as the
TTL-after-finished controller does), and ask to be woken when a back-off, a deadline or
a TTL runs out.

Pods are made from the template as Kubernetes makes them: named `<job>-<5 random>` (or
`<job>-<index>-<5 random>` for Indexed Jobs), controlled by the Job (an ownerReference
that blocks foreground deletion, so the garbage collector removes them with the Job).
An Indexed Job's pods carry their index in the `batch.kubernetes.io/job-completion-index`
annotation and label, get `JOB_COMPLETION_INDEX` from that annotation through the
downward API, and the hostname `<job>-<index>`.

Difference from Kubernetes: counts are derived from the pods that exist (Kubernetes
also keeps them in the status through the `batch.kubernetes.io/job-tracking` pod
finalizer), so a finished pod deleted by hand is no longer counted.

Concurrency: the engine serialises reconciles per Job; created and deleted pods are
written through to the cache, so the next reconcile never creates them twice.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from typing import Any, Callable, Iterable

from shoal.api import errors as api_errors
from shoal.api.builtin import batch
from shoal.api.client import Obj
from shoal.controllers import engine, jobstate, pods as podutil
from shoal.controllers.engine import Controller, Manager, Request, Result
from shoal.controllers.errors import ControllerError, namespace_terminating
from shoal.controllers.events import EventRecorder
from shoal.controllers.replicaset import pod_name

log = logging.getLogger(__name__)

JOBS = "jobs.batch"
PODS = "pods"


def pod_from_template(job: Obj, index: int | None) -> Obj:
    """A Pod for this Job (Kubernetes' GetPodFromTemplate plus the Indexed additions)."""
    template = (job.get("spec") or {}).get("template") or {}
    tmeta = template.get("metadata") or {}
    meta = podutil.meta(job)
    base = meta["name"] if index is None else f"{meta['name']}-{index}"
    pod_meta: Obj = {
        "generateName": f"{base}-",
        "name": pod_name(base),
        "namespace": meta["namespace"],
        "labels": dict(tmeta.get("labels") or {}),
        "ownerReferences": [podutil.owner_reference(job)],
    }
    annotations = dict(tmeta.get("annotations") or {})
    spec = copy.deepcopy(template.get("spec") or {})
    if index is not None:
        annotations[batch.COMPLETION_INDEX] = str(index)
        pod_meta["labels"][batch.COMPLETION_INDEX] = str(index)
        spec.setdefault("hostname", f"{meta['name']}-{index}"[:63].rstrip("-."))
        ref = {"fieldRef": {"apiVersion": "v1",
                            "fieldPath": f"metadata.annotations['{batch.COMPLETION_INDEX}']"}}
        for key in ("initContainers", "containers"):
            for container in spec.get(key) or []:
                env = container.setdefault("env", [])
                if not any(e.get("name") == batch.COMPLETION_INDEX_ENV for e in env):
                    env.append({"name": batch.COMPLETION_INDEX_ENV, "valueFrom": ref})
    if annotations:
        pod_meta["annotations"] = annotations
    if tmeta.get("finalizers"):
        pod_meta["finalizers"] = list(tmeta["finalizers"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": spec}


class JobController:
    """Reconciles Jobs; build its engine `Controller` with `controller()`."""

    def __init__(self, manager: Manager, recorder: EventRecorder, *,
                 backoff: jobstate.Backoff = jobstate.Backoff(),
                 clock: Callable[[], float] = time.time, workers: int = 2) -> None:
        self.manager = manager
        self.writer = manager.writer
        self.recorder = recorder
        self.backoff = backoff
        self.clock = clock
        self.workers = workers
        self.jobs = manager.lister(JOBS)
        self.pods = manager.lister(PODS)

    def controller(self) -> Controller:
        return Controller("job", self.reconcile, [
            (JOBS, engine.map_own),
            (PODS, engine.map_owner("Job")),
        ], workers=self.workers)

    def owned_pods(self, job: Obj) -> list[Obj]:
        uid = podutil.meta(job).get("uid") or ""
        return [p for p in self.pods.dependents(uid) if podutil.controlled_by(p, job)]

    async def reconcile(self, request: Request) -> Result | None:
        cached = self.jobs.get(request.namespace, request.name)
        if cached is None:
            return None
        job = engine.clone(cached)
        decision = jobstate.plan(job, self.owned_pods(job), self.clock(), self.backoff)
        if decision.delete_job:
            await self._expire(job)
            return None
        failure = await self._create_pods(job, decision.create)
        await self._delete_pods(job, decision.delete)
        for type_, reason, message in decision.events:
            await self.recorder.event(job, type_, reason, message)
        if decision.status != (cached.get("status") or {}):
            body = engine.clone(self.jobs.get(request.namespace, request.name) or job)
            body["status"] = decision.status
            try:
                await self.writer.update_status(JOBS, body)
            except api_errors.NotFound:
                return None
        if failure is not None:
            raise _ManageFailed(failure)
        if decision.requeue_after is not None:
            return Result(requeue_after=decision.requeue_after)
        return None

    async def _expire(self, job: Obj) -> None:
        meta = podutil.meta(job)
        try:
            await self.writer.delete(JOBS, meta["namespace"], meta["name"],
                                     propagation_policy="Foreground")
        except api_errors.NotFound:
            return
        log.info("job %s/%s deleted: ttlSecondsAfterFinished ran out", meta["namespace"],
                 meta["name"])

    async def _create_pods(self, job: Obj, indexes: list[int | None]) -> str | None:
        batch_size, done = 1, 0
        while done < len(indexes):
            chunk = indexes[done:done + batch_size]
            results = await asyncio.gather(*(self._create_pod(job, i) for i in chunk),
                                           return_exceptions=True)
            done += len(chunk)
            errors = [r for r in results if isinstance(r, BaseException)]
            if errors and all(namespace_terminating(e) for e in errors):
                return None
            if errors:
                message = f"Error creating: {errors[0]}"
                await self.recorder.warning(job, "FailedCreate", message)
                return message
            batch_size *= 2
        return None

    async def _create_pod(self, job: Obj, index: int | None) -> Obj:
        for _ in range(3):
            try:
                pod = await self.writer.create(PODS, pod_from_template(job, index))
            except api_errors.AlreadyExists:
                continue  # a random-name collision: draw another name
            await self.recorder.normal(job, "SuccessfulCreate",
                                       f"Created pod: {pod['metadata']['name']}")
            return pod
        raise api_errors.AlreadyExists(f"could not find a free name for a pod of "
                                       f"{podutil.meta(job)['name']}")

    async def _delete_pods(self, job: Obj, victims: Iterable[Any]) -> None:
        async def delete(pod: Any) -> None:
            meta = podutil.meta(pod)
            try:
                await self.writer.delete(PODS, meta["namespace"], meta["name"])
            except api_errors.NotFound:
                return
            await self.recorder.normal(job, "SuccessfulDelete", f"Deleted pod: {meta['name']}")

        results = await asyncio.gather(*(delete(p) for p in victims), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise _ManageFailed(f"Error deleting: {errors[0]}")


class _ManageFailed(ControllerError):
    """Pods could not be created or deleted; the engine retries with backoff."""
