"""The Deployment controller: Deployment -> ReplicaSets, rollouts, status; and the
functions behind `shoal rollout undo|history`.

One reconcile of a Deployment (Kubernetes' syncDeployment, level-based):

1. claim ReplicaSets: adopt orphans the selector matches, release owned ones it no
   longer matches;
2. find the new ReplicaSet (template equal to the Deployment's, ignoring the
   pod-template-hash label) and sync its revision annotation (max old revision + 1);
3. roll: RollingUpdate scales the new ReplicaSet up within maxSurge and old ones down
   while `replicas - maxUnavailable` pods stay available (math in `rollout`);
   Recreate scales old ones to 0, waits until their pods are gone, then scales the new
   one up; a paused Deployment is only scaled;
4. once complete, prune old ReplicaSets beyond revisionHistoryLimit;
5. write status (counts, Available and Progressing conditions) when it changed, and ask
   to be woken when the progress deadline would pass.

Each step that writes returns; the write's watch event brings the next reconcile.
Writes go through the manager's write-through writer so the next reconcile sees them.

Concurrency: the engine serialises reconciles per Deployment; two Deployments never
share a ReplicaSet (a ReplicaSet has one controller owner).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from typing import Any, Callable, Iterable

from shoal.api import errors as api_errors
from shoal.api import selectors
from shoal.api.client import ApiClient, Obj
from shoal.controllers import engine, pods as podutil, rollout
from shoal.controllers.engine import Change, Controller, Manager, Request, Result
from shoal.controllers.errors import RevisionNotFound, RollbackSkipped
from shoal.controllers.events import EventRecorder

log = logging.getLogger(__name__)

DEPLOYMENTS = "deployments.apps"
REPLICASETS = "replicasets.apps"
PODS = "pods"


class DeploymentController:
    """Reconciles Deployments; build its engine `Controller` with `controller()`."""

    def __init__(self, manager: Manager, recorder: EventRecorder, *,
                 clock: Callable[[], float] = time.time, workers: int = 2) -> None:
        self.manager = manager
        self.writer = manager.writer
        self.recorder = recorder
        self.clock = clock
        self.workers = workers
        self.deployments = manager.lister(DEPLOYMENTS)
        self.replicasets = manager.lister(REPLICASETS)
        self.pods = manager.lister(PODS)

    def controller(self) -> Controller:
        return Controller("deployment", self.reconcile, [
            (DEPLOYMENTS, engine.map_own),
            (REPLICASETS, self._map_replicaset),
            (PODS, self._map_pod),
        ], workers=self.workers)

    # -- mapping ----------------------------------------------------------------------

    def _map_replicaset(self, change: Change) -> Iterable[Request]:
        keys = set(engine.map_owner("Deployment")(change))
        if not keys:
            # An orphan: every Deployment whose selector matches may adopt it.
            rs = change.object
            ns = podutil.meta(rs).get("namespace")
            for d in self.deployments.list(ns):
                if selectors.selector_from_spec((d.get("spec") or {}).get("selector")).matches(
                        engine.labels_of(rs)):
                    keys.add(engine.object_key(d))
        return keys

    def _map_pod(self, change: Change) -> Iterable[Request]:
        # Only Recreate waits on pods; a pod going away may unblock it.
        if change.type != "DELETED" and not podutil.is_deleting(change.object):
            return ()
        ref = engine.controller_ref(change.object)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return ()
        rs = self.replicasets.get(podutil.meta(change.object).get("namespace"), ref["name"])
        if rs is None:
            return ()
        return engine.map_owner("Deployment")(Change("MODIFIED", rs))

    # -- reconcile --------------------------------------------------------------------

    async def reconcile(self, request: Request) -> Result | None:
        try:
            return await self._reconcile(request)
        except api_errors.NotFound:
            # The Deployment went away mid-reconcile; its DELETED event follows.
            if self.deployments.get(request.namespace, request.name) is None:
                return None
            raise

    async def _reconcile(self, request: Request) -> Result | None:
        cached = self.deployments.get(request.namespace, request.name)
        if cached is None or podutil.is_deleting(cached):
            return None
        d = engine.clone(cached)
        spec = d.get("spec") or {}
        selector = selectors.selector_from_spec(spec.get("selector"))
        if selector.empty:
            await self.recorder.warning(d, "SelectingAll",
                                        "This deployment is selecting all pods. A non-empty "
                                        "selector is required.")
            return None
        rss = await self._claim_replica_sets(d, selector)
        self._check_paused_condition(d)
        if spec.get("paused") or rollout.is_scaling_event(d, rss):
            return await self._sync_scale(d, rss)
        if ((spec.get("strategy") or {}).get("type") or "RollingUpdate") == "Recreate":
            return await self._rollout_recreate(d, rss)
        return await self._rollout_rolling(d, rss)

    async def _claim_replica_sets(self, d: Obj, selector: Any) -> list[Obj]:
        ns = podutil.meta(d)["namespace"]
        owned = []
        for rs in self.replicasets.list(ns):
            matches = selector.matches(engine.labels_of(rs))
            if podutil.controlled_by(rs, d):
                if matches:
                    owned.append(rs)
                elif not podutil.is_deleting(rs):
                    await self._set_owner(rs, d, adopt=False)
            elif matches and not podutil.has_controller(rs) and not podutil.is_deleting(rs):
                owned.append(await self._set_owner(rs, d, adopt=True))
        return owned

    async def _set_owner(self, rs: Obj, d: Obj, *, adopt: bool) -> Obj:
        rs = engine.clone(rs)
        meta = rs["metadata"]
        uid = podutil.meta(d)["uid"]
        refs = [r for r in meta.get("ownerReferences") or [] if r.get("uid") != uid]
        if adopt:
            refs.append(podutil.owner_reference(d))
        meta["ownerReferences"] = refs
        return await self.writer.update(REPLICASETS, rs)

    # -- new ReplicaSet and revisions -------------------------------------------------

    def _split(self, d: Obj, rss: list[Obj]) -> tuple[Obj | None, list[Obj]]:
        new_rs = rollout.find_new_rs(d, rss)
        old = [rs for rs in rss if new_rs is None
               or podutil.meta(rs)["uid"] != podutil.meta(new_rs)["uid"]]
        return new_rs, old

    async def _new_replica_set(self, d: Obj, rss: list[Obj], *, create: bool) -> Obj | None:
        """The new ReplicaSet with its revision synced, created if missing and asked to.
        Also keeps the Deployment's revision annotation and Progressing condition."""
        existing, old = self._split(d, rss)
        new_revision = rollout.max_revision(old) + 1
        now = self.clock()
        if existing is not None:
            rs = engine.clone(existing)
            changed = _set_rs_annotations(d, rs, new_revision)
            min_ready = (d["spec"].get("minReadySeconds") or 0)
            if (rs["spec"].get("minReadySeconds") or 0) != min_ready:
                rs["spec"]["minReadySeconds"] = min_ready
                changed = True
            if changed:
                rs = await self.writer.update(REPLICASETS, rs)
            await self._sync_deployment_revision(d, rollout.revision(rs))
            status = d.setdefault("status", {})
            if (rollout.progress_deadline(d) is not None
                    and rollout.get_condition(status, "Progressing") is None):
                rollout.set_condition(status, rollout._cond(
                    "Progressing", "True", rollout.FOUND_NEW_RS,
                    f'Found new replica set "{podutil.meta(rs)["name"]}"', now))
            return rs
        if not create:
            return None

        collisions = int((d.get("status") or {}).get("collisionCount") or 0)
        template = copy.deepcopy(d["spec"]["template"])
        pod_hash = rollout.template_hash(template, collisions)
        template.setdefault("metadata", {}).setdefault("labels", {})[rollout.HASH_LABEL] = pod_hash
        selector = copy.deepcopy(d["spec"]["selector"])
        selector.setdefault("matchLabels", {})[rollout.HASH_LABEL] = pod_hash
        name = f"{podutil.meta(d)['name']}-{pod_hash}"
        rs: Obj = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": name,
                "namespace": podutil.meta(d)["namespace"],
                "labels": dict(template["metadata"]["labels"]),
                "ownerReferences": [podutil.owner_reference(d)],
            },
            "spec": {
                "replicas": 0,
                "minReadySeconds": d["spec"].get("minReadySeconds") or 0,
                "selector": selector,
                "template": template,
            },
        }
        _set_rs_annotations(d, rs, new_revision)
        replicas = rollout.new_rs_replicas(d, rss, rs)
        rs["spec"]["replicas"] = replicas
        rs["metadata"]["annotations"][rollout.DESIRED_REPLICAS] = str(rollout.replicas(d))
        rs["metadata"]["annotations"][rollout.MAX_REPLICAS] = str(
            rollout.replicas(d) + rollout.max_surge(d))
        try:
            created = await self.writer.create(REPLICASETS, rs)
        except api_errors.AlreadyExists:
            current = await self.manager.client.get(REPLICASETS, rs["metadata"]["namespace"], name)
            if (podutil.controlled_by(current, d)
                    and rollout.templates_equal(current["spec"]["template"], d["spec"]["template"])):
                self.manager.informers[REPLICASETS].observe(current)
                return current
            # A hash collision: count it so the next hash differs, as Kubernetes does;
            # the engine retries with the new count.
            live = await self.manager.client.get(DEPLOYMENTS, *_key(d))
            live.setdefault("status", {})["collisionCount"] = collisions + 1
            await self.writer.update_status(DEPLOYMENTS, live)
            raise
        if replicas > 0:
            await self.recorder.normal(d, "ScalingReplicaSet",
                                       f"Scaled up replica set {name} to {replicas} from 0")
        await self._sync_deployment_revision(d, new_revision)
        status = d.setdefault("status", {})
        if rollout.progress_deadline(d) is not None:
            rollout.set_condition(status, rollout._cond(
                "Progressing", "True", rollout.NEW_RS_CREATED,
                f'Created new replica set "{name}"', now,
                rollout.get_condition(status, "Progressing")))
        return created

    async def _sync_deployment_revision(self, d: Obj, revision: int) -> None:
        annotations = d["metadata"].setdefault("annotations", {})
        if annotations.get(rollout.REVISION) == str(revision):
            return
        annotations[rollout.REVISION] = str(revision)
        status = d.get("status")
        updated = await self.writer.update(DEPLOYMENTS, d)
        d.clear()
        d.update(engine.clone(updated))
        if status is not None:
            d["status"] = status

    # -- strategies -------------------------------------------------------------------

    async def _rollout_rolling(self, d: Obj, rss: list[Obj]) -> Result | None:
        new_rs = await self._new_replica_set(d, rss, create=True)
        assert new_rs is not None
        rss = [new_rs if podutil.meta(rs)["uid"] == podutil.meta(new_rs)["uid"] else rs
               for rs in rss]
        if not any(podutil.meta(rs)["uid"] == podutil.meta(new_rs)["uid"] for rs in rss):
            rss.append(new_rs)
        _, old = self._split(d, rss)

        desired = rollout.replicas(d)
        current = rollout.replicas(new_rs)
        target = desired if current > desired else rollout.new_rs_replicas(d, rss, new_rs)
        if target != current:
            await self._scale(d, new_rs, target)
            return await self._sync_status(d, self._owned(d), new_rs)

        plan = rollout.plan_old_scale_down(d, old, new_rs)
        if plan:
            for rs in old:
                name = podutil.meta(rs)["name"]
                if name in plan:
                    await self._scale(d, rs, plan[name])
            return await self._sync_status(d, self._owned(d), new_rs)

        status, _ = rollout.rollout_status(d, rss, new_rs, self.clock())
        if rollout.is_complete(d, status):
            await self._prune(d, old)
        return await self._sync_status(d, self._owned(d), new_rs)

    async def _rollout_recreate(self, d: Obj, rss: list[Obj]) -> Result | None:
        new_rs = await self._new_replica_set(d, rss, create=False)
        _, old = self._split(d, rss)
        active_old = [rs for rs in old if rollout.replicas(rs) > 0]
        if active_old:
            for rs in active_old:
                await self._scale(d, rs, 0)
            return await self._sync_status(d, self._owned(d), new_rs)
        if self._old_pods_running(new_rs, old):
            return await self._sync_status(d, self._owned(d), new_rs)
        if new_rs is None:
            new_rs = await self._new_replica_set(d, rss, create=True)
            assert new_rs is not None
        if rollout.replicas(new_rs) != rollout.replicas(d):
            await self._scale(d, new_rs, rollout.replicas(d))
            return await self._sync_status(d, self._owned(d), new_rs)
        status, _ = rollout.rollout_status(d, self._owned(d), new_rs, self.clock())
        if rollout.is_complete(d, status):
            await self._prune(d, old)
        return await self._sync_status(d, self._owned(d), new_rs)

    def _check_paused_condition(self, d: Obj) -> None:
        """Progressing is Unknown/DeploymentPaused while paused, DeploymentResumed after
        (Kubernetes' checkPausedConditions); written with the next status."""
        if rollout.progress_deadline(d) is None:
            return
        status = d.setdefault("status", {})
        cond = rollout.get_condition(status, "Progressing")
        paused = bool(d["spec"].get("paused"))
        if paused and (cond is None or cond.get("reason") != rollout.PAUSED):
            rollout.set_condition(status, rollout._cond(
                "Progressing", "Unknown", rollout.PAUSED, "Deployment is paused",
                self.clock(), cond))
        elif not paused and cond is not None and cond.get("reason") == rollout.PAUSED:
            rollout.set_condition(status, rollout._cond(
                "Progressing", "Unknown", rollout.RESUMED, "Deployment is resumed",
                self.clock(), cond))

    async def _sync_scale(self, d: Obj, rss: list[Obj]) -> Result | None:
        """Paused, or spec.replicas changed: resize ReplicaSets without rolling
        (Kubernetes' sync + scale), proportionally during a rolling update."""
        new_rs = await self._new_replica_set(d, rss, create=False)
        _, old = self._split(d, rss)
        plan = rollout.plan_scale(d, new_rs, old)
        for rs in ([new_rs] if new_rs is not None else []) + old:
            name = podutil.meta(rs)["name"]
            if name in plan:
                await self._scale(d, rs, plan[name])
        if d["spec"].get("paused"):
            await self._prune(d, old)
        owned = self._owned(d)
        if new_rs is not None:
            new_rs = next((rs for rs in owned if podutil.meta(rs)["uid"]
                           == podutil.meta(new_rs)["uid"]), new_rs)
        await self._write_status(d, rollout.calculate_status(d, owned, new_rs, self.clock()))
        return None

    def _old_pods_running(self, new_rs: Obj | None, old: list[Obj]) -> bool:
        if rollout.status_sum(old, "replicas") > 0:
            return True
        old_uids = {podutil.meta(rs)["uid"] for rs in old}
        for pod in self.pods.list(None if not old else podutil.meta(old[0])["namespace"]):
            ref = engine.controller_ref(pod)
            if ref is None or ref.get("uid") not in old_uids:
                continue
            if podutil.phase(pod) in ("Succeeded", "Failed"):
                continue
            return True
        return False

    def _owned(self, d: Obj) -> list[Obj]:
        return [rs for rs in self.replicasets.list(podutil.meta(d)["namespace"])
                if podutil.controlled_by(rs, d)]

    async def _scale(self, d: Obj, rs: Obj, replicas: int) -> Obj:
        current = rollout.replicas(rs)
        rs = engine.clone(rs)
        rs["spec"]["replicas"] = replicas
        annotations = rs["metadata"].setdefault("annotations", {})
        annotations[rollout.DESIRED_REPLICAS] = str(rollout.replicas(d))
        annotations[rollout.MAX_REPLICAS] = str(rollout.replicas(d) + rollout.max_surge(d))
        updated = await self.writer.update(REPLICASETS, rs)
        if replicas != current:
            direction = "up" if replicas > current else "down"
            await self.recorder.normal(
                d, "ScalingReplicaSet",
                f"Scaled {direction} replica set {podutil.meta(rs)['name']} to {replicas} "
                f"from {current}")
        return updated

    async def _prune(self, d: Obj, old: list[Obj]) -> None:
        for rs in rollout.replica_sets_to_prune(d, old):
            try:
                await self.writer.delete(REPLICASETS, podutil.meta(rs)["namespace"],
                                         podutil.meta(rs)["name"])
            except api_errors.NotFound:
                pass

    # -- status -----------------------------------------------------------------------

    async def _sync_status(self, d: Obj, rss: list[Obj], new_rs: Obj | None) -> Result | None:
        if new_rs is not None:
            new_rs = next((rs for rs in rss if podutil.meta(rs)["uid"]
                           == podutil.meta(new_rs)["uid"]), new_rs)
        status, wake = rollout.rollout_status(d, rss, new_rs, self.clock())
        await self._write_status(d, status)
        return Result(requeue_after=wake) if wake is not None else None

    async def _write_status(self, d: Obj, status: Obj) -> None:
        cached = self.deployments.get(*_key(d))
        if cached is None:
            return
        if cached.get("status") == status:
            return
        body = engine.clone(cached)
        body["status"] = status
        await self.writer.update_status(DEPLOYMENTS, body)


def _key(obj: Obj) -> tuple[str | None, str]:
    return podutil.meta(obj).get("namespace"), podutil.meta(obj)["name"]


def _set_rs_annotations(d: Obj, rs: Obj, new_revision: int) -> bool:
    """Copy the Deployment's annotations to its ReplicaSet and raise the ReplicaSet's
    revision to new_revision (keeping the old one in revision-history, as Kubernetes
    does when an old template comes back). Returns whether anything changed."""
    annotations = rs["metadata"].setdefault("annotations", {})
    before = dict(annotations)
    for key, value in (podutil.meta(d).get("annotations") or {}).items():
        if key not in rollout.SKIPPED_ANNOTATIONS:
            annotations[key] = value
    old_revision = rollout.revision(rs)
    if old_revision < new_revision:
        if old_revision:
            history = [h for h in (annotations.get(rollout.REVISION_HISTORY) or "").split(",") if h]
            history.append(str(old_revision))
            annotations[rollout.REVISION_HISTORY] = ",".join(history)
        annotations[rollout.REVISION] = str(new_revision)
    return annotations != before


# -- rollout undo / history (called by the CLI) -----------------------------------------


@dataclasses.dataclass(frozen=True)
class RollbackResult:
    deployment: Obj
    revision: int
    """The revision whose template the Deployment now has."""
    skipped: bool = False

    @property
    def message(self) -> str:
        name = podutil.meta(self.deployment).get("name")
        if self.skipped:
            return (f"deployment.apps/{name} skipped rollback (current template already "
                    f"matches revision {self.revision})")
        return f"deployment.apps/{name} rolled back"


@dataclasses.dataclass(frozen=True)
class RolloutState:
    """What `rollout status` prints for a Deployment, as kubectl words it."""

    done: bool
    failed: bool
    message: str


def rollout_state(d: Obj) -> RolloutState:
    """kubectl's DeploymentStatusViewer: pure, from the Deployment alone."""
    name = podutil.meta(d).get("name")
    status = d.get("status") or {}
    if int(podutil.meta(d).get("generation") or 0) > int(status.get("observedGeneration") or 0):
        return RolloutState(False, False, "Waiting for deployment spec update to be observed...")
    cond = rollout.get_condition(status, "Progressing")
    if cond is not None and cond.get("reason") == rollout.TIMED_OUT:
        return RolloutState(False, True, f'deployment "{name}" exceeded its progress deadline')
    desired = rollout.replicas(d)
    updated = int(status.get("updatedReplicas") or 0)
    total = int(status.get("replicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    waiting = f'Waiting for deployment "{name}" rollout to finish: '
    if updated < desired:
        return RolloutState(False, False, waiting + f"{updated} out of {desired} new replicas "
                                                    "have been updated...")
    if total > updated:
        return RolloutState(False, False, waiting + f"{total - updated} old replicas are "
                                                    "pending termination...")
    if available < updated:
        return RolloutState(False, False, waiting + f"{available} of {updated} updated "
                                                    "replicas are available...")
    return RolloutState(True, False, f'deployment "{name}" successfully rolled out')


async def history(client: ApiClient, namespace: str, name: str) -> list[tuple[int, Obj]]:
    """(revision, ReplicaSet) for every ReplicaSet the Deployment owns, oldest first."""
    d = await client.get(DEPLOYMENTS, namespace, name)
    rss, _ = await client.list(REPLICASETS, namespace)
    owned = [rs for rs in rss if podutil.controlled_by(rs, d)]
    return sorted(((rollout.revision(rs), rs) for rs in owned), key=lambda item: item[0])


async def rollback(client: ApiClient, namespace: str, name: str,
                   to_revision: int = 0) -> RollbackResult:
    """`rollout undo`: copy the template of revision to_revision (0: the previous one)
    into the Deployment. The controller then finds that ReplicaSet as the new one and
    bumps its revision. Raises RevisionNotFound; returns skipped=True when the template
    already matches."""
    for _ in range(5):
        d = await client.get(DEPLOYMENTS, namespace, name)
        revisions = await history(client, namespace, name)
        by_revision = {rev: rs for rev, rs in revisions if rev > 0}
        if to_revision == 0:
            current = rollout.revision(d)
            previous = sorted(rev for rev in by_revision if rev != current)
            if not previous:
                raise RevisionNotFound(f'deployment "{name}": no rollout history found')
            target = previous[-1]
        else:
            target = to_revision
        rs = by_revision.get(target)
        if rs is None:
            raise RevisionNotFound(f'deployment "{name}": unable to find specified revision '
                                   f"{target} in history")
        if rollout.templates_equal(rs["spec"]["template"], d["spec"]["template"]):
            return RollbackResult(d, target, skipped=True)
        d["spec"]["template"] = rollout.strip_hash(rs["spec"]["template"])
        annotations = d["metadata"].setdefault("annotations", {})
        for key, value in (podutil.meta(rs).get("annotations") or {}).items():
            if key not in rollout.SKIPPED_ANNOTATIONS:
                annotations[key] = value
        try:
            updated = await client.update(DEPLOYMENTS, d)
        except api_errors.Conflict:
            continue
        return RollbackResult(updated, target)
    raise api_errors.Conflict.stale(DEPLOYMENTS, name)


__all__ = ["DeploymentController", "RollbackResult", "RollbackSkipped", "RolloutState",
           "history", "rollback", "rollout_state"]
