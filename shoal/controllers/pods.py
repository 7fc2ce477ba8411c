"""Pure facts about Pods and objects: readiness, availability, ranking, owner references.

Everything here is a pure function of plain dicts (and a `now` timestamp in seconds
where time matters), so the controllers' decisions are unit-tested without an API.

The ranking follows Kubernetes' `controller.ActivePodsWithRanks.Less` (the order in
which a ReplicaSet deletes pods when it scales down; the first pods are deleted first):

1. unscheduled before scheduled (no spec.nodeName first);
2. Pending before Unknown before Running;
3. not ready before ready;
4. pods sharing a node with more pods of the same owner first (rank, higher first);
5. ready for a shorter time before ready for longer;
6. more container restarts before fewer;
7. newer before older (an empty creation time first).
"""

from __future__ import annotations

import functools
from typing import Any, Iterable, Mapping, Sequence

from shoal import timestamps

Obj = dict[str, Any]

ACTIVE_PHASES = ("Pending", "Unknown", "Running")
_PHASE_ORDINAL = {"Pending": 0, "Unknown": 1, "Running": 2}




# -- object metadata --------------------------------------------------------------------


def meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def is_deleting(obj: Mapping[str, Any]) -> bool:
    return bool(meta(obj).get("deletionTimestamp"))


def owner_reference(owner: Mapping[str, Any], *, controller: bool = True,
                    block_owner_deletion: bool = True) -> Obj:
    """An ownerReference to `owner` (as a controller, blocking foreground deletion)."""
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta(owner)["name"],
        "uid": meta(owner)["uid"],
        "controller": controller,
        "blockOwnerDeletion": block_owner_deletion,
    }


def controlled_by(obj: Mapping[str, Any], owner: Mapping[str, Any]) -> bool:
    uid = meta(owner).get("uid")
    return any(ref.get("controller") and ref.get("uid") == uid
               for ref in meta(obj).get("ownerReferences") or [])


def has_controller(obj: Mapping[str, Any]) -> bool:
    return any(ref.get("controller") for ref in meta(obj).get("ownerReferences") or [])


# -- pod state --------------------------------------------------------------------------


def phase(pod: Mapping[str, Any]) -> str:
    return (pod.get("status") or {}).get("phase") or "Pending"


def is_active(pod: Mapping[str, Any]) -> bool:
    """Counts toward a ReplicaSet: not terminal and not being deleted."""
    return phase(pod) not in ("Succeeded", "Failed") and not is_deleting(pod)


def condition(obj: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return cond
    return None


def is_ready(pod: Mapping[str, Any]) -> bool:
    cond = condition(pod, "Ready")
    return cond is not None and cond.get("status") == "True"


def ready_since(pod: Mapping[str, Any]) -> float | None:
    """When the pod became ready (the Ready condition's lastTransitionTime), or None."""
    cond = condition(pod, "Ready")
    if cond is None or cond.get("status") != "True":
        return None
    return timestamps.epoch_seconds(cond.get("lastTransitionTime"))


def is_available(pod: Mapping[str, Any], min_ready_seconds: int, now: float) -> bool:
    """Ready for at least minReadySeconds (Kubernetes' podutil.IsPodAvailable)."""
    if not is_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    since = ready_since(pod)
    return since is not None and since + min_ready_seconds <= now


def restart_count(pod: Mapping[str, Any]) -> int:
    """The highest restartCount among the pod's containers."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return max((int(s.get("restartCount") or 0) for s in statuses), default=0)


# -- ranking ----------------------------------------------------------------------------


def _node(pod: Mapping[str, Any]) -> str:
    return (pod.get("spec") or {}).get("nodeName") or ""


def _after_or_zero(t1: float | None, t2: float | None) -> bool:
    """Kubernetes' afterOrZero: an empty time counts as the newest."""
    if t1 is None or t2 is None:
        return t1 is None
    return t1 > t2


def _less(a: tuple[Mapping[str, Any], int], b: tuple[Mapping[str, Any], int]) -> bool:
    s1, rank1 = a
    s2, rank2 = b
    n1, n2 = _node(s1), _node(s2)
    if n1 != n2 and (not n1 or not n2):
        return not n1
    o1, o2 = _PHASE_ORDINAL.get(phase(s1), -1), _PHASE_ORDINAL.get(phase(s2), -1)
    if o1 != o2:
        return o1 < o2
    r1, r2 = is_ready(s1), is_ready(s2)
    if r1 != r2:
        return not r1
    if rank1 != rank2:
        return rank1 > rank2
    if r1 and r2:
        t1, t2 = ready_since(s1), ready_since(s2)
        if t1 != t2:
            return _after_or_zero(t1, t2)
    c1, c2 = restart_count(s1), restart_count(s2)
    if c1 != c2:
        return c1 > c2
    k1, k2 = timestamps.epoch_seconds(meta(s1).get("creationTimestamp")), timestamps.epoch_seconds(meta(s2).get("creationTimestamp"))
    if k1 != k2:
        return _after_or_zero(k1, k2)
    return False


def rank_for_deletion(pods: Sequence[Mapping[str, Any]],
                      related: Iterable[Mapping[str, Any]] = ()) -> list[Mapping[str, Any]]:
    """Pods in the order a ReplicaSet deletes them (first = deleted first).

    `related` are the active pods of the same owner (defaults to `pods`): a pod's rank is
    how many of them share its node, so pods on crowded nodes go first."""
    per_node: dict[str, int] = {}
    for pod in list(related) or pods:
        per_node[_node(pod)] = per_node.get(_node(pod), 0) + 1
    ranked = [(pod, per_node.get(_node(pod), 0) if _node(pod) else 0) for pod in pods]

    def compare(a: tuple[Mapping[str, Any], int], b: tuple[Mapping[str, Any], int]) -> int:
        if _less(a, b):
            return -1
        if _less(b, a):
            return 1
        return 0

    return [pod for pod, _ in sorted(ranked, key=functools.cmp_to_key(compare))]


def pods_to_delete(pods: Sequence[Mapping[str, Any]], count: int) -> list[Mapping[str, Any]]:
    """The `count` pods a ReplicaSet deletes first."""
    if count <= 0:
        return []
    return rank_for_deletion(pods)[:count]
