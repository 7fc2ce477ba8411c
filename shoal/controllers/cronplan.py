"""The CronJob controller's decisions, as pure functions (Kubernetes' cronjob controller v2).

- `most_recent_schedule(cj, schedule, now, zone)`: the latest scheduled time that has
  passed and not been started yet, and how many were missed. The window starts at
  `status.lastScheduleTime` (or the CronJob's creation), cut to `now -
  startingDeadlineSeconds` when that is set; however many times fell in it, at most the
  most recent one runs (so a daemon that was down for hours starts one catch-up Job, not
  hundreds); more than 100 missed times is reported as an event.
- `job_name(cj, scheduled)`: `<cronjob>-<scheduled time in minutes since the epoch>`,
  deterministic, so one scheduled time never makes two Jobs.
- `job_from_template(cj, scheduled, zone)`: the Job: the template's labels, annotations
  plus `batch.kubernetes.io/cronjob-scheduled-timestamp`, a controller ownerReference.
- `history_to_delete(jobs, successful_limit, failed_limit)`: finished Jobs beyond the
  history limits, oldest (by start time) first.

Pure: times are aware datetimes; `now` is passed in.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
from typing import Any, Mapping, Sequence

from shoal import timestamps
from shoal.api import cron
from shoal.api.builtin import batch
from shoal.controllers import jobstate, pods as podutil

Obj = dict[str, Any]
TOO_MANY_MISSED = 100


@dataclasses.dataclass(frozen=True)
class Missed:
    scheduled: dt.datetime | None
    """The most recent scheduled time not yet run (None: nothing due)."""
    count: int
    """How many scheduled times fell in the window (past 100, estimated from the first
    interval, as Kubernetes does)."""


def _earliest(cj: Mapping[str, Any], now: dt.datetime) -> dt.datetime:
    status = cj.get("status") or {}
    earliest = (timestamps.parse_time_or_none(status.get("lastScheduleTime"))
                or timestamps.parse_time_or_none(podutil.meta(cj).get("creationTimestamp"))
                or now)
    deadline = (cj.get("spec") or {}).get("startingDeadlineSeconds")
    if isinstance(deadline, int):
        cut = now - dt.timedelta(seconds=deadline)
        if cut > earliest:
            earliest = cut
    return earliest


def most_recent_schedule(cj: Mapping[str, Any], schedule: cron.Schedule, now: dt.datetime,
                         zone: dt.tzinfo | None) -> Missed:
    earliest = _earliest(cj, now)
    first = schedule.next_after(earliest, zone)
    if first > now:
        return Missed(None, 0)
    count, latest, moment = 0, first, first
    while moment <= now and count <= TOO_MANY_MISSED:
        count += 1
        latest = moment
        moment = schedule.next_after(moment, zone)
    if moment <= now:  # stopped counting: estimate as Kubernetes does, jump to the last
        interval = (schedule.next_after(first, zone) - first).total_seconds()
        count = int((now - first).total_seconds() // interval) + 1
        last = schedule.last_at_or_before(now, zone)
        if last is None:  # @every: a fixed step
            steps = int((now - latest).total_seconds() // schedule.every)
            last = latest + dt.timedelta(seconds=steps * schedule.every)
        latest = last
    return Missed(latest.astimezone(dt.timezone.utc).replace(fold=0), count)


def next_schedule_in(schedule: cron.Schedule, now: dt.datetime, zone: dt.tzinfo | None) -> float:
    """Seconds until the next scheduled time, plus Kubernetes' 100 ms margin."""
    return (schedule.next_after(now, zone) - now).total_seconds() + 0.1


def job_name(cj: Mapping[str, Any], scheduled: dt.datetime) -> str:
    return f"{podutil.meta(cj)['name']}-{int(scheduled.timestamp()) // 60}"


def job_from_template(cj: Mapping[str, Any], scheduled: dt.datetime,
                      zone: dt.tzinfo | None) -> Obj:
    template = (cj.get("spec") or {}).get("jobTemplate") or {}
    tmeta = template.get("metadata") or {}
    meta = podutil.meta(cj)
    local = scheduled.astimezone(zone or dt.timezone.utc)
    stamp = local.isoformat(timespec="seconds").replace("+00:00", "Z")
    annotations = dict(tmeta.get("annotations") or {})
    annotations[batch.CRONJOB_SCHEDULED] = stamp
    job_meta: Obj = {
        "name": job_name(cj, scheduled),
        "namespace": meta["namespace"],
        "annotations": annotations,
        "ownerReferences": [podutil.owner_reference(cj)],
    }
    if tmeta.get("labels"):
        job_meta["labels"] = dict(tmeta["labels"])
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": job_meta,
            "spec": copy.deepcopy(template.get("spec") or {})}


def job_reference(job: Mapping[str, Any]) -> Obj:
    """The ObjectReference `status.active` lists."""
    meta = podutil.meta(job)
    return {"apiVersion": "batch/v1", "kind": "Job", "name": meta.get("name"),
            "namespace": meta.get("namespace"), "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion")}


def finished_type(job: Mapping[str, Any]) -> str | None:
    """"Complete" or "Failed" for a finished Job, else None."""
    for kind in (jobstate.COMPLETE, jobstate.FAILED):
        if jobstate.is_true(job, kind):
            return kind
    return None


def history_to_delete(jobs: Sequence[Mapping[str, Any]], successful_limit: Any,
                      failed_limit: Any) -> list[Mapping[str, Any]]:
    victims: list[Mapping[str, Any]] = []
    for kind, limit in ((jobstate.COMPLETE, successful_limit), (jobstate.FAILED, failed_limit)):
        if not isinstance(limit, int):
            continue
        done = [j for j in jobs if finished_type(j) == kind]
        if len(done) <= limit:
            continue
        done.sort(key=_start_key)
        victims += done[:len(done) - limit]
    return victims


def _start_key(job: Mapping[str, Any]) -> tuple[int, float, str]:
    """byJobStartTime: by status.startTime, Jobs without one last, then by name."""
    start = timestamps.epoch_seconds((job.get("status") or {}).get("startTime") or None)
    return (1 if start is None else 0, start or 0.0, podutil.meta(job).get("name") or "")
