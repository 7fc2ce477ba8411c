"""The ReplicaSet controller: keep spec.replicas active Pods, report their state.

One reconcile (Kubernetes' syncReplicaSet, level-based):

1. claim Pods: adopt orphans the selector matches (unless the ReplicaSet is being
   deleted), release owned Pods whose labels no longer match;
2. active pods (not terminal, not being deleted) minus spec.replicas:
   - too few: create the missing Pods in slow-start batches (1, 2, 4, ...; a failing
     batch stops the rest), named `<rs>-<5 random chars>` with a controller
     ownerReference that blocks foreground deletion of the owner;
   - too many: delete the first ones in Kubernetes' ActivePods ranking
     (`pods.rank_for_deletion`: unscheduled, pending, not ready, ... newest first);
3. status: replicas, fullyLabeledReplicas, readyReplicas, availableReplicas
   (ready for minReadySeconds), observedGeneration, and a ReplicaFailure condition while
   pods cannot be created; written only when it changed. While some ready pods are not
   yet available, the reconcile asks to run again when the next one will be.

Concurrency: the engine serialises reconciles per ReplicaSet. Created and deleted pods
are written through to the cache, so the next reconcile never creates them twice.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import secrets
import time
from typing import Any, Callable, Iterable

from shoal import timestamps
from shoal.api import errors as api_errors
from shoal.api import selectors
from shoal.api.client import Obj
from shoal.controllers import engine, pods as podutil
from shoal.controllers.engine import Change, Controller, Manager, Request, Result
from shoal.controllers.errors import ControllerError, namespace_terminating
from shoal.controllers.events import EventRecorder

log = logging.getLogger(__name__)

REPLICASETS = "replicasets.apps"
PODS = "pods"
BURST = 500
"""Most pods created or deleted in one reconcile (Kubernetes' burstReplicas)."""
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_MAX_GENERATE_BASE = 58  # 63 - 5 random characters


def pod_name(rs_name: str) -> str:
    """`<rs>-xxxxx` as Kubernetes' generateName makes it (base truncated to 58)."""
    base = f"{rs_name}-"[:_MAX_GENERATE_BASE]
    return base + "".join(secrets.choice(_NAME_ALPHABET) for _ in range(5))


def pod_from_template(rs: Obj) -> Obj:
    """A Pod for this ReplicaSet (Kubernetes' GetPodFromTemplate)."""
    template = (rs.get("spec") or {}).get("template") or {}
    tmeta = template.get("metadata") or {}
    meta = podutil.meta(rs)
    pod_meta: Obj = {
        "generateName": f"{meta['name']}-"[:_MAX_GENERATE_BASE],
        "name": pod_name(meta["name"]),
        "namespace": meta["namespace"],
        "labels": dict(tmeta.get("labels") or {}),
        "ownerReferences": [podutil.owner_reference(rs)],
    }
    if tmeta.get("annotations"):
        pod_meta["annotations"] = dict(tmeta["annotations"])
    if tmeta.get("finalizers"):
        pod_meta["finalizers"] = list(tmeta["finalizers"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta,
            "spec": copy.deepcopy(template.get("spec") or {})}


def replica_set_status(rs: Obj, pods: list[Obj], now: float,
                       failure: str | None = None) -> Obj:
    """The status for these (active, owned) pods; failure: a pod create/delete error."""
    template_labels = ((rs["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {}
    min_ready = int(rs["spec"].get("minReadySeconds") or 0)
    status: Obj = {
        "replicas": len(pods),
        "fullyLabeledReplicas": sum(
            1 for p in pods if all(engine.labels_of(p).get(k) == v
                                   for k, v in template_labels.items())),
        "readyReplicas": sum(1 for p in pods if podutil.is_ready(p)),
        "availableReplicas": sum(1 for p in pods if podutil.is_available(p, min_ready, now)),
        "observedGeneration": int(podutil.meta(rs).get("generation") or 0),
    }
    old_conditions = (rs.get("status") or {}).get("conditions") or []
    conditions = [c for c in old_conditions if c.get("type") != "ReplicaFailure"]
    if failure is not None:
        old = next((c for c in old_conditions if c.get("type") == "ReplicaFailure"), None)
        reason = "FailedCreate" if "creat" in failure else "FailedDelete"
        if old is not None and old.get("reason") == reason and old.get("message") == failure:
            conditions.append(old)
        else:
            conditions.append({"type": "ReplicaFailure", "status": "True", "reason": reason,
                               "message": failure,
                               "lastTransitionTime": timestamps.format_time(now)})
    if conditions:
        status["conditions"] = conditions
    return status


class ReplicaSetController:
    """Reconciles ReplicaSets; build its engine `Controller` with `controller()`."""

    def __init__(self, manager: Manager, recorder: EventRecorder, *,
                 clock: Callable[[], float] = time.time, workers: int = 2) -> None:
        self.manager = manager
        self.writer = manager.writer
        self.recorder = recorder
        self.clock = clock
        self.workers = workers
        self.replicasets = manager.lister(REPLICASETS)
        self.pods = manager.lister(PODS)

    def controller(self) -> Controller:
        return Controller("replicaset", self.reconcile, [
            (REPLICASETS, engine.map_own),
            (PODS, self._map_pod),
        ], workers=self.workers)

    def _map_pod(self, change: Change) -> Iterable[Request]:
        keys = set(engine.map_owner("ReplicaSet")(change))
        for pod in (change.old, change.object):
            if pod is None or podutil.has_controller(pod):
                continue
            ns = podutil.meta(pod).get("namespace")
            for rs in self.replicasets.list(ns):
                if _selector(rs).matches(engine.labels_of(pod)):
                    keys.add(engine.object_key(rs))
        return keys

    async def reconcile(self, request: Request) -> Result | None:
        cached = self.replicasets.get(request.namespace, request.name)
        if cached is None:
            return None
        rs = engine.clone(cached)
        selector = _selector(rs)
        if selector.empty:
            await self.recorder.warning(rs, "SelectingAll",
                                        "This ReplicaSet is selecting all pods. A non-empty "
                                        "selector is required.")
            return None
        pods = await self._claim_pods(rs, selector)
        failure = None
        if not podutil.is_deleting(rs):
            failure = await self._manage(rs, [p for p in pods if podutil.is_active(p)])
        active = [p for p in self._owned(rs) if podutil.is_active(p)]
        now = self.clock()
        status = replica_set_status(rs, active, now, failure)
        if status != {k: v for k, v in (cached.get("status") or {}).items()}:
            body = engine.clone(self.replicasets.get(request.namespace, request.name) or rs)
            body["status"] = status
            try:
                await self.writer.update_status(REPLICASETS, body)
            except api_errors.NotFound:
                return None  # deleted meanwhile
        if failure is not None:
            raise _ManageFailed(failure)
        return self._wake_for_availability(rs, active, now)

    def _owned(self, rs: Obj) -> list[Obj]:
        return [p for p in self.pods.list(podutil.meta(rs)["namespace"])
                if podutil.controlled_by(p, rs)]

    async def _claim_pods(self, rs: Obj, selector: Any) -> list[Obj]:
        claimed = []
        for pod in self.pods.list(podutil.meta(rs)["namespace"]):
            matches = selector.matches(engine.labels_of(pod))
            if podutil.controlled_by(pod, rs):
                if matches:
                    claimed.append(pod)
                elif not podutil.is_deleting(pod):
                    await self._set_owner(pod, rs, adopt=False)
            elif (matches and not podutil.has_controller(pod) and not podutil.is_deleting(pod)
                  and not podutil.is_deleting(rs) and podutil.is_active(pod)):
                try:
                    claimed.append(await self._set_owner(pod, rs, adopt=True))
                except api_errors.NotFound:
                    pass
        return claimed

    async def _set_owner(self, pod: Obj, rs: Obj, *, adopt: bool) -> Obj:
        pod = engine.clone(pod)
        uid = podutil.meta(rs)["uid"]
        refs = [r for r in pod["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
        if adopt:
            refs.append(podutil.owner_reference(rs))
        pod["metadata"]["ownerReferences"] = refs
        return await self.writer.update(PODS, pod)

    async def _manage(self, rs: Obj, active: list[Obj]) -> str | None:
        """Create or delete pods; returns an error message if some failed."""
        diff = len(active) - int(rs["spec"].get("replicas", 1))
        if diff < 0:
            return await self._create_pods(rs, min(-diff, BURST))
        if diff > 0:
            return await self._delete_pods(rs, podutil.pods_to_delete(active, min(diff, BURST)))
        return None

    async def _create_pods(self, rs: Obj, count: int) -> str | None:
        batch, created = 1, 0
        while created < count:
            size = min(batch, count - created)
            results = await asyncio.gather(*(self._create_pod(rs) for _ in range(size)),
                                           return_exceptions=True)
            created += size
            errors = [r for r in results if isinstance(r, BaseException)]
            if errors and all(namespace_terminating(e) for e in errors):
                return None  # the namespace is going away; nothing to report
            if errors:
                message = f"Error creating: {errors[0]}"
                await self.recorder.warning(rs, "FailedCreate", message)
                return message
            batch *= 2
        return None

    async def _create_pod(self, rs: Obj) -> Obj:
        for _ in range(3):
            try:
                pod = await self.writer.create(PODS, pod_from_template(rs))
            except api_errors.AlreadyExists:
                continue  # a random-name collision: draw another name
            await self.recorder.normal(rs, "SuccessfulCreate",
                                       f"Created pod: {pod['metadata']['name']}")
            return pod
        raise api_errors.AlreadyExists(f"could not find a free name for a pod of "
                                       f"{podutil.meta(rs)['name']}")

    async def _delete_pods(self, rs: Obj, victims: list[Obj]) -> str | None:
        async def delete(pod: Obj) -> None:
            name = podutil.meta(pod)["name"]
            try:
                await self.writer.delete(PODS, podutil.meta(pod)["namespace"], name)
            except api_errors.NotFound:
                return
            await self.recorder.normal(rs, "SuccessfulDelete", f"Deleted pod: {name}")

        results = await asyncio.gather(*(delete(p) for p in victims), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            message = f"Error deleting: {errors[0]}"
            await self.recorder.warning(rs, "FailedDelete", message)
            return message
        return None

    def _wake_for_availability(self, rs: Obj, active: list[Obj], now: float) -> Result | None:
        min_ready = int(rs["spec"].get("minReadySeconds") or 0)
        if min_ready <= 0:
            return None
        waits = [since + min_ready - now for p in active
                 if (since := podutil.ready_since(p)) is not None and since + min_ready > now]
        return Result(requeue_after=min(waits) + 0.05) if waits else None


class _ManageFailed(ControllerError):
    """Pods could not be created or deleted; the engine retries with backoff."""


def _selector(rs: Obj) -> Any:
    return selectors.selector_from_spec((rs.get("spec") or {}).get("selector"))
