"""Pure Deployment rollout math, ported from Kubernetes' deployment controller.

Every function takes plain dicts (a Deployment, its ReplicaSets) and returns numbers,
plans or a new status; no I/O, no clock other than the `now` argument. `deployment.py`
does the reading and writing.

Rounding follows Kubernetes: a percentage maxSurge rounds up, a percentage
maxUnavailable rounds down, and if both resolve to 0, maxUnavailable becomes 1
(`ResolveFenceposts`). The rolling update never scales old ReplicaSets below
`replicas - maxUnavailable` available pods, and never runs more than
`replicas + maxSurge` pods (counting spec.replicas of every ReplicaSet).
"""

from __future__ import annotations

import copy
import json
import math
import re
from typing import Any, Mapping, Sequence

from shoal import timestamps
from shoal.controllers import pods as podutil
from shoal.controllers.errors import InvalidSpec

Obj = dict[str, Any]

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"

# Annotations of a Deployment that are not copied to its ReplicaSets.
SKIPPED_ANNOTATIONS = frozenset({LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS,
                                 MAX_REPLICAS, "deprecated.deployment.rollback.to"})

# Condition reasons (Kubernetes' deploymentutil constants).
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
RS_UPDATED = "ReplicaSetUpdated"
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"
MIN_AVAILABLE = "MinimumReplicasAvailable"
MIN_UNAVAILABLE = "MinimumReplicasUnavailable"

_PERCENT = re.compile(r"^(\d+)%$")


# -- fenceposts -------------------------------------------------------------------------


def scaled_value(value: int | str | None, total: int, round_up: bool, *,
                 field: str = "value") -> int:
    """An int-or-percent against `total` (Kubernetes' GetScaledValueFromIntOrPercent)."""
    if value is None:
        return 0
    if isinstance(value, bool):
        raise InvalidSpec(f"{field}: Invalid value: {value!r}: must be an integer or percentage")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        match = _PERCENT.match(value.strip())
        if match:
            scaled = int(match.group(1)) * total / 100
            return math.ceil(scaled) if round_up else math.floor(scaled)
        if value.strip().isdigit():
            return int(value)
    raise InvalidSpec(f"{field}: Invalid value: {value!r}: must be an integer or percentage "
                      "(e.g. '25%')")


def replicas(obj: Mapping[str, Any]) -> int:
    value = (obj.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


def _rolling(deployment: Mapping[str, Any]) -> Mapping[str, Any] | None:
    strategy = (deployment.get("spec") or {}).get("strategy") or {}
    if (strategy.get("type") or "RollingUpdate") != "RollingUpdate":
        return None
    return strategy.get("rollingUpdate") or {"maxSurge": "25%", "maxUnavailable": "25%"}


def resolve_fenceposts(max_surge: int | str | None, max_unavailable: int | str | None,
                       desired: int) -> tuple[int, int]:
    """(surge, unavailable) in pods: surge rounds up, unavailable rounds down; both
    zero becomes (0, 1) so a rollout can always make progress."""
    surge = scaled_value(max_surge, desired, True, field="spec.strategy.rollingUpdate.maxSurge")
    unavailable = scaled_value(max_unavailable, desired, False,
                               field="spec.strategy.rollingUpdate.maxUnavailable")
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def max_surge(deployment: Mapping[str, Any]) -> int:
    rolling = _rolling(deployment)
    if rolling is None:
        return 0
    surge, _ = resolve_fenceposts(rolling.get("maxSurge", "25%"),
                                  rolling.get("maxUnavailable", "25%"), replicas(deployment))
    return surge


def max_unavailable(deployment: Mapping[str, Any]) -> int:
    """Pods that may be unavailable during an update (0 for Recreate or 0 replicas)."""
    rolling = _rolling(deployment)
    desired = replicas(deployment)
    if rolling is None or desired == 0:
        return 0
    _, unavailable = resolve_fenceposts(rolling.get("maxSurge", "25%"),
                                        rolling.get("maxUnavailable", "25%"), desired)
    return min(unavailable, desired)


# -- counting ReplicaSets ---------------------------------------------------------------


def _status(rs: Mapping[str, Any], field: str) -> int:
    return int((rs.get("status") or {}).get(field) or 0)


def spec_replicas_sum(rss: Sequence[Mapping[str, Any] | None]) -> int:
    return sum(replicas(rs) for rs in rss if rs is not None)


def status_sum(rss: Sequence[Mapping[str, Any] | None], field: str) -> int:
    return sum(_status(rs, field) for rs in rss if rs is not None)


def by_creation(rss: Sequence[Obj]) -> list[Obj]:
    """Oldest first; ties broken by name (Kubernetes' ReplicaSetsByCreationTimestamp)."""
    return sorted(rss, key=lambda rs: (timestamps.epoch_seconds(podutil.meta(rs).get("creationTimestamp")) or 0,
                                       podutil.meta(rs).get("name") or ""))


def revision(obj: Mapping[str, Any]) -> int:
    try:
        return int((podutil.meta(obj).get("annotations") or {}).get(REVISION) or 0)
    except ValueError:
        return 0


def max_revision(rss: Sequence[Mapping[str, Any]]) -> int:
    return max((revision(rs) for rs in rss), default=0)


# -- templates --------------------------------------------------------------------------


def _fnv32a(data: bytes) -> int:
    value = 0x811C9DC5
    for byte in data:
        value ^= byte
        value = (value * 0x01000193) & 0xFFFFFFFF
    return value


_SAFE = "bcdfghjklmnpqrstvwxz2456789"


def safe_encode(text: str) -> str:
    """Kubernetes' rand.SafeEncodeString: no vowels, no confusable characters."""
    return "".join(_SAFE[ord(ch) % len(_SAFE)] for ch in text)


def template_hash(template: Mapping[str, Any], collision_count: int | None = None) -> str:
    """The pod-template-hash label value: FNV-32a of the template (canonical JSON here,
    Go's object dump in Kubernetes), plus the collision count, safe-encoded."""
    data = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    if collision_count:
        data += str(collision_count).encode()
    return safe_encode(str(_fnv32a(data)))


def strip_hash(template: Mapping[str, Any]) -> Obj:
    clean = copy.deepcopy(dict(template))
    labels = (clean.get("metadata") or {}).get("labels")
    if labels and HASH_LABEL in labels:
        del labels[HASH_LABEL]
    return clean


def templates_equal(rs_template: Mapping[str, Any], template: Mapping[str, Any]) -> bool:
    """Kubernetes' EqualIgnoreHash: equal once the pod-template-hash label is removed
    (and an empty labels/annotations map counts as absent)."""
    return _normalized(strip_hash(rs_template)) == _normalized(strip_hash(template))


def _normalized(template: Obj) -> Obj:
    meta = template.get("metadata")
    if isinstance(meta, dict):
        for key in ("labels", "annotations"):
            if key in meta and not meta[key]:
                del meta[key]
        if not meta:
            template.pop("metadata")
    return template


def find_new_rs(deployment: Mapping[str, Any], rss: Sequence[Obj]) -> Obj | None:
    """The oldest ReplicaSet whose template equals the Deployment's (Kubernetes picks the
    oldest when several match, which only happens after a hash collision)."""
    template = (deployment.get("spec") or {}).get("template") or {}
    for rs in by_creation(list(rss)):
        if templates_equal((rs.get("spec") or {}).get("template") or {}, template):
            return rs
    return None


# -- rolling update ---------------------------------------------------------------------


def new_rs_replicas(deployment: Mapping[str, Any], all_rss: Sequence[Obj | None],
                    new_rs: Mapping[str, Any] | None) -> int:
    """Replicas the new ReplicaSet may have now (Kubernetes' NewRSNewReplicas)."""
    desired = replicas(deployment)
    current_new = replicas(new_rs) if new_rs is not None else 0
    if _rolling(deployment) is None:
        return desired
    current_total = spec_replicas_sum(all_rss)
    max_total = desired + max_surge(deployment)
    if current_total >= max_total:
        return current_new
    scale_up = min(max_total - current_total, max(desired - current_new, 0))
    return current_new + scale_up


def plan_old_scale_down(deployment: Mapping[str, Any], old_rss: Sequence[Obj],
                        new_rs: Mapping[str, Any] | None) -> dict[str, int]:
    """New spec.replicas for old ReplicaSets during a rolling update: first their
    unhealthy (unavailable) pods, then available ones as long as at least
    `replicas - maxUnavailable` pods stay available (Kubernetes' reconcileOldReplicaSets).
    Returns {rs name: new replicas} for the ReplicaSets that change."""
    old = [copy.deepcopy(rs) for rs in old_rss]
    old_count = spec_replicas_sum(old)
    if old_count == 0:
        return {}
    all_count = old_count + (replicas(new_rs) if new_rs is not None else 0)
    min_available = replicas(deployment) - max_unavailable(deployment)
    new_unavailable = (replicas(new_rs) - _status(new_rs, "availableReplicas")) if new_rs else 0
    max_scaled_down = all_count - min_available - new_unavailable
    if max_scaled_down <= 0:
        return {}
    plan: dict[str, int] = {}

    # 1. Unhealthy replicas of old ReplicaSets go first; they add nothing to availability.
    cleaned = 0
    for rs in by_creation(old):
        if cleaned >= max_scaled_down:
            break
        current = replicas(rs)
        unhealthy = current - _status(rs, "availableReplicas")
        if current == 0 or unhealthy <= 0:
            continue
        count = min(max_scaled_down - cleaned, unhealthy)
        rs["spec"]["replicas"] = current - count
        plan[podutil.meta(rs)["name"]] = current - count
        cleaned += count

    # 2. Then available pods, while availability stays above the minimum.
    everything = old + ([new_rs] if new_rs is not None else [])
    available = status_sum(everything, "availableReplicas")
    if available <= min_available:
        return plan
    budget = available - min_available
    scaled = 0
    for rs in by_creation(old):
        if scaled >= budget:
            break
        current = replicas(rs)
        if current == 0:
            continue
        count = min(current, budget - scaled)
        plan[podutil.meta(rs)["name"]] = current - count
        scaled += count
    return plan


# -- status -----------------------------------------------------------------------------


def _cond(type_: str, status: str, reason: str, message: str, now: float,
          old: Mapping[str, Any] | None = None) -> Obj:
    stamp = timestamps.format_time(now)
    transition = stamp
    if old is not None and old.get("status") == status and old.get("lastTransitionTime"):
        transition = old["lastTransitionTime"]
    return {"type": type_, "status": status, "lastUpdateTime": stamp,
            "lastTransitionTime": transition, "reason": reason, "message": message}


def get_condition(status: Mapping[str, Any], type_: str) -> Obj | None:
    for cond in status.get("conditions") or []:
        if cond.get("type") == type_:
            return cond
    return None


def set_condition(status: Obj, cond: Obj) -> None:
    """Set a condition; an unchanged status+reason keeps the old one entirely (Kubernetes
    keeps lastUpdateTime too, which is what the progress deadline counts from)."""
    conditions = [c for c in status.get("conditions") or []]
    for i, existing in enumerate(conditions):
        if existing.get("type") == cond["type"]:
            if existing.get("status") == cond["status"] and existing.get("reason") == cond["reason"]:
                return
            if existing.get("status") == cond["status"]:
                cond = dict(cond, lastTransitionTime=existing.get("lastTransitionTime")
                            or cond["lastTransitionTime"])
            conditions[i] = cond
            status["conditions"] = conditions
            return
    conditions.append(cond)
    status["conditions"] = conditions


def remove_condition(status: Obj, type_: str) -> None:
    status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != type_]


def calculate_status(deployment: Mapping[str, Any], all_rss: Sequence[Obj],
                     new_rs: Mapping[str, Any] | None, now: float) -> Obj:
    """Counts and the Available condition (Kubernetes' calculateStatus)."""
    old_status = deployment.get("status") or {}
    available = status_sum(all_rss, "availableReplicas")
    total = spec_replicas_sum(all_rss)
    status: Obj = {
        "observedGeneration": int(podutil.meta(deployment).get("generation") or 0),
        "replicas": status_sum(all_rss, "replicas"),
        "updatedReplicas": _status(new_rs, "replicas") if new_rs is not None else 0,
        "readyReplicas": status_sum(all_rss, "readyReplicas"),
        "availableReplicas": available,
        "unavailableReplicas": max(total - available, 0),
        "conditions": copy.deepcopy(old_status.get("conditions") or []),
    }
    if old_status.get("collisionCount") is not None:
        status["collisionCount"] = old_status["collisionCount"]
    # A ReplicaSet that cannot create pods shows on the Deployment (getReplicaFailures).
    failure = get_condition((new_rs or {}).get("status") or {}, "ReplicaFailure")
    if failure is None:
        for rs in all_rss:
            failure = get_condition(rs.get("status") or {}, "ReplicaFailure")
            if failure is not None:
                break
    if failure is not None and failure.get("status") == "True":
        set_condition(status, _cond("ReplicaFailure", "True", failure.get("reason") or "",
                                    failure.get("message") or "", now,
                                    get_condition(status, "ReplicaFailure")))
    else:
        remove_condition(status, "ReplicaFailure")
    old_available = get_condition(status, "Available")
    if available >= replicas(deployment) - max_unavailable(deployment):
        set_condition(status, _cond("Available", "True", MIN_AVAILABLE,
                                    "Deployment has minimum availability.", now, old_available))
    else:
        set_condition(status, _cond("Available", "False", MIN_UNAVAILABLE,
                                    "Deployment does not have minimum availability.", now,
                                    old_available))
    return status


def is_complete(deployment: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    """Every replica updated and available, and the spec observed (DeploymentComplete)."""
    desired = replicas(deployment)
    return (int(status.get("updatedReplicas") or 0) == desired
            and int(status.get("replicas") or 0) == desired
            and int(status.get("availableReplicas") or 0) == desired
            and int(status.get("observedGeneration") or 0)
            >= int(podutil.meta(deployment).get("generation") or 0))


def is_progressing(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """The rollout moved since the last status (DeploymentProgressing)."""
    old_old = int(old.get("replicas") or 0) - int(old.get("updatedReplicas") or 0)
    new_old = int(new.get("replicas") or 0) - int(new.get("updatedReplicas") or 0)
    return (int(new.get("updatedReplicas") or 0) > int(old.get("updatedReplicas") or 0)
            or new_old < old_old
            or int(new.get("readyReplicas") or 0) > int(old.get("readyReplicas") or 0)
            or int(new.get("availableReplicas") or 0) > int(old.get("availableReplicas") or 0))


def progress_deadline(deployment: Mapping[str, Any]) -> int | None:
    value = (deployment.get("spec") or {}).get("progressDeadlineSeconds", 600)
    if value is None or int(value) >= 2**31 - 1:
        return None
    return int(value)


def rollout_status(deployment: Mapping[str, Any], all_rss: Sequence[Obj],
                   new_rs: Mapping[str, Any] | None, now: float) -> tuple[Obj, float | None]:
    """The new status with the Progressing condition (Kubernetes' syncRolloutStatus),
    and when to look again to notice a deadline passing (seconds from now, or None)."""
    status = calculate_status(deployment, all_rss, new_rs, now)
    deadline = progress_deadline(deployment)
    if deadline is None:
        remove_condition(status, "Progressing")
        return status, None
    current = get_condition(status, "Progressing")
    rs_name = podutil.meta(new_rs).get("name") if new_rs is not None else ""
    complete_before = (int(status.get("replicas") or 0) == int(status.get("updatedReplicas") or 0)
                       and current is not None and current.get("reason") == NEW_RS_AVAILABLE)
    if not complete_before:
        old_status = deployment.get("status") or {}
        if is_complete(deployment, status):
            set_condition(status, _cond("Progressing", "True", NEW_RS_AVAILABLE,
                                        f'ReplicaSet "{rs_name}" has successfully progressed.',
                                        now, current))
        elif is_progressing(old_status, status):
            cond = _cond("Progressing", "True", RS_UPDATED,
                         f'ReplicaSet "{rs_name}" is progressing.', now, current)
            # Progress refreshes lastUpdateTime: the deadline counts from the last progress.
            remove_condition(status, "Progressing")
            status["conditions"].append(cond)
        elif timed_out(deployment, status, now):
            set_condition(status, _cond("Progressing", "False", TIMED_OUT,
                                        f'ReplicaSet "{rs_name}" has timed out progressing.',
                                        now, current))
    # Look again when the deadline would pass, unless complete or already timed out.
    current = get_condition(status, "Progressing")
    if current is None or current.get("reason") in (NEW_RS_AVAILABLE, TIMED_OUT):
        return status, None
    if is_complete(deployment, status):
        return status, None
    since = timestamps.epoch_seconds(current.get("lastUpdateTime")) or now
    return status, max(since + deadline - now, 0.0) + 0.05


def timed_out(deployment: Mapping[str, Any], status: Mapping[str, Any], now: float) -> bool:
    deadline = progress_deadline(deployment)
    if deadline is None:
        return False
    cond = get_condition(status, "Progressing")
    if cond is None or cond.get("reason") == NEW_RS_AVAILABLE:
        return False
    if cond.get("reason") == TIMED_OUT:
        return True
    since = timestamps.epoch_seconds(cond.get("lastUpdateTime"))
    return since is not None and since + deadline < now


# -- history ----------------------------------------------------------------------------


def replica_sets_to_prune(deployment: Mapping[str, Any], old_rss: Sequence[Obj]) -> list[Obj]:
    """Old ReplicaSets beyond revisionHistoryLimit that have scaled to zero, oldest
    revision first (Kubernetes' cleanupDeployment)."""
    limit = (deployment.get("spec") or {}).get("revisionHistoryLimit", 10)
    if limit is None:
        return []
    alive = [rs for rs in old_rss if not podutil.is_deleting(rs)]
    excess = len(alive) - int(limit)
    if excess <= 0:
        return []
    prune = []
    for rs in sorted(alive, key=lambda r: (revision(r), podutil.meta(r).get("name") or ""))[:excess]:
        if (_status(rs, "replicas") != 0 or replicas(rs) != 0
                or int(podutil.meta(rs).get("generation") or 0)
                > int((rs.get("status") or {}).get("observedGeneration") or 0)):
            continue
        prune.append(rs)
    return prune


# -- scaling events (proportional scaling) ----------------------------------------------


def _desired_annotation(rs: Mapping[str, Any]) -> int | None:
    try:
        return int((podutil.meta(rs).get("annotations") or {})[DESIRED_REPLICAS])
    except (KeyError, ValueError):
        return None


def _max_annotation(rs: Mapping[str, Any]) -> int | None:
    try:
        return int((podutil.meta(rs).get("annotations") or {})[MAX_REPLICAS])
    except (KeyError, ValueError):
        return None


def is_scaling_event(deployment: Mapping[str, Any], rss: Sequence[Obj]) -> bool:
    """spec.replicas changed since the active ReplicaSets were last sized
    (their desired-replicas annotation differs; Kubernetes' isScalingEvent)."""
    desired = replicas(deployment)
    for rs in rss:
        if replicas(rs) > 0:
            annotated = _desired_annotation(rs)
            if annotated is not None and annotated != desired:
                return True
    return False


def _round_half_away(value: float) -> int:
    return int(math.floor(value + 0.5)) if value >= 0 else -int(math.floor(-value + 0.5))


def _fraction(rs: Mapping[str, Any], deployment: Mapping[str, Any]) -> int:
    desired = replicas(deployment)
    if desired == 0:
        return -replicas(rs)
    allowed = desired + max_surge(deployment)
    annotated = _max_annotation(rs)
    if not annotated:
        annotated = int((deployment.get("status") or {}).get("replicas") or 0) or allowed
    return _round_half_away(replicas(rs) * allowed / annotated) - replicas(rs)


def is_saturated(deployment: Mapping[str, Any], rs: Mapping[str, Any] | None) -> bool:
    if rs is None:
        return False
    desired = replicas(deployment)
    return (_desired_annotation(rs) == desired and replicas(rs) == desired
            and _status(rs, "availableReplicas") == desired)


def plan_scale(deployment: Mapping[str, Any], new_rs: Obj | None,
               old_rss: Sequence[Obj]) -> dict[str, int]:
    """New spec.replicas per ReplicaSet when the Deployment itself was scaled (Kubernetes'
    DeploymentController.scale): one active ReplicaSet takes the whole count; during a
    rolling update the change is spread over the active ReplicaSets in proportion to
    their size, leftovers to the largest. Returns only ReplicaSets that change."""
    desired = replicas(deployment)
    newest_first = sorted(old_rss, key=lambda r: (timestamps.epoch_seconds(
        podutil.meta(r).get("creationTimestamp")) or 0, podutil.meta(r).get("name") or ""),
        reverse=True)
    everything = newest_first + ([new_rs] if new_rs is not None else [])
    active = [rs for rs in everything if replicas(rs) > 0]
    if not everything:
        return {}
    if len(active) <= 1:
        target = active[0] if active else (new_rs if new_rs is not None else newest_first[0])
        return {} if replicas(target) == desired else {podutil.meta(target)["name"]: desired}
    if is_saturated(deployment, new_rs):
        return {podutil.meta(rs)["name"]: 0 for rs in old_rss if replicas(rs) > 0}
    if _rolling(deployment) is None:
        return {}
    allowed = desired + max_surge(deployment) if desired > 0 else 0
    to_add = allowed - spec_replicas_sum(active)
    if to_add == 0:
        return {}

    def created(rs: Obj) -> float:
        return timestamps.epoch_seconds(podutil.meta(rs).get("creationTimestamp")) or 0

    if to_add > 0:   # largest first, newer first among equals
        ordered = sorted(active, key=lambda r: (-replicas(r), -created(r)))
    else:            # largest first, older first among equals
        ordered = sorted(active, key=lambda r: (-replicas(r), created(r)))
    sizes: dict[str, int] = {}
    added = 0
    for rs in ordered:
        proportion = 0
        if replicas(rs) != 0 and to_add != added:
            fraction = _fraction(rs, deployment)
            remaining = to_add - added
            proportion = min(fraction, remaining) if to_add > 0 else max(fraction, remaining)
        sizes[podutil.meta(rs)["name"]] = replicas(rs) + proportion
        added += proportion
    first = podutil.meta(ordered[0])["name"]
    sizes[first] = max(sizes[first] + to_add - added, 0)
    return {name: size for name, size in sizes.items()
            if size != replicas(next(r for r in ordered if podutil.meta(r)["name"] == name))}
