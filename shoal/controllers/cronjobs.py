"""The CronJob controller: create Jobs on a cron schedule (Kubernetes' cronjob controller v2).

One reconcile per CronJob (level-based), in Kubernetes' order:

1. `status.active`: Jobs that finished leave it (event SawCompletedJob; a Complete one
   moves `status.lastSuccessfulTime`), Jobs that are gone leave it (MissingJob); an
   unfinished Job this CronJob controls that is not listed is reported (UnexpectedJob),
   as Kubernetes does (a `kubectl create job --from=cronjob/X` Job is one).
2. Nothing more while the CronJob is being deleted or `spec.suspend` is true.
3. The most recent due time (`cronplan.most_recent_schedule`, in `spec.timeZone` or the
   machine's zone): none -> wake at the next one; later than `startingDeadlineSeconds`
   -> MissSchedule; already started (`lastScheduleTime`, or its Job active) -> wait;
   `concurrencyPolicy` Forbid with a Job active -> JobAlreadyActive (the time stays due,
   so it still runs when the active Job ends within the deadline); Replace -> the active
   Jobs are deleted (Background) first.
4. Create `<name>-<minutes since epoch>` from the template (an AlreadyExists Job of this
   CronJob counts as started), list it in `status.active`, set `lastScheduleTime`.
5. Delete finished Jobs beyond `successfulJobsHistoryLimit` / `failedJobsHistoryLimit`.
6. Write the status if it changed; wake at the next scheduled time (+100 ms).

A daemon that was down is handled by step 3: at most one catch-up Job for all the times
missed, and an event TooManyMissedTimes beyond 100 of them.

Concurrency: the engine serialises reconciles per CronJob; created Jobs are written
through to the cache, so a reconcile never creates one twice (and the deterministic
name makes the API refuse a duplicate anyway).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import zoneinfo
from typing import Any, Callable

from shoal import timestamps
from shoal.api import cron
from shoal.api import errors as api_errors
from shoal.api.client import Obj
from shoal.controllers import cronplan, engine, pods as podutil
from shoal.controllers.engine import Controller, Manager, Request, Result
from shoal.controllers.errors import namespace_terminating
from shoal.controllers.events import EventRecorder

log = logging.getLogger(__name__)

CRONJOBS = "cronjobs.batch"
JOBS = "jobs.batch"


def local_zone() -> dt.tzinfo:
    """The machine's time zone (Kubernetes uses the controller manager's), following its
    daylight-saving rules when /etc/localtime names one."""
    try:
        with open("/etc/localtime", "rb") as handle:
            return zoneinfo.ZoneInfo.from_file(handle)
    except (OSError, ValueError):
        return dt.datetime.now().astimezone().tzinfo or dt.timezone.utc


class CronJobController:
    """Reconciles CronJobs; build its engine `Controller` with `controller()`."""

    def __init__(self, manager: Manager, recorder: EventRecorder, *,
                 clock: Callable[[], float] = time.time, zone: dt.tzinfo | None = None,
                 workers: int = 1) -> None:
        self.manager = manager
        self.writer = manager.writer
        self.recorder = recorder
        self.clock = clock
        self.zone = zone or local_zone()
        self.workers = workers
        self.cronjobs = manager.lister(CRONJOBS)
        self.jobs = manager.lister(JOBS)

    def controller(self) -> Controller:
        return Controller("cronjob", self.reconcile, [
            (CRONJOBS, engine.map_own),
            (JOBS, engine.map_owner("CronJob")),
        ], workers=self.workers)

    def owned_jobs(self, cj: Obj) -> list[Obj]:
        uid = podutil.meta(cj).get("uid") or ""
        return [j for j in self.jobs.dependents(uid) if podutil.controlled_by(j, cj)]

    async def reconcile(self, request: Request) -> Result | None:
        cached = self.cronjobs.get(request.namespace, request.name)
        if cached is None:
            return None
        cj = engine.clone(cached)
        status = cj.setdefault("status", {})
        jobs = self.owned_jobs(cj)
        await self._track_active(cj, status, jobs)
        wake = None
        if not podutil.is_deleting(cj) and (cj.get("spec") or {}).get("suspend") is not True:
            wake = await self._schedule(cj, status)
        await self._clean_history(cj, [j for j in self.owned_jobs(cj)])
        if not status.get("active"):
            status.pop("active", None)
        if status != (cached.get("status") or {}):
            body = engine.clone(self.cronjobs.get(request.namespace, request.name) or cj)
            body["status"] = status
            try:
                await self.writer.update_status(CRONJOBS, body)
            except api_errors.NotFound:
                return None
        return Result(requeue_after=wake) if wake is not None else None

    async def _track_active(self, cj: Obj, status: Obj, jobs: list[Obj]) -> None:
        active = list(status.get("active") or [])
        listed = {ref.get("uid") for ref in active}
        by_uid = {podutil.meta(j).get("uid"): j for j in jobs}
        for job in jobs:
            uid, name = podutil.meta(job).get("uid"), podutil.meta(job).get("name")
            finished = cronplan.finished_type(job)
            if uid not in listed and finished is None:
                await self.recorder.warning(cj, "UnexpectedJob", "Saw a job that the controller "
                                            f"did not create or forgot: {name}")
            elif uid in listed and finished is not None:
                active = [ref for ref in active if ref.get("uid") != uid]
                await self.recorder.normal(cj, "SawCompletedJob",
                                           f"Saw completed job: {name}, condition: {finished}")
                if finished == "Complete":
                    done = (job.get("status") or {}).get("completionTime")
                    old = status.get("lastSuccessfulTime")
                    if done and (not old or timestamps.parse_time(done) > timestamps.parse_time(old)):
                        status["lastSuccessfulTime"] = done
        for ref in list(active):
            if ref.get("uid") not in by_uid:
                active = [r for r in active if r.get("uid") != ref.get("uid")]
                await self.recorder.normal(cj, "MissingJob",
                                           f"Active job went missing: {ref.get('name')}")
        status["active"] = active

    def _zone_of(self, cj: Obj) -> dt.tzinfo:
        name = (cj.get("spec") or {}).get("timeZone")
        return cron.load_zone(name) if name else self.zone

    async def _schedule(self, cj: Obj, status: Obj) -> float | None:
        """Step 3 and 4; returns seconds until the next look."""
        spec = cj.get("spec") or {}
        try:
            schedule = cron.parse(spec.get("schedule") or "")
            zone = self._zone_of(cj)
        except cron.ScheduleError as exc:
            await self.recorder.warning(cj, "InvalidSchedule",
                                        f"invalid schedule: {spec.get('schedule')} : {exc}")
            return None
        now = dt.datetime.fromtimestamp(self.clock(), dt.timezone.utc)
        wake = cronplan.next_schedule_in(schedule, now, zone)
        missed = cronplan.most_recent_schedule(cj, schedule, now, zone)
        if missed.count > cronplan.TOO_MANY_MISSED:
            await self.recorder.warning(cj, "TooManyMissedTimes", "too many missed start times: "
                                        f"{missed.count}. Set or decrease "
                                        ".spec.startingDeadlineSeconds or check clock skew")
        scheduled = missed.scheduled
        if scheduled is None:
            return wake
        deadline = spec.get("startingDeadlineSeconds")
        if isinstance(deadline, int) and scheduled + dt.timedelta(seconds=deadline) < now:
            await self.recorder.warning(cj, "MissSchedule", "Missed scheduled time to start a "
                                        f"job: {timestamps.format_time(scheduled)}")
            return wake
        name = cronplan.job_name(cj, scheduled)
        last = timestamps.parse_time_or_none(status.get("lastScheduleTime"))
        if any(ref.get("name") == name for ref in status["active"]) or last == scheduled:
            return wake
        policy = spec.get("concurrencyPolicy") or "Allow"
        if policy == "Forbid" and status["active"]:
            await self.recorder.normal(cj, "JobAlreadyActive", "Not starting job because prior "
                                       "execution is running and concurrency policy is Forbid")
            return wake
        if policy == "Replace":
            for ref in list(status["active"]):
                await self._delete_job(cj, ref.get("name") or "")
                status["active"] = [r for r in status["active"] if r.get("uid") != ref.get("uid")]
        job = await self._create_job(cj, scheduled, zone)
        if job is None:
            return wake
        if cronplan.finished_type(job) is None:
            status["active"] = [*status["active"], cronplan.job_reference(job)]
        status["lastScheduleTime"] = timestamps.format_time(scheduled)
        return wake

    async def _create_job(self, cj: Obj, scheduled: dt.datetime, zone: dt.tzinfo) -> Obj | None:
        body = cronplan.job_from_template(cj, scheduled, zone)
        name = body["metadata"]["name"]
        try:
            job = await self.writer.create(JOBS, body)
        except api_errors.AlreadyExists:
            existing = self.jobs.get(body["metadata"]["namespace"], name)
            if existing is not None and podutil.controlled_by(existing, cj):
                return existing  # started before (a lost status write): count it
            raise
        except api_errors.StatusError as exc:
            if namespace_terminating(exc):
                return None
            await self.recorder.warning(cj, "FailedCreate", f"Error creating job: {exc}")
            raise
        await self.recorder.normal(cj, "SuccessfulCreate", f"Created job {name}")
        return job

    async def _delete_job(self, cj: Obj, name: str) -> None:
        try:
            await self.writer.delete(JOBS, podutil.meta(cj)["namespace"], name,
                                     propagation_policy="Background")
        except api_errors.NotFound:
            return
        await self.recorder.normal(cj, "SuccessfulDelete", f"Deleted job {name}")

    async def _clean_history(self, cj: Obj, jobs: list[Any]) -> None:
        spec = cj.get("spec") or {}
        for job in cronplan.history_to_delete(jobs, spec.get("successfulJobsHistoryLimit"),
                                              spec.get("failedJobsHistoryLimit")):
            await self._delete_job(cj, podutil.meta(job).get("name") or "")
