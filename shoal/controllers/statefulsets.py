"""The StatefulSet controller: stable pods `<set>-<ordinal>` with their own claims.

One reconcile (level-based, Kubernetes' StatefulSetControl):

1. claim pods: owned pods, plus orphans named `<set>-<n>` that the selector matches
   (adopted); owned pods the selector no longer matches are released;
2. revisions (`revisions.sync_revisions`): the template is the update revision; the
   current revision is status.currentRevision while it is still held;
3. the plan (`statefulsetplan.plan`, pure) is executed: create the ordinal's claims
   if missing (`<template>-<set>-<ordinal>`; kept by default, so a pod deleted or scaled
   away gets the same data back; see the retention policy in `statefulsetplan`), then
   its pod from the revision's template; or delete a pod;
4. status, written only when it changed.

Events as Kubernetes words them: "create Pod web-0 in StatefulSet web successful",
"create Claim www-web-0 Pod web-0 in StatefulSet web success", "delete Pod web-2 in
StatefulSet web successful"; failures as FailedCreate/FailedDelete warnings, retried by
the engine with backoff.

Concurrency: the engine serialises reconciles per StatefulSet; every write goes through
the manager's write-through, so the next reconcile never creates a pod twice.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Iterable

from shoal.api import errors as api_errors
from shoal.api import selectors
from shoal.api.client import Obj
from shoal.controllers import engine, pods as podutil, revisions
from shoal.controllers import statefulsetplan as stsplan
from shoal.controllers.engine import Change, Controller, Manager, Request, Result
from shoal.controllers.errors import ControllerError, namespace_terminating
from shoal.controllers.events import EventRecorder

log = logging.getLogger(__name__)

STATEFULSETS = "statefulsets.apps"
PODS = "pods"
CLAIMS = "persistentvolumeclaims"


class StatefulSetController:
    """Reconciles StatefulSets; build its engine `Controller` with `controller()`."""

    def __init__(self, manager: Manager, recorder: EventRecorder, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.writer = manager.writer
        self.recorder = recorder
        self.clock = clock
        self.sets = manager.lister(STATEFULSETS)
        self.pods = manager.lister(PODS)
        self.claims = manager.lister(CLAIMS)
        self.revisions = manager.lister(revisions.REVISIONS)

    def controller(self) -> Controller:
        return Controller("statefulset", self.reconcile, [
            (STATEFULSETS, engine.map_own),
            (PODS, self._map_pod),
            (revisions.REVISIONS, engine.map_owner("StatefulSet")),
        ], workers=2)

    def _map_pod(self, change: Change) -> Iterable[Request]:
        keys = set(engine.map_owner("StatefulSet")(change))
        for pod in (change.old, change.object):
            if pod is None or podutil.has_controller(pod):
                continue
            for sts in self.sets.list(podutil.meta(pod).get("namespace")):
                if stsplan.ordinal_of(sts, pod) is not None and \
                        _selector(sts).matches(engine.labels_of(pod)):
                    keys.add(engine.object_key(sts))
        return keys

    async def reconcile(self, request: Request) -> Result | None:
        cached = self.sets.get(request.namespace, request.name)
        if cached is None or podutil.is_deleting(cached):
            return None
        sts = engine.clone(cached)
        pods = await self._claim_pods(sts)
        history = await revisions.sync_revisions(self.writer, self.revisions, sts, pods)
        current = podutil.meta(history.current)["name"]
        update = podutil.meta(history.update)["name"]
        now = self.clock()
        failure = None
        for step in stsplan.plan(sts, pods, current, update, now):
            try:
                if step.action == "create":
                    await self._create(sts, step, history)
                else:
                    await self._release_claims(sts, step, pods)
                    await self._delete(sts, step.pod)
            except api_errors.StatusError as exc:
                if namespace_terminating(exc):
                    return None
                failure = exc
                break
        owned = [p for p in self.pods.list(request.namespace) if podutil.controlled_by(p, sts)]
        await self._write_status(sts, stsplan.status(sts, owned, current, update, now))
        if failure is not None:
            raise _StepFailed(str(failure))
        wait = stsplan.availability_wait(
            owned, int((sts.get("spec") or {}).get("minReadySeconds") or 0), now)
        return Result(requeue_after=wait + 0.05) if wait is not None else None

    async def _release_claims(self, sts: Obj, step: stsplan.Step, pods: list[Obj]) -> None:
        """whenScaled: Delete: a condemned pod becomes the owner of its claims, so the
        garbage collector removes them once the pod is gone."""
        start, count = stsplan.start_ordinal(sts), stsplan.replicas(sts)
        if start <= step.ordinal < start + count or stsplan.retention(sts, "whenScaled") != "Delete":
            return
        pod = next((p for p in pods if podutil.meta(p)["name"] == step.pod), None)
        for claim in stsplan.claims_for(sts, step.ordinal):
            current = self.claims.get(claim["metadata"]["namespace"], claim["metadata"]["name"])
            if current is None or pod is None:
                continue
            refs = stsplan.claim_owner_refs(sts, current, pod)
            if refs is not None:
                body = engine.clone(current)
                body["metadata"]["ownerReferences"] = refs
                await self.writer.update(CLAIMS, body)

    async def _claim_pods(self, sts: Obj) -> list[Obj]:
        selector = _selector(sts)
        claimed = []
        for pod in self.pods.list(podutil.meta(sts)["namespace"]):
            matches = selector.matches(engine.labels_of(pod))
            if podutil.controlled_by(pod, sts):
                if matches:
                    claimed.append(pod)
                elif not podutil.is_deleting(pod):
                    await self._set_owner(pod, sts, adopt=False)
            elif (matches and not podutil.has_controller(pod) and not podutil.is_deleting(pod)
                  and stsplan.ordinal_of(sts, pod) is not None):
                try:
                    claimed.append(await self._set_owner(pod, sts, adopt=True))
                except api_errors.NotFound:
                    pass
        return claimed

    async def _set_owner(self, pod: Obj, sts: Obj, *, adopt: bool) -> Obj:
        pod = engine.clone(pod)
        uid = podutil.meta(sts)["uid"]
        refs = [r for r in pod["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
        if adopt:
            refs.append(podutil.owner_reference(sts))
        pod["metadata"]["ownerReferences"] = refs
        return await self.writer.update(PODS, pod)

    async def _create(self, sts: Obj, step: stsplan.Step, history: revisions.History) -> None:
        name = stsplan.pod_name(sts, step.ordinal)
        set_name = podutil.meta(sts)["name"]
        for claim in stsplan.claims_for(sts, step.ordinal):
            claim_name = claim["metadata"]["name"]
            existing = self.claims.get(claim["metadata"]["namespace"], claim_name)
            if existing is not None:
                if podutil.is_deleting(existing):
                    raise api_errors.Conflict(
                        f"claim {claim_name} of pod {name} is being deleted; waiting")
                continue
            try:
                await self.writer.create(CLAIMS, claim)
            except api_errors.AlreadyExists:
                continue
            except api_errors.StatusError as exc:
                await self.recorder.warning(
                    sts, "FailedCreate",
                    f"create Claim {claim_name} for Pod {name} in StatefulSet {set_name} "
                    f"failed error: {exc}")
                raise
            await self.recorder.normal(
                sts, "SuccessfulCreate",
                f"create Claim {claim_name} Pod {name} in StatefulSet {set_name} success")
        revision = history.by_name(step.revision) or history.update
        template = revisions.template_of(revision)
        pod = stsplan.new_pod(sts, step.ordinal, template, podutil.meta(revision)["name"])
        try:
            await self.writer.create(PODS, pod)
        except api_errors.AlreadyExists:
            return  # the old pod of this ordinal is still going away
        except api_errors.StatusError as exc:
            await self.recorder.warning(
                sts, "FailedCreate",
                f"create Pod {name} in StatefulSet {set_name} failed error: {exc}")
            raise
        await self.recorder.normal(sts, "SuccessfulCreate",
                                   f"create Pod {name} in StatefulSet {set_name} successful")

    async def _delete(self, sts: Obj, name: str) -> None:
        set_name = podutil.meta(sts)["name"]
        try:
            await self.writer.delete(PODS, podutil.meta(sts)["namespace"], name)
        except api_errors.NotFound:
            return
        except api_errors.StatusError as exc:
            await self.recorder.warning(
                sts, "FailedDelete",
                f"delete Pod {name} in StatefulSet {set_name} failed error: {exc}")
            raise
        await self.recorder.normal(sts, "SuccessfulDelete",
                                   f"delete Pod {name} in StatefulSet {set_name} successful")

    async def _write_status(self, sts: Obj, status: Obj) -> None:
        old = (self.sets.get(podutil.meta(sts).get("namespace"), podutil.meta(sts)["name"])
               or sts)
        if {k: v for k, v in (old.get("status") or {}).items()} == status:
            return
        body = engine.clone(old)
        body["status"] = status
        try:
            await self.writer.update_status(STATEFULSETS, body)
        except api_errors.NotFound:
            pass


class _StepFailed(ControllerError):
    """A pod or claim could not be created or deleted; the engine retries with backoff."""


def _selector(sts: Obj) -> Any:
    return selectors.selector_from_spec((sts.get("spec") or {}).get("selector"))
