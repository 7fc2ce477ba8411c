"""batch/v1 through the API: defaults, the generated selector, validation messages with
field paths (create and update), and the Job/CronJob tables kubectl prints."""

from __future__ import annotations

import datetime as dt

import pytest

from shoal.api import errors, printers
from shoal.apiserver.local import LocalClient
from tests.api.test_validation import problems

NOW = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
async def api(tmp_path):
    """The real API server's registry over SQLite (defaulting, strategy, validation)."""
    async with LocalClient.open(tmp_path / "store.db") as client:
        yield client


def job(**spec):
    body = {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "pi", "namespace": "default"},
            "spec": {"template": {"spec": {"restartPolicy": "Never",
                                           "containers": [{"name": "main", "image": "busybox"}]}}}}
    body["spec"].update(spec)
    return body


def cronjob(**spec):
    body = {"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "nightly", "namespace": "default"},
            "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": job()["spec"]}}}
    body["spec"].update(spec)
    return body


async def test_create_defaults_and_generates_the_selector(api):
    created = await api.create("jobs.batch", job())
    uid, spec = created["metadata"]["uid"], created["spec"]
    assert (spec["completions"], spec["parallelism"], spec["backoffLimit"]) == (1, 1, 6)
    assert (spec["completionMode"], spec["suspend"], spec["podReplacementPolicy"]) == (
        "NonIndexed", False, "TerminatingOrFailed")
    assert spec["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    expected = {"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": "pi",
                "controller-uid": uid, "job-name": "pi"}
    assert spec["template"]["metadata"]["labels"] == expected
    assert created["metadata"]["labels"] == expected
    assert created["status"] == {}
    with pytest.raises(errors.Invalid) as exc:
        await api.create("jobs.batch", {**job(selector={"matchLabels": {"a": "b"}}),
                                        "metadata": {"name": "pi2", "namespace": "default"}})
    assert "spec.selector: Invalid value" in str(exc.value) and "not auto-generated" in str(exc.value)


async def test_cronjob_defaults(api):
    created = await api.create("cronjobs.batch", cronjob())
    spec = created["spec"]
    assert (spec["concurrencyPolicy"], spec["suspend"], spec["successfulJobsHistoryLimit"],
            spec["failedJobsHistoryLimit"]) == ("Allow", False, 3, 1)
    assert "completions" not in spec["jobTemplate"]["spec"]    # templates keep Job defaults out


@pytest.mark.parametrize("spec, message", [
    ({"template": {"spec": {"containers": [{"name": "m", "image": "x"}]}}},
     'spec.template.spec.restartPolicy: Unsupported value: "Always": supported values: '
     '"OnFailure", "Never"'),
    ({"parallelism": -1}, "spec.parallelism: Invalid value: -1: must be greater than or equal to 0"),
    ({"backoffLimit": -2}, "spec.backoffLimit: Invalid value: -2: must be greater than or equal to 0"),
    ({"completionMode": "Sometimes"},
     'spec.completionMode: Unsupported value: "Sometimes": supported values: "NonIndexed", "Indexed"'),
    ({"completionMode": "Indexed", "completions": None, "parallelism": 2},
     "spec.completions: Required value: when completion mode is Indexed"),
    ({"podFailurePolicy": {"rules": [{"action": "Explode", "onExitCodes": {
        "operator": "In", "values": [1]}}]}},
     'spec.podFailurePolicy.rules[0].action: Unsupported value: "Explode": supported values: '
     '"FailJob", "FailIndex", "Ignore", "Count"'),
    ({"podFailurePolicy": {"rules": [{"action": "FailJob", "onExitCodes": {
        "operator": "In", "values": [0, 3]}}]}},
     "spec.podFailurePolicy.rules[0].onExitCodes.values[0]: Invalid value: 0: must not be 0 "
     "for the In operator"),
    ({"podFailurePolicy": {"rules": [{"action": "FailJob", "onExitCodes": {
        "containerName": "nope", "operator": "In", "values": [3]}}]}},
     'spec.podFailurePolicy.rules[0].onExitCodes.containerName: Invalid value: "nope": must be '
     "one of the container or initContainer names in the pod template"),
    ({"podFailurePolicy": {"rules": [{"action": "Ignore"}]}},
     'spec.podFailurePolicy.rules[0]: Invalid value: "": specifying one of OnExitCodes and '
     "OnPodConditions is required"),
    ({"backoffLimitPerIndex": 2}, "spec.backoffLimitPerIndex: Forbidden: not supported by this "
     "server (shoal)"),
])
def test_job_validation_names_the_field(spec, message):
    body = job()
    body["metadata"]["uid"] = "u1"
    body["spec"].update(spec)
    body["spec"].setdefault("selector", {"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}})
    body["spec"]["template"].setdefault("metadata", {"labels": {
        "batch.kubernetes.io/controller-uid": "u1"}})
    assert message in problems(body)


def test_pod_failure_policy_needs_restart_policy_never():
    body = job(podFailurePolicy={"rules": [{"action": "Count", "onPodConditions": [
        {"type": "DisruptionTarget"}]}]}, selector={"matchLabels": {"a": "b"}}, manualSelector=True)
    body["spec"]["template"]["metadata"] = {"labels": {"a": "b"}}
    body["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    assert problems(body) == ['spec.template.spec.restartPolicy: Invalid value: "OnFailure": '
                              'only "Never" is supported when podFailurePolicy is specified']


async def test_job_updates_keep_the_template_and_selector(api):
    created = await api.create("jobs.batch", job())
    changed = {**created, "spec": {**created["spec"], "completions": 3}}
    with pytest.raises(errors.Invalid) as exc:
        await api.update("jobs.batch", changed)
    assert "spec.completions: Invalid value: 3: field is immutable" in str(exc.value)
    template = dict(created["spec"]["template"])
    template["spec"] = {**template["spec"], "containers": [{"name": "main", "image": "other"}]}
    with pytest.raises(errors.Invalid) as exc:
        await api.update("jobs.batch", {**created, "spec": {**created["spec"], "template": template}})
    assert "spec.template: Invalid value" in str(exc.value)
    resumed = await api.update("jobs.batch", {**created, "spec": {**created["spec"], "suspend": True}})
    assert resumed["spec"]["suspend"] is True


@pytest.mark.parametrize("spec, message", [
    ({"schedule": "0 3 * *"}, 'spec.schedule: Invalid value: "0 3 * *": expected exactly 5 '
     "fields, found 4: [0 3 * *]"),
    ({"schedule": ""}, "spec.schedule: Required value"),
    ({"schedule": "TZ=UTC 0 3 * * *", "timeZone": "Europe/Paris"},
     'spec.schedule: Invalid value: "TZ=UTC 0 3 * * *": cannot use both timeZone field and TZ '
     "or CRON_TZ in schedule"),
    ({"timeZone": "Local"}, 'spec.timeZone: Invalid value: "Local": timeZone must be an explicit '
     "time zone as defined in https://www.iana.org/time-zones"),
    ({"concurrencyPolicy": "Sometimes"}, 'spec.concurrencyPolicy: Unsupported value: "Sometimes": '
     'supported values: "Allow", "Forbid", "Replace"'),
    ({"startingDeadlineSeconds": -5},
     "spec.startingDeadlineSeconds: Invalid value: -5: must be greater than or equal to 0"),
    ({"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "m", "image": "x"}]}}}}},
     'spec.jobTemplate.spec.template.spec.restartPolicy: Unsupported value: "Always": '
     'supported values: "OnFailure", "Never"'),
])
def test_cronjob_validation_names_the_field(spec, message):
    assert message in problems(cronjob(**spec))


def test_cronjob_name_leaves_room_for_the_minute_suffix():
    body = cronjob()
    body["metadata"]["name"] = "n" * 53
    assert problems(body) == [f'metadata.name: Invalid value: "{"n" * 53}": must be no more '
                              "than 52 characters"]
    assert problems(cronjob(timeZone="America/New_York", schedule="@every 1h30m")) == []


def _at(seconds: int) -> str:
    return (NOW - dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_job_table_as_kubectl_prints_it():
    def cells(**status):
        obj = {**job(completions=5, parallelism=2), "status": status}
        obj["metadata"] = {**obj["metadata"], "creationTimestamp": _at(600)}
        return printers.table("Job", [obj], wide=False, now=NOW)["rows"][0]["cells"]

    table = printers.table("Job", [], now=NOW)
    assert [c["name"].upper() for c in table["columnDefinitions"] if not c["priority"]] == [
        "NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    assert cells(startTime=_at(90), succeeded=3, active=2) == ["pi", "Running", "3/5", "90s", "10m"]
    done = [{"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}]
    assert cells(startTime=_at(300), completionTime=_at(60), succeeded=5, conditions=done)[1:4] == [
        "Complete", "5/5", "4m"]
    target = [{"type": "FailureTarget", "status": "True"}]
    assert cells(startTime=_at(5), conditions=target)[1] == "FailureTarget"
    assert cells()[1:4] == ["Running", "0/5", ""]
    queue = {**job(completions=None, parallelism=3), "status": {}}
    queue["spec"].pop("completions", None)
    assert printers.table("Job", [queue], now=NOW)["rows"][0]["cells"][2] == "0/1 of 3"


def test_cronjob_table_as_kubectl_prints_it():
    obj = {**cronjob(timeZone="Europe/Paris"), "status": {"active": [{"name": "a"}],
                                                           "lastScheduleTime": _at(30)}}
    obj["metadata"] = {**obj["metadata"], "creationTimestamp": _at(7200)}
    table = printers.table("CronJob", [obj], wide=False, now=NOW)
    assert [c["name"] for c in table["columnDefinitions"]] == [
        "Name", "Schedule", "Timezone", "Suspend", "Active", "Last Schedule", "Age"]
    assert table["rows"][0]["cells"] == ["nightly", "0 3 * * *", "Europe/Paris", False, 1, "30s", "120m"]
