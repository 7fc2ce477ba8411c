"""Pure StatefulSet decisions, after Kubernetes' `defaultStatefulSetControl`.

`plan(sts, pods, current, update)` returns the next steps for one reconcile:

1. replicas, ordinal by ordinal (`<set>-<ordinal>`, from spec.ordinals.start): a missing
   pod is created (at the current revision when its ordinal is below the partition, at
   the update revision otherwise); a failed or succeeded pod is deleted to be recreated.
   With OrderedReady (`monotonic`) the plan stops at the first step taken and waits at
   the first pod that is not Running and Ready (for minReadySeconds) or is terminating:
   web-1 is created only once web-0 is ready. Parallel creates and deletes at once.
2. condemned pods (ordinals past the replicas), highest ordinal first; OrderedReady
   deletes one at a time and only while every replica is healthy.
3. RollingUpdate: from the highest ordinal down to the partition, the first pod not at
   the update revision is deleted (it comes back at the update revision), one at a
   time, waiting for each to be healthy again. OnDelete: pods change only when deleted.

`status(...)` computes replicas, readyReplicas, availableReplicas, currentReplicas,
updatedReplicas, currentRevision and updateRevision; a finished rolling update makes the
update revision current. `new_pod` and `claims_for` build the pod (stable name,
hostname = name, subdomain = serviceName, identity labels, a PVC volume per claim
template) and its claims `<template>-<set>-<ordinal>`. With the default retention
policy (Retain) claims are never deleted: a scaled-down pod's data waits for the pod to
come back. `whenDeleted: Delete` makes the set an owner of its claims (the garbage
collector removes them with the set); `whenScaled: Delete` makes a condemned pod the
owner of its claims (`claim_owner_refs`), so they go once that pod is gone.
`availability_wait` says when a ready pod next becomes available (minReadySeconds).
"""

from __future__ import annotations

import copy
import dataclasses
import re
from typing import Any, Mapping, Sequence

from shoal.controllers import pods as podutil
from shoal.controllers.revisions import HASH_LABEL, pod_revision

Obj = dict[str, Any]

POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"


@dataclasses.dataclass(frozen=True)
class Step:
    action: str
    """"create" (ordinal at revision) or "delete" (pod)."""
    ordinal: int
    revision: str = ""
    pod: str = ""


def _spec(sts: Mapping[str, Any]) -> Mapping[str, Any]:
    return sts.get("spec") or {}


def replicas(sts: Mapping[str, Any]) -> int:
    value = _spec(sts).get("replicas")
    return 1 if value is None else int(value)


def start_ordinal(sts: Mapping[str, Any]) -> int:
    return int((_spec(sts).get("ordinals") or {}).get("start") or 0)


def pod_name(sts: Mapping[str, Any], ordinal: int) -> str:
    return f"{podutil.meta(sts)['name']}-{ordinal}"


def ordinal_of(sts: Mapping[str, Any], pod: Mapping[str, Any]) -> int | None:
    """The ordinal in a pod's name `<set>-<n>`, or None when it is not one of this set's."""
    match = re.fullmatch(re.escape(podutil.meta(sts)["name"]) + r"-(0|[1-9][0-9]*)",
                         podutil.meta(pod).get("name", ""))
    return int(match.group(1)) if match else None


def monotonic(sts: Mapping[str, Any]) -> bool:
    return _spec(sts).get("podManagementPolicy") != "Parallel"


def _strategy(sts: Mapping[str, Any]) -> Mapping[str, Any]:
    return _spec(sts).get("updateStrategy") or {"type": "RollingUpdate"}


def partition(sts: Mapping[str, Any]) -> int:
    return int((_strategy(sts).get("rollingUpdate") or {}).get("partition") or 0)


def is_healthy(pod: Mapping[str, Any], min_ready: int, now: float) -> bool:
    return (podutil.phase(pod) == "Running" and not podutil.is_deleting(pod)
            and podutil.is_available(pod, min_ready, now))


def _finished(pod: Mapping[str, Any]) -> bool:
    return podutil.phase(pod) in ("Failed", "Succeeded")


def revision_for_new(sts: Mapping[str, Any], ordinal: int, current: str, update: str) -> str:
    """newVersionedStatefulSetPod: below the partition a pod keeps the current revision."""
    strategy = _strategy(sts)
    start = start_ordinal(sts)
    if strategy.get("type", "RollingUpdate") == "RollingUpdate":
        rolling = strategy.get("rollingUpdate")
        if rolling is None:
            current_count = int((sts.get("status") or {}).get("currentReplicas") or 0)
            if ordinal < start + current_count:
                return current
        elif ordinal < start + int(rolling.get("partition") or 0):
            return current
    return update


def split(sts: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]
          ) -> tuple[dict[int, Mapping[str, Any]], list[Mapping[str, Any]]]:
    """(replicas by ordinal, condemned pods highest ordinal first)."""
    start, count = start_ordinal(sts), replicas(sts)
    by_ordinal: dict[int, Mapping[str, Any]] = {}
    condemned = []
    for pod in pods:
        ordinal = ordinal_of(sts, pod)
        if ordinal is None:
            continue
        if start <= ordinal < start + count:
            by_ordinal[ordinal] = pod
        else:
            condemned.append(pod)
    condemned.sort(key=lambda p: ordinal_of(sts, p) or 0, reverse=True)
    return by_ordinal, condemned


def plan(sts: Mapping[str, Any], pods: Sequence[Mapping[str, Any]], current: str, update: str,
         now: float) -> list[Step]:
    """The steps of this reconcile (see the module docstring)."""
    ordered = monotonic(sts)
    min_ready = int(_spec(sts).get("minReadySeconds") or 0)
    start, count = start_ordinal(sts), replicas(sts)
    by_ordinal, condemned = split(sts, pods)
    steps: list[Step] = []
    for ordinal in range(start, start + count):
        pod = by_ordinal.get(ordinal)
        if pod is None:
            steps.append(Step("create", ordinal, revision_for_new(sts, ordinal, current, update)))
            if ordered:
                return steps
            continue
        if _finished(pod) and not podutil.is_deleting(pod):
            steps.append(Step("delete", ordinal, pod=podutil.meta(pod)["name"]))
            if ordered:
                return steps
            continue
        if ordered and not is_healthy(pod, min_ready, now):
            return steps
    for pod in condemned:
        ordinal = ordinal_of(sts, pod) or 0
        if podutil.is_deleting(pod):
            if ordered:
                return steps
            continue
        steps.append(Step("delete", ordinal, pod=podutil.meta(pod)["name"]))
        if ordered:
            return steps
    if steps or _strategy(sts).get("type", "RollingUpdate") != "RollingUpdate":
        return steps
    for ordinal in range(start + count - 1, start + max(0, partition(sts)) - 1, -1):
        pod = by_ordinal.get(ordinal)
        if pod is None:
            return steps
        if pod_revision(pod) != update and not podutil.is_deleting(pod):
            return [Step("delete", ordinal, pod=podutil.meta(pod)["name"])]
        if not is_healthy(pod, min_ready, now):
            return steps
    return steps


# -- objects ---------------------------------------------------------------------------


def claim_name(template_name: str, sts: Mapping[str, Any], ordinal: int) -> str:
    return f"{template_name}-{pod_name(sts, ordinal)}"


def retention(sts: Mapping[str, Any], when: str) -> str:
    """"Retain" or "Delete" for when = "whenDeleted" | "whenScaled"."""
    return (_spec(sts).get("persistentVolumeClaimRetentionPolicy") or {}).get(when) or "Retain"


def claim_owner_refs(sts: Mapping[str, Any], claim: Mapping[str, Any],
                     condemned_pod: Mapping[str, Any] | None = None) -> list[Obj] | None:
    """The claim's ownerReferences under the retention policy, or None when they are
    already right: the set's (non-controller) reference when whenDeleted is Delete, the
    condemned pod's when whenScaled is Delete."""
    refs = [dict(r) for r in podutil.meta(claim).get("ownerReferences") or []]
    wanted = list(refs)
    set_uid = podutil.meta(sts).get("uid")
    if retention(sts, "whenDeleted") == "Delete" and set_uid:
        if not any(r.get("uid") == set_uid for r in wanted):
            wanted.append(podutil.owner_reference(sts, controller=False,
                                                  block_owner_deletion=False))
    if condemned_pod is not None and retention(sts, "whenScaled") == "Delete":
        uid = podutil.meta(condemned_pod).get("uid")
        if uid and not any(r.get("uid") == uid for r in wanted):
            wanted.append(podutil.owner_reference(condemned_pod, controller=False,
                                                  block_owner_deletion=False))
    return wanted if wanted != refs else None


def availability_wait(pods: Sequence[Mapping[str, Any]], min_ready: int,
                      now: float) -> float | None:
    """Seconds until the next ready pod becomes available, or None."""
    if min_ready <= 0:
        return None
    waits = [since + min_ready - now for p in pods
             if (since := podutil.ready_since(p)) is not None and since + min_ready > now]
    return min(waits) if waits else None


def claims_for(sts: Mapping[str, Any], ordinal: int) -> list[Obj]:
    """The PVCs of one ordinal: each claim template's spec, labelled with the selector's
    matchLabels and the template's own labels (owned by the set only when its retention
    policy says whenDeleted: Delete; they outlive the pod)."""
    selector = ((_spec(sts).get("selector") or {}).get("matchLabels")) or {}
    claims = []
    for template in _spec(sts).get("volumeClaimTemplates") or []:
        tmeta = template.get("metadata") or {}
        meta: Obj = {"name": claim_name(tmeta.get("name", ""), sts, ordinal),
                     "namespace": podutil.meta(sts)["namespace"],
                     "labels": {**(tmeta.get("labels") or {}), **selector}}
        if tmeta.get("annotations"):
            meta["annotations"] = dict(tmeta["annotations"])
        claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta,
                 "spec": copy.deepcopy(template.get("spec") or {})}
        refs = claim_owner_refs(sts, claim)
        if refs:
            meta["ownerReferences"] = refs
        claims.append(claim)
    return claims


def new_pod(sts: Mapping[str, Any], ordinal: int, template: Mapping[str, Any],
            revision: str) -> Obj:
    """The pod of `ordinal` from a revision's template (newStatefulSetPod + identity +
    storage)."""
    name = pod_name(sts, ordinal)
    tmeta = template.get("metadata") or {}
    spec = copy.deepcopy(template.get("spec") or {})
    labels = {**(tmeta.get("labels") or {}), HASH_LABEL: revision, POD_NAME_LABEL: name,
              POD_INDEX_LABEL: str(ordinal)}
    meta: Obj = {"name": name, "namespace": podutil.meta(sts)["namespace"], "labels": labels,
                 "ownerReferences": [podutil.owner_reference(sts)]}
    if tmeta.get("annotations"):
        meta["annotations"] = dict(tmeta["annotations"])
    spec["hostname"] = name
    if _spec(sts).get("serviceName"):
        spec["subdomain"] = _spec(sts)["serviceName"]
    claim_volumes = {}
    for claim in _spec(sts).get("volumeClaimTemplates") or []:
        tname = (claim.get("metadata") or {}).get("name", "")
        claim_volumes[tname] = {"name": tname, "persistentVolumeClaim": {
            "claimName": claim_name(tname, sts, ordinal)}}
    if claim_volumes:
        volumes = [v for v in spec.get("volumes") or [] if v.get("name") not in claim_volumes]
        spec["volumes"] = volumes + list(claim_volumes.values())
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def status(sts: Mapping[str, Any], pods: Sequence[Mapping[str, Any]], current: str,
           update: str, now: float) -> Obj:
    min_ready = int(_spec(sts).get("minReadySeconds") or 0)
    counts = {"replicas": 0, "readyReplicas": 0, "availableReplicas": 0,
              "currentReplicas": 0, "updatedReplicas": 0}
    for pod in pods:
        if ordinal_of(sts, pod) is None:
            continue
        counts["replicas"] += 1
        if podutil.is_deleting(pod):
            continue
        if podutil.phase(pod) == "Running" and podutil.is_ready(pod):
            counts["readyReplicas"] += 1
            if podutil.is_available(pod, min_ready, now):
                counts["availableReplicas"] += 1
        revision = pod_revision(pod)
        counts["currentReplicas"] += revision == current
        counts["updatedReplicas"] += revision == update
    out: Obj = {"observedGeneration": int(podutil.meta(sts).get("generation") or 0), **counts,
                "currentRevision": current, "updateRevision": update,
                "collisionCount": int((sts.get("status") or {}).get("collisionCount") or 0)}
    if (counts["updatedReplicas"] == counts["replicas"] == replicas(sts)
            and counts["readyReplicas"] == counts["replicas"]):
        out["currentRevision"] = update
        out["currentReplicas"] = counts["updatedReplicas"]
    return out
