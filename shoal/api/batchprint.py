"""Server-side table rows of batch/v1 Jobs and CronJobs, as Kubernetes' printJob and
printCronJob compute them (1.31):

- Job: NAME, STATUS (Complete / Failed / Terminating / Suspended / FailureTarget /
  SuccessCriteriaMet / Running, in that order of precedence), COMPLETIONS ("3/5", or
  "1/1 of 3" for a work queue with parallelism), DURATION (start to completion, or to
  now while running), AGE; wide: CONTAINERS, IMAGES, SELECTOR.
- CronJob: NAME, SCHEDULE, TIMEZONE, SUSPEND, ACTIVE, LAST SCHEDULE, AGE; wide:
  CONTAINERS, IMAGES, SELECTOR.

Pure; used through `shoal.api.printers`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Mapping

from shoal.api import printcells as cells

Obj = Mapping[str, Any]
Cells = list[Any]

_TEMPLATE_WIDE = [
    cells.wide("Containers", "Names of each container in the template."),
    cells.wide("Images", "Images referenced by each container in the template."),
    cells.wide("Selector", "Query over pods that should match the pod count."),
]

JOB_COLUMNS = [
    cells.NAME,
    cells.column("Status", "Status of the job."),
    cells.column("Completions", "The desired number of successfully finished pods the job "
                 "should be run with."),
    cells.column("Duration", "Time required to complete the job."),
    cells.AGE,
    *_TEMPLATE_WIDE,
]

CRONJOB_COLUMNS = [
    cells.NAME,
    cells.column("Schedule", "The schedule in Cron format, see "
                 "https://en.wikipedia.org/wiki/Cron."),
    cells.column("Timezone", "The time zone name for the given schedule, see "
                 "https://en.wikipedia.org/wiki/List_of_tz_database_time_zones."),
    cells.column("Suspend", "This flag tells the controller to suspend subsequent executions, "
                 "it does not apply to already started executions.", type="boolean"),
    cells.column("Active", "A list of pointers to currently running jobs.", type="integer"),
    cells.column("Last Schedule", "Information when was the last time the job was "
                 "successfully scheduled."),
    cells.AGE,
    *_TEMPLATE_WIDE,
]

_STATUS_ORDER = ("Complete", "Failed", "", "Suspended", "FailureTarget", "SuccessCriteriaMet")


def _has_condition(obj: Obj, kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True"
               for c in cells.get(obj, "status", "conditions", default=[]))


def job_status(obj: Obj) -> str:
    for kind in _STATUS_ORDER:
        if kind == "":
            if cells.get(obj, "metadata", "deletionTimestamp"):
                return "Terminating"
        elif _has_condition(obj, kind):
            return kind
    return "Running"


def job_completions(obj: Obj) -> str:
    spec, status = cells.get(obj, "spec", default={}), cells.get(obj, "status", default={})
    succeeded = int(status.get("succeeded") or 0)
    if spec.get("completions") is not None:
        return f"{succeeded}/{int(spec['completions'])}"
    parallelism = int(spec.get("parallelism") or 0)
    if parallelism > 1:
        return f"{succeeded}/1 of {parallelism}"
    return f"{succeeded}/1"


def job_duration(obj: Obj, now: dt.datetime) -> str:
    start = cells.parse_time(cells.get(obj, "status", "startTime"))
    if start is None:
        return ""
    end = cells.parse_time(cells.get(obj, "status", "completionTime")) or now
    return cells.human_duration((end - start).total_seconds())


def _template_cells(pod_spec: Obj, selector: Any) -> Cells:
    names, images = cells.container_cells(pod_spec.get("containers") or [])
    return [names, images, cells.selector_text(selector) if selector is not None else "<none>"]


def job_row(obj: Obj, now: dt.datetime) -> tuple[Cells, Cells]:
    spec = cells.get(obj, "spec", default={})
    return ([cells.name_of(obj), job_status(obj), job_completions(obj), job_duration(obj, now),
             cells.age(obj, now)],
            _template_cells(cells.get(spec, "template", "spec", default={}), spec.get("selector")))


def cronjob_row(obj: Obj, now: dt.datetime) -> tuple[Cells, Cells]:
    spec, status = cells.get(obj, "spec", default={}), cells.get(obj, "status", default={})
    last = status.get("lastScheduleTime")
    job_spec = cells.get(spec, "jobTemplate", "spec", default={})
    return ([cells.name_of(obj), spec.get("schedule") or "", spec.get("timeZone") or "<none>",
             bool(spec.get("suspend")), len(status.get("active") or []),
             cells.since(last, now) if last else "<none>", cells.age(obj, now)],
            _template_cells(cells.get(job_spec, "template", "spec", default={}),
                            job_spec.get("selector")))
