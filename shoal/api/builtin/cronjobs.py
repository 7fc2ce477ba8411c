"""batch/v1 CronJobs: defaults (`SetDefaults_CronJob`) and validation (`ValidateCronJob`):
the schedule in robfig/cron's grammar (`shoal.api.cron`), the time zone against the
IANA database, the concurrency policy, the history limits and the embedded Job template
(validated as a Job's spec under `spec.jobTemplate.spec`). Pure; see the package
docstring.
"""

from __future__ import annotations

import re
from typing import Any

from shoal.api import cron, errors
from shoal.api.builtin import batch
from shoal.api.builtin import fields as f
from shoal.api.builtin.fields import Errs, as_dict, set_default

CONCURRENCY_POLICIES = ("Allow", "Forbid", "Replace")
MAX_NAME_LENGTH = 52
"""A CronJob's name plus "-" and the 11-digit minute stamp must fit a Job's label value."""
_ZONE_CHARS = re.compile(r"^[A-Za-z0-9_+\-/]+$")


def default_cronjob(obj: dict[str, Any]) -> None:
    spec = f.child_dict(obj, "spec")
    if spec is None:
        return
    set_default(spec, "concurrencyPolicy", "Allow")
    set_default(spec, "suspend", False)
    set_default(spec, "successfulJobsHistoryLimit", 3)
    set_default(spec, "failedJobsHistoryLimit", 1)
    job_spec = as_dict(as_dict(spec.get("jobTemplate")).get("spec"))
    if job_spec:
        batch.default_job_spec(job_spec, template_only=True)


def validate_cronjob(obj: dict[str, Any], old: dict[str, Any] | None) -> Errs:
    errs: Errs = []
    name = as_dict(obj.get("metadata")).get("name")
    if isinstance(name, str) and len(name) > MAX_NAME_LENGTH:
        errs.append(errors.invalid("metadata.name", name,
                                   f"must be no more than {MAX_NAME_LENGTH} characters"))
    spec = as_dict(obj.get("spec"))
    zone = spec.get("timeZone")
    errs += validate_schedule(spec.get("schedule"), zone, "spec.schedule")
    if zone is not None:
        errs += validate_time_zone(zone, "spec.timeZone")
    policy = spec.get("concurrencyPolicy")
    if not policy:
        errs.append(errors.required("spec.concurrencyPolicy"))
    else:
        errs += f.one_of("spec.concurrencyPolicy", policy, CONCURRENCY_POLICIES)
    for key in ("startingDeadlineSeconds", "successfulJobsHistoryLimit", "failedJobsHistoryLimit"):
        errs += f.at_least(f"spec.{key}", spec.get(key), 0)
    template = spec.get("jobTemplate")
    if not isinstance(template, dict):
        errs.append(errors.required("spec.jobTemplate"))
        return errs
    errs += f.labels("spec.jobTemplate.metadata.labels",
                     as_dict(template.get("metadata")).get("labels"))
    job_spec = as_dict(template.get("spec"))
    errs += batch.validate_job_spec(job_spec, "spec.jobTemplate.spec", template=True)
    return errs


def validate_schedule(schedule: Any, zone: Any, path: str) -> Errs:
    if schedule is None or schedule == "":
        return [errors.required(path)]
    if not isinstance(schedule, str):
        return []
    try:
        cron.parse(schedule)
    except cron.ScheduleError as exc:
        return [errors.invalid(path, schedule, str(exc))]
    if zone is not None and cron.has_zone_prefix(schedule.strip()):
        return [errors.invalid(path, schedule,
                               "cannot use both timeZone field and TZ or CRON_TZ in schedule")]
    return []


def validate_time_zone(zone: Any, path: str) -> Errs:
    if not isinstance(zone, str):
        return []
    if zone == "":
        return [errors.invalid(path, zone, "timeZone must be nil or non-empty string")]
    if zone.lower() == "local":
        return [errors.invalid(path, zone, "timeZone must be an explicit time zone as defined "
                               "in https://www.iana.org/time-zones")]
    if not _ZONE_CHARS.match(zone):
        return [errors.invalid(path, zone, "unknown time zone " + zone)]
    try:
        cron.load_zone(zone)
    except cron.ScheduleError as exc:
        return [errors.invalid(path, zone, str(exc))]
    return []
