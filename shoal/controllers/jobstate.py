"""The Job controller's decisions, as pure functions of (Job, its pods, now).

`plan(job, pods, now, backoff)` is Kubernetes' syncJob (1.31) without the I/O: it
returns a `JobPlan` — the status to write, the pods to create (by completion index for
Indexed Jobs) and to delete, the events to record and when to look again. The controller
in `shoal.controllers.jobs` executes it. The rules:

- pods: *active* (not terminal, not being deleted), *terminating* (being deleted, not yet
  terminal), succeeded and failed. A failed pod is matched against
  `spec.podFailurePolicy` (first matching rule wins: FailJob fails the Job, Ignore does
  not count the failure, Count counts it; exit-code rules look at the pod's terminated
  containers with a non-zero code, condition rules at its conditions).
- success: NonIndexed with completions: `succeeded >= completions`; a work queue (no
  completions): some pod succeeded and none is active; Indexed: every index 0..n-1 has a
  succeeded pod (`status.completedIndexes` as "0-2,4"). Failure, in Kubernetes' order: a
  FailJob rule (reason PodFailurePolicy), `failed > backoffLimit` or, for OnFailure pods,
  restarts reaching it (BackoffLimitExceeded), then `activeDeadlineSeconds` since
  `startTime` (DeadlineExceeded).
- conditions as 1.31 writes them: first the interim SuccessCriteriaMet / FailureTarget
  (with the same reason and message), and the terminal Complete / Failed only once no
  pod of the Job is still running or terminating; active pods of a failing or
  succeeded Job are deleted. `completionTime` is set on Complete only.
- creation: at most `parallelism` active pods and never more than the completions left;
  after failures, new pods wait out the back-off: base * 2**(failures since the last
  success - 1), capped (Kubernetes: 10 s doubling to 10 min), counted from the last
  failure's finish time, so the delay survives a controller restart.
- suspend deletes active pods and sets Suspended=True; resuming sets Suspended=False and
  restarts `startTime` (the deadline counts active time only).
- `ttlSecondsAfterFinished`: the Job is due for deletion that long after it finished.

No state is kept between calls: everything is derived from the objects, as a
level-based reconciler must.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Sequence

from shoal import timestamps
from shoal.api.builtin import batch
from shoal.controllers import pods as podutil

Obj = dict[str, Any]
MAX_CREATE_PER_SYNC = 500

COMPLETE, FAILED = "Complete", "Failed"
SUCCESS_CRITERIA_MET, FAILURE_TARGET, SUSPENDED = "SuccessCriteriaMet", "FailureTarget", "Suspended"
COMPLETIONS_REACHED = ("CompletionsReached", "Reached expected number of succeeded pods")
BACKOFF_EXCEEDED = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
DEADLINE_EXCEEDED = ("DeadlineExceeded", "Job was active longer than specified deadline")


@dataclasses.dataclass(frozen=True)
class Backoff:
    """Delay before a failed pod is replaced; Kubernetes' DefaultJobPodFailureBackOff (10 s)
    doubling to MaxJobPodFailureBackOff (10 min)."""

    base: float = 10.0
    """Seconds of the first delay."""
    cap: float = 600.0
    """Longest delay in seconds."""

    def delay(self, failures: int) -> float:
        if failures <= 0:
            return 0.0
        return min(self.cap, self.base * 2 ** min(failures - 1, 62))


@dataclasses.dataclass
class JobPlan:
    status: Obj
    create: list[int | None] = dataclasses.field(default_factory=list)
    """One entry per pod to create: its completion index (None for NonIndexed)."""
    delete: list[Mapping[str, Any]] = dataclasses.field(default_factory=list)
    events: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)
    """(type, reason, message)."""
    requeue_after: float | None = None
    delete_job: bool = False
    """ttlSecondsAfterFinished has run out: delete the Job (foreground, as the TTL
    controller does)."""

    def wake(self, seconds: float) -> None:
        seconds = max(seconds, 0.05)
        self.requeue_after = seconds if self.requeue_after is None else min(self.requeue_after, seconds)


# -- reading pods --------------------------------------------------------------------------


def finish_time(pod: Mapping[str, Any]) -> float:
    """When a terminal pod finished: its last container's finishedAt (else its creation)."""
    latest = None
    status = pod.get("status") or {}
    for key in ("containerStatuses", "initContainerStatuses"):
        for cs in status.get(key) or []:
            done = ((cs.get("state") or {}).get("terminated") or {}).get("finishedAt")
            when = timestamps.epoch_seconds(done) if done else None
            if when is not None and (latest is None or when > latest):
                latest = when
    if latest is None:
        latest = timestamps.epoch_seconds(podutil.meta(pod).get("creationTimestamp")) or 0.0
    return latest


def completion_index(pod: Mapping[str, Any]) -> int | None:
    value = (podutil.meta(pod).get("annotations") or {}).get(batch.COMPLETION_INDEX)
    if isinstance(value, str) and value.isdigit() and (value == "0" or not value.startswith("0")):
        return int(value)
    return None


def failure_rule(job: Mapping[str, Any], pod: Mapping[str, Any]) -> tuple[str, str | None] | None:
    """The action of the first podFailurePolicy rule a failed pod matches, with the
    message a FailJob action puts on the Job; None when no rule matches (Count)."""
    rules = (((job.get("spec") or {}).get("podFailurePolicy")) or {}).get("rules") or []
    meta = podutil.meta(pod)
    who = f"{meta.get('namespace')}/{meta.get('name')}"
    for i, rule in enumerate(rules):
        action = rule.get("action")
        codes = rule.get("onExitCodes")
        if isinstance(codes, dict):
            hit = _exit_code_hit(pod, codes)
            if hit is not None:
                name, code = hit
                return action, (f"Container {name} for pod {who} failed with exit code {code} "
                                f"matching {action} rule at index {i}")
        for pattern in rule.get("onPodConditions") or []:
            cond = podutil.condition(pod, pattern.get("type", ""))
            if cond is not None and cond.get("status") == pattern.get("status", "True"):
                return action, (f"Pod {who} has condition {pattern.get('type')} matching "
                                f"{action} rule at index {i}")
    return None


def _exit_code_hit(pod: Mapping[str, Any], codes: Mapping[str, Any]) -> tuple[str, int] | None:
    wanted = set(codes.get("values") or [])
    operator, only = codes.get("operator"), codes.get("containerName")
    status = pod.get("status") or {}
    for key in ("initContainerStatuses", "containerStatuses"):
        for cs in status.get(key) or []:
            if only is not None and cs.get("name") != only:
                continue
            code = ((cs.get("state") or {}).get("terminated") or {}).get("exitCode")
            if not isinstance(code, int) or code == 0:
                continue
            if (code in wanted) == (operator == "In"):
                return cs.get("name", ""), code
    return None


def restarts_of_active(pods: Sequence[Mapping[str, Any]]) -> int:
    total = 0
    for pod in pods:
        if podutil.phase(pod) in ("Running", "Pending"):
            status = pod.get("status") or {}
            for key in ("initContainerStatuses", "containerStatuses"):
                total += sum(int(cs.get("restartCount") or 0) for cs in status.get(key) or [])
    return total


def format_indexes(indexes: set[int]) -> str:
    """Sorted intervals: {0,1,2,4} -> "0-2,4"."""
    out, ordered = [], sorted(indexes)
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        out.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(out)


def condition_of(job: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return cond
    return None


def is_true(job: Mapping[str, Any], kind: str) -> bool:
    cond = condition_of(job, kind)
    return cond is not None and cond.get("status") == "True"


def is_finished(job: Mapping[str, Any]) -> bool:
    return is_true(job, COMPLETE) or is_true(job, FAILED)


def finished_at(job: Mapping[str, Any]) -> float | None:
    for kind in (COMPLETE, FAILED):
        cond = condition_of(job, kind)
        if cond is not None and cond.get("status") == "True":
            return timestamps.epoch_seconds(cond.get("lastTransitionTime"))
    return None


def _set_condition(conditions: list[Obj], kind: str, status: str, reason: str, message: str,
                   now: float) -> bool:
    """ensureJobConditionStatus: add or change a condition; a False one is never added
    when absent. Returns whether anything changed."""
    stamp = timestamps.format_time(now)
    for cond in conditions:
        if cond.get("type") != kind:
            continue
        if cond.get("status") == status and cond.get("reason") == reason \
                and cond.get("message") == message:
            return False
        if cond.get("status") != status:
            cond["lastTransitionTime"] = stamp
        cond.update(status=status, reason=reason, message=message, lastProbeTime=stamp)
        return True
    if status != "True":
        return False
    conditions.append({"type": kind, "status": status, "lastProbeTime": stamp,
                       "lastTransitionTime": stamp, "reason": reason, "message": message})
    return True


# -- the plan -------------------------------------------------------------------------------


@dataclasses.dataclass
class _Pods:
    active: list[Mapping[str, Any]]
    terminating: list[Mapping[str, Any]]
    succeeded: list[Mapping[str, Any]]
    counted_failures: list[Mapping[str, Any]]
    fail_job: str | None
    """The message of the first FailJob rule a failed pod matched."""


def _sort_pods(job: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]) -> _Pods:
    sorted_pods = _Pods([], [], [], [], None)
    failed = []
    for pod in pods:
        phase = podutil.phase(pod)
        if phase == "Succeeded":
            sorted_pods.succeeded.append(pod)
        elif phase == "Failed":
            failed.append(pod)
        elif podutil.is_deleting(pod):
            sorted_pods.terminating.append(pod)
        else:
            sorted_pods.active.append(pod)
    for pod in sorted(failed, key=finish_time):
        rule = failure_rule(job, pod)
        if rule is None or rule[0] == "Count":
            sorted_pods.counted_failures.append(pod)
        elif rule[0] == "FailJob":
            sorted_pods.counted_failures.append(pod)
            if sorted_pods.fail_job is None:
                sorted_pods.fail_job = rule[1]
    return sorted_pods


def plan(job: Mapping[str, Any], pods: Sequence[Mapping[str, Any]], now: float,
         backoff: Backoff = Backoff()) -> JobPlan:
    """What the Job controller does next for `job` and its (owned) `pods`."""
    spec = job.get("spec") or {}
    old_status = job.get("status") or {}
    status: Obj = {k: v for k, v in old_status.items()}
    conditions: list[Obj] = [dict(c) for c in old_status.get("conditions") or []]
    result = JobPlan(status)
    sorted_pods = _sort_pods(job, pods)
    indexed = spec.get("completionMode") == "Indexed"
    completions = spec.get("completions")
    succeeded_indexes = _succeeded_indexes(sorted_pods.succeeded, completions) if indexed else set()
    succeeded = len(succeeded_indexes) if indexed else len(sorted_pods.succeeded)
    failed = len(sorted_pods.counted_failures)

    if is_finished(job):
        _write_counts(status, sorted_pods, succeeded, failed, succeeded_indexes, indexed)
        status["conditions"] = conditions
        _plan_ttl(job, result, now)
        return result

    suspended = spec.get("suspend") is True
    if not suspended and not status.get("startTime"):
        status["startTime"] = timestamps.format_time(now)

    target = _failure_target(job, sorted_pods, failed, now, conditions)
    if target is None and _success(spec, sorted_pods, succeeded, completions, indexed):
        _set_condition(conditions, SUCCESS_CRITERIA_MET, "True", *COMPLETIONS_REACHED, now)
        target = (COMPLETE, *COMPLETIONS_REACHED)
    elif target is not None:
        _set_condition(conditions, FAILURE_TARGET, "True", target[1], target[2], now)
        target = (FAILED, target[1], target[2])

    active = list(sorted_pods.active)
    if target is not None:
        result.delete = active
        active = []
    elif suspended:
        result.delete = active
        active = []
        if _set_condition(conditions, SUSPENDED, "True", "JobSuspended", "Job suspended", now):
            result.events.append(("Normal", "Suspended", "Job suspended"))
    else:
        if _set_condition(conditions, SUSPENDED, "False", "JobResumed", "Job resumed", now):
            result.events.append(("Normal", "Resumed", "Job resumed"))
            status["startTime"] = timestamps.format_time(now)
        if not podutil.is_deleting(job):
            active = _manage(job, sorted_pods, succeeded_indexes, succeeded, now, backoff, result)
        deadline = spec.get("activeDeadlineSeconds")
        start = timestamps.epoch_seconds(status.get("startTime"))
        if isinstance(deadline, int) and start is not None:
            result.wake(start + deadline - now)

    if target is not None and not active and not sorted_pods.terminating and not result.delete:
        kind, reason, message = target
        if _set_condition(conditions, kind, "True", reason, message, now):
            if kind == COMPLETE:
                status["completionTime"] = timestamps.format_time(now)
                result.events.append(("Normal", "Completed", "Job completed"))
            else:
                result.events.append(("Warning", reason, message))
        _plan_ttl({**job, "status": {**status, "conditions": conditions}}, result, now)
    _write_counts(status, sorted_pods, succeeded, failed, succeeded_indexes, indexed,
                  active=active, deleting=result.delete)
    status["conditions"] = conditions
    if not conditions:
        status.pop("conditions")
    return result


def _succeeded_indexes(succeeded: Sequence[Mapping[str, Any]], completions: Any) -> set[int]:
    limit = completions if isinstance(completions, int) else 0
    return {i for p in succeeded if (i := completion_index(p)) is not None and i < limit}


def _failure_target(job: Mapping[str, Any], sorted_pods: _Pods, failed: int, now: float,
                    conditions: list[Obj]) -> tuple[str, str, str] | None:
    """(FailureTarget, reason, message) when the Job has failed, in Kubernetes' order."""
    for cond in conditions:
        if cond.get("type") == FAILURE_TARGET and cond.get("status") == "True":
            return FAILURE_TARGET, cond.get("reason", ""), cond.get("message", "")
    spec = job.get("spec") or {}
    if sorted_pods.fail_job is not None:
        return FAILURE_TARGET, "PodFailurePolicy", sorted_pods.fail_job
    limit = spec.get("backoffLimit")
    limit = 6 if not isinstance(limit, int) else limit
    restart = ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy")
    restarts = restarts_of_active(sorted_pods.active) if restart == "OnFailure" else 0
    if failed > limit or (restart == "OnFailure" and (restarts > 0 if limit == 0 else restarts >= limit)):
        return FAILURE_TARGET, *BACKOFF_EXCEEDED
    deadline = spec.get("activeDeadlineSeconds")
    start = timestamps.epoch_seconds((job.get("status") or {}).get("startTime"))
    if isinstance(deadline, int) and start is not None and spec.get("suspend") is not True \
            and now - start >= deadline:
        return FAILURE_TARGET, *DEADLINE_EXCEEDED
    return None


def _success(spec: Mapping[str, Any], sorted_pods: _Pods, succeeded: int, completions: Any,
             indexed: bool) -> bool:
    if indexed or isinstance(completions, int):
        return isinstance(completions, int) and succeeded >= completions
    return succeeded > 0 and not sorted_pods.active


def _manage(job: Mapping[str, Any], sorted_pods: _Pods, succeeded_indexes: set[int],
            succeeded: int, now: float, backoff: Backoff, result: JobPlan) -> list[Mapping[str, Any]]:
    """Pods to create and delete so the Job runs what it should; returns the pods that
    stay active."""
    spec = job.get("spec") or {}
    parallelism = max(int(spec.get("parallelism") or 0), 0)
    completions = spec.get("completions")
    active = list(sorted_pods.active)
    if spec.get("completionMode") == "Indexed":
        active = _drop_index_duplicates(active, succeeded_indexes, completions, result)
    if isinstance(completions, int):
        want = max(min(completions - succeeded, parallelism), 0)
    else:
        want = len(active) if succeeded > 0 else parallelism
    if len(active) > want:
        victims = podutil.pods_to_delete(active, len(active) - want)
        result.delete += victims
        gone = {id(v) for v in victims}
        return [p for p in active if id(p) not in gone]
    missing = want - len(active)
    if spec.get("podReplacementPolicy") == "Failed":
        missing -= len(sorted_pods.terminating)
    missing = min(missing, MAX_CREATE_PER_SYNC)
    if missing <= 0:
        return active
    wait = _backoff_left(sorted_pods, now, backoff)
    if wait > 0:
        result.wake(wait)
        return active
    if spec.get("completionMode") == "Indexed":
        taken = {completion_index(p) for p in active}
        if spec.get("podReplacementPolicy") == "Failed":
            taken |= {completion_index(p) for p in sorted_pods.terminating}
        free = [i for i in range(int(completions or 0))
                if i not in succeeded_indexes and i not in taken]
        result.create = list(free[:missing])
    else:
        result.create = [None] * missing
    return active


def _drop_index_duplicates(active: list[Mapping[str, Any]], succeeded_indexes: set[int],
                           completions: Any, result: JobPlan) -> list[Mapping[str, Any]]:
    """Delete active pods with no valid index, an index already succeeded, or a second
    active pod for one index."""
    keep, seen = [], set()
    limit = completions if isinstance(completions, int) else 0
    for pod in sorted(active, key=lambda p: timestamps.epoch_seconds(
            podutil.meta(p).get("creationTimestamp")) or 0.0):
        index = completion_index(pod)
        if index is None or index >= limit or index in succeeded_indexes or index in seen:
            result.delete.append(pod)
            continue
        seen.add(index)
        keep.append(pod)
    return keep


def _backoff_left(sorted_pods: _Pods, now: float, backoff: Backoff) -> float:
    """Seconds before a replacement may start: counted failures since the last success."""
    last_success = max((finish_time(p) for p in sorted_pods.succeeded), default=-math.inf)
    recent = [finish_time(p) for p in sorted_pods.counted_failures]
    recent = [t for t in recent if t >= last_success]
    if not recent:
        return 0.0
    return max(recent) + backoff.delay(len(recent)) - now


def _write_counts(status: Obj, sorted_pods: _Pods, succeeded: int, failed: int,
                  succeeded_indexes: set[int], indexed: bool, *,
                  active: Sequence[Mapping[str, Any]] | None = None,
                  deleting: Sequence[Mapping[str, Any]] = ()) -> None:
    """The counters as Kubernetes writes them (zero counters left out, ready and
    terminating always present)."""
    active = sorted_pods.active if active is None else active
    for key, value in (("active", len(active)), ("succeeded", succeeded), ("failed", failed)):
        if value:
            status[key] = value
        else:
            status.pop(key, None)
    status["ready"] = sum(1 for p in active if podutil.is_ready(p))
    status["terminating"] = len(sorted_pods.terminating) + len(deleting)
    status["uncountedTerminatedPods"] = {}
    if indexed:
        text = format_indexes(succeeded_indexes)
        if text:
            status["completedIndexes"] = text
        else:
            status.pop("completedIndexes", None)


def _plan_ttl(job: Mapping[str, Any], result: JobPlan, now: float) -> None:
    ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
    finished = finished_at(job)
    if not isinstance(ttl, int) or finished is None:
        return
    left = finished + ttl - now
    if left <= 0:
        result.delete_job = True
    else:
        result.wake(left)
