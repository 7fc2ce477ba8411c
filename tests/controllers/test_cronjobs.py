"""CronJobs: the schedule grammar, the missed-run rules (pure), and the controller over a
real API with a test clock driving the real schedule path."""

from __future__ import annotations

import datetime as dt

import pytest

from shoal import timestamps
from shoal.api import cron, errors as api_errors, validation
from shoal.controllers import engine
from shoal.controllers.cronjobs import CronJobController
from shoal.controllers.cronplan import history_to_delete, job_from_template, job_name, most_recent_schedule
from shoal.controllers.events import EventRecorder
from shoal.controllers.namespace import ensure_namespaces
from tests.controllers.conftest import eventually

UTC = dt.timezone.utc


def at(text: str) -> dt.datetime:
    return timestamps.parse_time(text)


def cronjob(schedule="* * * * *", created="2026-01-01T00:00:30Z", last=None, **spec):
    body = {"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "tick", "namespace": "default", "uid": "cj-uid",
                         "creationTimestamp": created},
            "spec": {"schedule": schedule, "concurrencyPolicy": "Allow",
                     "jobTemplate": {"metadata": {"labels": {"app": "tick"}},
                                     "spec": {"template": {"spec": {
                                         "restartPolicy": "Never",
                                         "containers": [{"name": "c", "image": "x"}]}}}},
                     **spec},
            "status": {}}
    if last:
        body["status"]["lastScheduleTime"] = last
    return body


# -- schedules --------------------------------------------------------------------------


@pytest.mark.parametrize("schedule, after, expected", [
    ("*/15 * * * *", "2026-01-01T00:07:00Z", "2026-01-01T00:15:00Z"),
    ("0 9 * * MON-FRI", "2026-01-02T10:00:00Z", "2026-01-05T09:00:00Z"),   # Fri -> Mon
    ("30 4 1,15 * *", "2026-01-02T00:00:00Z", "2026-01-15T04:30:00Z"),
    ("@hourly", "2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z"),
    ("@weekly", "2026-01-01T00:00:00Z", "2026-01-04T00:00:00Z"),           # Sunday
    ("0 0 ? JAN *", "2026-01-31T12:00:00Z", "2027-01-01T00:00:00Z"),
    ("5/20 * * * *", "2026-01-01T00:06:00Z", "2026-01-01T00:25:00Z"),
    ("@every 90s", "2026-01-01T00:00:00Z", "2026-01-01T00:01:30Z"),
])
def test_next_times(schedule, after, expected):
    assert cron.parse(schedule).next_after(at(after)) == at(expected)


def test_time_zone_follows_daylight_saving():
    berlin = cron.load_zone("Europe/Berlin")
    # 09:00 Berlin is 08:00 UTC in winter, 07:00 UTC in summer
    s = cron.parse("0 9 * * *")
    assert s.next_after(at("2026-03-28T10:00:00Z"), berlin) == at("2026-03-29T07:00:00Z")
    assert s.next_after(at("2026-01-10T10:00:00Z"), berlin) == at("2026-01-11T08:00:00Z")
    assert cron.parse("CRON_TZ=Europe/Berlin 0 9 * * *").next_after(
        at("2026-01-10T10:00:00Z")) == at("2026-01-11T08:00:00Z")


@pytest.mark.parametrize("schedule, message", [
    ("bad", "expected exactly 5 fields, found 1: [bad]"),
    ("* * * * * *", "expected exactly 5 fields, found 6: [* * * * * *]"),
    ("60 * * * *", "end of range (60) above maximum (59): 60"),
    ("0 0 0 * *", "beginning of range (0) below minimum (1): 0"),
    ("0 0 L * *", 'failed to parse int from L: strconv.Atoi: parsing "L": invalid syntax'),
    ("*/0 * * * *", "step of range should be a positive number: */0"),
    ("5-1 * * * *", "beginning of range (5) beyond end of range (1): 5-1"),
    ("@fortnightly", "unrecognized descriptor: @fortnightly"),
    ("0 0 * * 7", "end of range (7) above maximum (6): 7"),
])
def test_malformed_schedules_are_refused_with_robfigs_words(schedule, message):
    with pytest.raises(cron.ScheduleError) as exc:
        cron.parse(schedule)
    assert str(exc.value) == message


# -- missed runs ------------------------------------------------------------------------


def test_first_run_is_the_first_time_after_creation():
    cj = cronjob()
    assert most_recent_schedule(cj, cron.parse("* * * * *"), at("2026-01-01T00:00:59Z"), UTC).scheduled is None
    missed = most_recent_schedule(cj, cron.parse("* * * * *"), at("2026-01-01T00:01:05Z"), UTC)
    assert missed.scheduled == at("2026-01-01T00:01:00Z") and missed.count == 1


def test_after_a_long_outage_one_catch_up_run_and_too_many_missed_are_counted():
    cj = cronjob(last="2026-01-01T00:01:00Z")
    missed = most_recent_schedule(cj, cron.parse("* * * * *"), at("2026-01-01T05:03:10Z"), UTC)
    assert missed.scheduled == at("2026-01-01T05:03:00Z")   # only the most recent runs
    assert missed.count == 302                              # 00:02 .. 05:03
    few = most_recent_schedule(cj, cron.parse("*/10 * * * *"), at("2026-01-01T00:35:00Z"), UTC)
    assert few.scheduled == at("2026-01-01T00:30:00Z") and few.count == 3


def test_starting_deadline_narrows_the_window():
    cj = cronjob(last="2026-01-01T00:01:00Z", startingDeadlineSeconds=200)
    missed = most_recent_schedule(cj, cron.parse("* * * * *"), at("2026-01-01T05:03:10Z"), UTC)
    assert missed.scheduled == at("2026-01-01T05:03:00Z") and missed.count == 4
    hourly = most_recent_schedule(cronjob(last="2026-01-01T00:00:00Z", startingDeadlineSeconds=60),
                                  cron.parse("0 * * * *"), at("2026-01-01T03:30:00Z"), UTC)
    assert hourly.scheduled is None             # 03:00 was due but is past the deadline


def test_job_names_and_template():
    cj = cronjob()
    scheduled = at("2026-01-01T00:01:00Z")
    assert job_name(cj, scheduled) == f"tick-{int(scheduled.timestamp()) // 60}"
    body = job_from_template(cj, scheduled, cron.load_zone("Europe/Berlin"))
    assert body["metadata"]["labels"] == {"app": "tick"}
    assert body["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"] == \
        "2026-01-01T01:01:00+01:00"
    ref = body["metadata"]["ownerReferences"][0]
    assert (ref["kind"], ref["uid"], ref["controller"]) == ("CronJob", "cj-uid", True)


def test_history_limits_delete_the_oldest_finished_jobs():
    def finished(name, kind, start):
        return {"metadata": {"name": name}, "status": {
            "startTime": start, "conditions": [{"type": kind, "status": "True"}]}}

    jobs = [finished("s1", "Complete", "2026-01-01T00:01:00Z"),
            finished("s3", "Complete", "2026-01-01T00:03:00Z"),
            finished("s2", "Complete", "2026-01-01T00:02:00Z"),
            finished("f1", "Failed", "2026-01-01T00:01:30Z"),
            finished("f2", "Failed", "2026-01-01T00:02:30Z"),
            {"metadata": {"name": "running"}, "status": {}}]
    assert [j["metadata"]["name"] for j in history_to_delete(jobs, 2, 1)] == ["s1", "f1"]


# -- the controller, real API, test clock -------------------------------------------------


class Clock:
    def __init__(self, start: str) -> None:
        self.now = at(start).timestamp()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def cron_cluster(api):
    await ensure_namespaces(api)
    manager = engine.Manager(api, informer_retry_delay=0.1)
    created = at((await api.create("namespaces", {
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "probe"}}))
        ["metadata"]["creationTimestamp"])
    clock = Clock(timestamps.format_time(created))
    controller = CronJobController(manager, EventRecorder(api, "cronjob-controller"), clock=clock,
                                   zone=UTC)
    manager.add(controller.controller())
    await manager.start()
    try:
        yield api, manager, clock
    finally:
        await manager.stop()


async def jobs_of(client):
    items, _ = await client.list("jobs.batch", "default")
    return sorted(items, key=lambda j: j["metadata"]["name"])


async def finish(client, name, kind="Complete"):
    job = await client.get("jobs.batch", "default", name)
    now = timestamps.now()
    job["status"] = {"startTime": now, "conditions": [
        {"type": kind, "status": "True", "lastTransitionTime": now}]}
    if kind == "Complete":
        job["status"]["completionTime"] = now
    await client.update_status("jobs.batch", job)


async def test_each_minute_one_job_and_forbid_waits_for_the_active_one(cron_cluster):
    client, manager, clock = cron_cluster
    created = await client.create("cronjobs.batch", {
        **{k: v for k, v in cronjob(concurrencyPolicy="Forbid").items() if k != "status"},
        "metadata": {"name": "tick", "namespace": "default"}})
    start = at(created["metadata"]["creationTimestamp"])
    minute = (start + dt.timedelta(minutes=1)).replace(second=0)
    wake = manager.controller("cronjob")

    async def tick(seconds_after_minute: float, minutes: int = 0):
        clock.now = (minute + dt.timedelta(minutes=minutes, seconds=seconds_after_minute)).timestamp()
        wake.enqueue(engine.Request("default", "tick"))
        await eventually(lambda: _idle(manager))

    await tick(-5)
    assert await jobs_of(client) == []
    await tick(1)
    (first,) = await jobs_of(client)
    assert first["metadata"]["name"] == f"tick-{int(minute.timestamp()) // 60}"
    cj = await client.get("cronjobs.batch", "default", "tick")
    assert cj["status"]["lastScheduleTime"] == timestamps.format_time(minute)
    assert [r["name"] for r in cj["status"]["active"]] == [first["metadata"]["name"]]

    await tick(1, minutes=1)                    # Forbid: the first still runs
    assert len(await jobs_of(client)) == 1
    items, _ = await client.list("events", "default")
    assert "JobAlreadyActive" in [e["reason"] for e in items]

    await finish(client, first["metadata"]["name"])
    await tick(2, minutes=1)                    # the due time still runs once it is free
    jobs = await jobs_of(client)
    assert len(jobs) == 2
    cj = await client.get("cronjobs.batch", "default", "tick")
    assert cj["status"]["lastSuccessfulTime"]
    assert [r["name"] for r in cj["status"]["active"]] == [jobs[1]["metadata"]["name"]]


async def test_replace_deletes_the_running_job(cron_cluster):
    client, manager, clock = cron_cluster
    created = await client.create("cronjobs.batch", {
        **{k: v for k, v in cronjob(concurrencyPolicy="Replace").items() if k != "status"},
        "metadata": {"name": "tick", "namespace": "default"}})
    minute = (at(created["metadata"]["creationTimestamp"]) + dt.timedelta(minutes=1)).replace(second=0)
    wake = manager.controller("cronjob")
    for n in range(2):
        clock.now = (minute + dt.timedelta(minutes=n, seconds=1)).timestamp()
        wake.enqueue(engine.Request("default", "tick"))
        await eventually(lambda: _idle(manager))

    async def only_second():
        names = [j["metadata"]["name"] for j in await jobs_of(client)
                 if not j["metadata"].get("deletionTimestamp")]
        return names == [f"tick-{int(minute.timestamp()) // 60 + 1}"]

    await eventually(only_second)


async def test_suspended_cronjob_starts_nothing(cron_cluster):
    client, manager, clock = cron_cluster
    created = await client.create("cronjobs.batch", {
        **{k: v for k, v in cronjob(suspend=True).items() if k != "status"},
        "metadata": {"name": "tick", "namespace": "default"}})
    clock.now = at(created["metadata"]["creationTimestamp"]).timestamp() + 180
    manager.controller("cronjob").enqueue(engine.Request("default", "tick"))
    await eventually(lambda: _idle(manager))
    assert await jobs_of(client) == []


async def _idle(manager) -> bool:
    return manager.idle()


def test_bad_schedule_and_zone_are_refused_at_the_api_with_the_field_path():
    bad = cronjob(schedule="*/5 * * *")
    with pytest.raises(api_errors.Invalid) as exc:
        validation.validate(bad)
    assert 'spec.schedule: Invalid value: "*/5 * * *": expected exactly 5 fields, found 4' in str(exc.value)
    with pytest.raises(api_errors.Invalid) as exc:
        validation.validate(cronjob(timeZone="Mars/Olympus"))
    assert 'spec.timeZone: Invalid value: "Mars/Olympus": unknown time zone Mars/Olympus' in str(exc.value)


async def test_after_hours_down_one_catch_up_job_and_an_event(cron_cluster):
    """What a daemon restart looks like to the controller: the clock jumped 3 hours past
    the last run. Kubernetes starts one Job for the most recent time, not 180."""
    client, manager, clock = cron_cluster
    created = await client.create("cronjobs.batch", {
        **{k: v for k, v in cronjob().items() if k != "status"},
        "metadata": {"name": "tick", "namespace": "default"}})
    start = at(created["metadata"]["creationTimestamp"])
    clock.now = (start + dt.timedelta(hours=3)).timestamp()
    manager.controller("cronjob").enqueue(engine.Request("default", "tick"))
    await eventually(lambda: _idle(manager))
    (job,) = await jobs_of(client)
    due = (start + dt.timedelta(hours=3)).replace(second=0)
    assert job["metadata"]["name"] == f"tick-{int(due.timestamp()) // 60}"
    items, _ = await client.list("events", "default")
    missed = [e for e in items if e["reason"] == "TooManyMissedTimes"]
    assert missed and missed[0]["message"].startswith("too many missed start times: 180.")
    # looking again at the same moment starts nothing more
    manager.controller("cronjob").enqueue(engine.Request("default", "tick"))
    await eventually(lambda: _idle(manager))
    assert len(await jobs_of(client)) == 1
