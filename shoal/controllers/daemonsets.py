"""The DaemonSet controller: one daemon pod on every Node that should run it.

Per node (`node_plan`, pure), as Kubernetes' daemon controller decides:

- should it run there: the pod template, with the tolerations every daemon pod gets
  (`not-ready`/`unreachable` NoExecute, `disk-pressure`/`memory-pressure`/`pid-pressure`/
  `unschedulable` NoSchedule), passes `scheduling.filter_node` without the resource
  checks (nodeSelector, required node affinity, NoSchedule/NoExecute taints, cordon);
  a pod already there stays through a NoSchedule taint (only NoExecute evicts it);
- missing pod -> create one pinned to the node by required node affinity on
  `metadata.name` (the scheduler binds it, as in Kubernetes); a failed pod is deleted
  (and recreated); extra pods are deleted, newest first; a pod on a node that should
  not run it is deleted;
- RollingUpdate: a pod not at the update revision is deleted when it is unavailable, or
  while fewer than maxUnavailable nodes are unavailable; with maxSurge, the new pod is
  created first and the old one deleted once the new one is available. OnDelete: pods
  change only when deleted.

Status: desiredNumberScheduled, currentNumberScheduled, numberMisscheduled, numberReady,
updatedNumberScheduled, numberAvailable, numberUnavailable, observedGeneration. Revisions
are ControllerRevisions (`revisions`), the pods labelled `controller-revision-hash`.

Concurrency: the engine serialises reconciles per DaemonSet; writes go through the
manager's write-through, so no pod is created twice.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from typing import Any, Callable, Iterable, Mapping, Sequence

from shoal import timestamps
from shoal.api import errors as api_errors
from shoal.api import selectors
from shoal.api.client import Obj
from shoal.controllers import (engine, pods as podutil, revisions, rollout, scheduling,
                               statefulsetplan)
from shoal.controllers.engine import Change, Controller, Manager, Request, Result
from shoal.controllers.errors import ControllerError, namespace_terminating
from shoal.controllers.events import EventRecorder

log = logging.getLogger(__name__)

DAEMONSETS = "daemonsets.apps"
PODS = "pods"
NODES = "nodes"
DAEMON_TOLERATIONS = (
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
)


# -- pure --------------------------------------------------------------------------------


def with_daemon_tolerations(spec: Mapping[str, Any]) -> Obj:
    spec = copy.deepcopy(dict(spec))
    tolerations = list(spec.get("tolerations") or [])
    for tol in DAEMON_TOLERATIONS:
        if not any(t.get("key") == tol["key"] and t.get("effect") == tol["effect"]
                   for t in tolerations):
            tolerations.append(dict(tol))
    spec["tolerations"] = tolerations
    return spec


def pin_to_node(spec: Obj, node_name: str) -> Obj:
    """Replace the required node affinity's terms' name fields with this node
    (ReplaceDaemonSetPodNodeNameNodeAffinity)."""
    affinity = spec.setdefault("affinity", {})
    node_affinity = affinity.setdefault("nodeAffinity", {})
    required = node_affinity.setdefault("requiredDuringSchedulingIgnoredDuringExecution", {})
    field = {"key": "metadata.name", "operator": "In", "values": [node_name]}
    terms = required.get("nodeSelectorTerms") or [{}]
    for term in terms:
        term["matchFields"] = [field]
    required["nodeSelectorTerms"] = terms
    return spec


def new_pod(ds: Mapping[str, Any], node_name: str, template: Mapping[str, Any],
            revision: str) -> Obj:
    tmeta = template.get("metadata") or {}
    name = podutil.meta(ds)["name"]
    meta: Obj = {"generateName": f"{name}-", "namespace": podutil.meta(ds)["namespace"],
                 "labels": {**(tmeta.get("labels") or {}), revisions.HASH_LABEL: revision},
                 "ownerReferences": [podutil.owner_reference(ds)]}
    if tmeta.get("annotations"):
        meta["annotations"] = dict(tmeta["annotations"])
    spec = pin_to_node(with_daemon_tolerations(template.get("spec") or {}), node_name)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def target_node(pod: Mapping[str, Any]) -> str | None:
    """The node a daemon pod is for: its nodeName, or its affinity's metadata.name."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return spec["nodeName"]
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    for term in required.get("nodeSelectorTerms") or []:
        for field in term.get("matchFields") or []:
            if field.get("key") == "metadata.name" and len(field.get("values") or []) == 1:
                return field["values"][0]
    return None


def placement(ds: Mapping[str, Any], node: Mapping[str, Any]) -> tuple[bool, bool]:
    """(should run, should continue running) on this node (NodeShouldRunDaemonPod): a
    NoSchedule taint stops new daemon pods but keeps a running one; a NoExecute taint,
    or a node the selector/affinity no longer matches, stops both."""
    template = (ds.get("spec") or {}).get("template") or {}
    probe = {"metadata": {"name": ""},
             "spec": with_daemon_tolerations(template.get("spec") or {})}
    if not scheduling.matches_node_affinity(probe, node):
        return False, False
    if scheduling.filter_node(probe, node, resources=False):
        return False, scheduling.untolerated_taint(probe, node, ("NoExecute",)) is None
    return True, True


def should_run(ds: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    return placement(ds, node)[0]


@dataclasses.dataclass
class NodeSteps:
    create: bool = False
    delete: list[str] = dataclasses.field(default_factory=list)


def _created(pod: Mapping[str, Any]) -> float:
    return timestamps.epoch_seconds(podutil.meta(pod).get("creationTimestamp")) or 0.0


def update_budget(ds: Mapping[str, Any], desired: int) -> tuple[int, int]:
    """(maxUnavailable, maxSurge) resolved against the desired node count."""
    rolling = ((ds.get("spec") or {}).get("updateStrategy") or {}).get("rollingUpdate") or {}
    surge = rollout.scaled_value(rolling.get("maxSurge", 0), desired, True,
                                 field="spec.updateStrategy.rollingUpdate.maxSurge")
    unavailable = rollout.scaled_value(rolling.get("maxUnavailable", 1), desired, True,
                                       field="spec.updateStrategy.rollingUpdate.maxUnavailable")
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return unavailable, surge


def node_plan(ds: Mapping[str, Any], run: bool, pods: Sequence[Mapping[str, Any]], update: str,
              now: float, *, may_take_down: bool, surge: bool, keep: bool | None = None
              ) -> NodeSteps:
    """What to do on one node with these daemon pods of `ds` on it. run/keep: the node's
    `placement` (keep defaults to run)."""
    steps = NodeSteps()
    live = [p for p in pods if not podutil.is_deleting(p)]
    keep = run if keep is None else keep
    if not run and not keep:
        steps.delete = [podutil.meta(p)["name"] for p in live]
        return steps
    failed = [p for p in live if podutil.phase(p) in ("Failed", "Succeeded")]
    live = [p for p in live if p not in failed]
    steps.delete = [podutil.meta(p)["name"] for p in failed]
    if not run:
        return steps  # a NoSchedule taint: the running pod stays, nothing new comes
    if not live:
        # A new pod once the old one is gone (its host ports, its name in logs); with
        # surge the new one may start beside it.
        steps.create = not failed and (surge or not any(podutil.is_deleting(p) for p in pods))
        return steps
    min_ready = int((ds.get("spec") or {}).get("minReadySeconds") or 0)
    new = [p for p in live if revisions.pod_revision(p) == update]
    old = [p for p in live if revisions.pod_revision(p) != update]
    rolling = ((ds.get("spec") or {}).get("updateStrategy") or {}).get("type",
                                                                         "RollingUpdate")
    if rolling == "RollingUpdate" and old:
        if surge:
            if not new:
                steps.create = True
            elif any(podutil.is_available(p, min_ready, now) for p in new):
                steps.delete += [podutil.meta(p)["name"] for p in old]
        else:
            for p in old:
                if not podutil.is_available(p, min_ready, now) or may_take_down:
                    steps.delete.append(podutil.meta(p)["name"])
                    may_take_down = False
        return steps
    # More than one daemon pod here: keep the oldest.
    keep = sorted(live, key=_created)
    steps.delete += [podutil.meta(p)["name"] for p in keep[1:] if not surge or not old]
    return steps


def status(ds: Mapping[str, Any], runs: Mapping[str, bool],
           pods_by_node: Mapping[str, Sequence[Mapping[str, Any]]], update: str,
           now: float) -> Obj:
    min_ready = int((ds.get("spec") or {}).get("minReadySeconds") or 0)
    out = {"desiredNumberScheduled": 0, "currentNumberScheduled": 0, "numberMisscheduled": 0,
           "numberReady": 0, "updatedNumberScheduled": 0, "numberAvailable": 0}
    for node, run in runs.items():
        pods = [p for p in pods_by_node.get(node, ()) if not podutil.is_deleting(p)]
        if not run:
            out["numberMisscheduled"] += bool(pods)
            continue
        out["desiredNumberScheduled"] += 1
        if not pods:
            continue
        out["currentNumberScheduled"] += 1
        out["numberReady"] += any(podutil.is_ready(p) for p in pods)
        out["numberAvailable"] += any(podutil.is_available(p, min_ready, now) for p in pods)
        out["updatedNumberScheduled"] += any(revisions.pod_revision(p) == update for p in pods)
    out["numberUnavailable"] = out["desiredNumberScheduled"] - out["numberAvailable"]
    out["observedGeneration"] = int(podutil.meta(ds).get("generation") or 0)
    collisions = int((ds.get("status") or {}).get("collisionCount") or 0)
    if collisions:
        out["collisionCount"] = collisions
    return out


# -- the controller ------------------------------------------------------------------------


class DaemonSetController:
    """Reconciles DaemonSets; build its engine `Controller` with `controller()`."""

    def __init__(self, manager: Manager, recorder: EventRecorder, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.writer = manager.writer
        self.recorder = recorder
        self.clock = clock
        self.sets = manager.lister(DAEMONSETS)
        self.pods = manager.lister(PODS)
        self.nodes = manager.lister(NODES)
        self.revisions = manager.lister(revisions.REVISIONS)

    def controller(self) -> Controller:
        return Controller("daemonset", self.reconcile, [
            (DAEMONSETS, engine.map_own),
            (PODS, engine.map_owner("DaemonSet")),
            (NODES, self._map_node),
            (revisions.REVISIONS, engine.map_owner("DaemonSet")),
        ])

    def _map_node(self, change: Change) -> Iterable[Request]:
        old, new = change.old, change.object
        if old is not None and change.type != "DELETED" and old.get("spec") == new.get("spec") \
                and podutil.meta(old).get("labels") == podutil.meta(new).get("labels"):
            return ()  # a heartbeat: nothing a daemon set decides on
        return [engine.object_key(ds) for ds in self.sets.list()]

    async def reconcile(self, request: Request) -> Result | None:
        cached = self.sets.get(request.namespace, request.name)
        if cached is None or podutil.is_deleting(cached):
            return None
        ds = engine.clone(cached)
        selector = selectors.selector_from_spec((ds.get("spec") or {}).get("selector"))
        owned = [p for p in self.pods.list(request.namespace)
                 if podutil.controlled_by(p, ds) and selector.matches(engine.labels_of(p))]
        history = await revisions.sync_revisions(self.writer, self.revisions, ds, owned)
        update = podutil.meta(history.update)["name"]
        now = self.clock()
        nodes = {podutil.meta(n)["name"]: n for n in self.nodes.list()}
        placements = {name: placement(ds, node) for name, node in nodes.items()}
        runs = {name: run for name, (run, _) in placements.items()}
        by_node: dict[str, list[Obj]] = {name: [] for name in nodes}
        orphans = []
        for pod in owned:
            target = target_node(pod)
            (by_node[target] if target in by_node else orphans).append(pod)
        unavailable, surge = update_budget(ds, sum(runs.values()))
        min_ready = int((ds.get("spec") or {}).get("minReadySeconds") or 0)
        down = sum(1 for name, run in runs.items() if run and not any(
            podutil.is_available(p, min_ready, now) for p in by_node[name]
            if not podutil.is_deleting(p)))
        failure = None
        creates: list[str] = []
        deletes = [podutil.meta(p)["name"] for p in orphans if not podutil.is_deleting(p)]
        for name in sorted(nodes):
            run, keep = placements[name]
            steps = node_plan(ds, run, by_node[name], update, now,
                              may_take_down=down < unavailable, surge=surge > 0, keep=keep)
            if steps.create:
                creates.append(name)
            if any(n in {podutil.meta(p)["name"] for p in by_node[name]
                         if podutil.is_available(p, min_ready, now)} for n in steps.delete):
                down += 1
            deletes += steps.delete
        template = revisions.template_of(history.update)
        try:
            for node_name in creates:
                await self._create(ds, node_name, template, update)
            for pod_name in deletes:
                await self._delete(ds, pod_name)
        except api_errors.StatusError as exc:
            if namespace_terminating(exc):
                return None
            failure = exc
        owned = [p for p in self.pods.list(request.namespace) if podutil.controlled_by(p, ds)]
        pods_by_node: dict[str, list[Obj]] = {}
        for pod in owned:
            pods_by_node.setdefault(target_node(pod) or "", []).append(pod)
        await self._write_status(ds, status(ds, runs, pods_by_node, update, now))
        if failure is not None:
            raise _StepFailed(str(failure))
        wait = statefulsetplan.availability_wait(owned, min_ready, now)
        return Result(requeue_after=wait + 0.05) if wait is not None else None

    async def _create(self, ds: Obj, node_name: str, template: Obj, revision: str) -> None:
        pod = new_pod(ds, node_name, template, revision)
        try:
            created = await self.writer.create(PODS, pod)
        except api_errors.StatusError as exc:
            await self.recorder.warning(ds, "FailedCreate", f"Error creating: {exc}")
            raise
        await self.recorder.normal(ds, "SuccessfulCreate",
                                   f"Created pod: {created['metadata']['name']}")

    async def _delete(self, ds: Obj, name: str) -> None:
        try:
            await self.writer.delete(PODS, podutil.meta(ds)["namespace"], name)
        except api_errors.NotFound:
            return
        except api_errors.StatusError as exc:
            await self.recorder.warning(ds, "FailedDelete", f"Error deleting: {exc}")
            raise
        await self.recorder.normal(ds, "SuccessfulDelete", f"Deleted pod: {name}")

    async def _write_status(self, ds: Obj, new_status: Obj) -> None:
        old = self.sets.get(podutil.meta(ds).get("namespace"), podutil.meta(ds)["name"]) or ds
        if (old.get("status") or {}) == new_status:
            return
        body = engine.clone(old)
        body["status"] = new_status
        try:
            await self.writer.update_status(DAEMONSETS, body)
        except api_errors.NotFound:
            pass


class _StepFailed(ControllerError):
    """A daemon pod could not be created or deleted; the engine retries with backoff."""
