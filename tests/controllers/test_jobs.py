"""The Job controller: pure decisions (jobstate.plan) and the controller over a real API
(LocalClient + SQLite, every controller running) with a stand-in kubelet that runs pods
to an exit code."""

from __future__ import annotations

import asyncio
import time

import pytest

from shoal import timestamps
from shoal.api import errors as api_errors
from shoal.controllers import ControllerOptions, build_manager, jobstate
from shoal.controllers import pods as podutil
from shoal.controllers.jobs import pod_from_template
from shoal.controllers.namespace import ensure_namespaces
from shoal.config import Settings
from tests.controllers.conftest import NODE, KubeletStandIn, eventually

T0 = 1_800_000_000.0


def job(name="work", **spec):
    body = {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"},
            "spec": {"completions": 1, "parallelism": 1, "backoffLimit": 6,
                     "completionMode": "NonIndexed",
                     "template": {"spec": {"restartPolicy": "Never",
                                           "containers": [{"name": "main", "image": "x"}]}}}}
    body["spec"].update(spec)
    return body


def pod(name, phase="Running", exit_code=None, finished=T0, index=None, conditions=(),
        deleting=False, ready=False, restarts=0):
    status = {"phase": phase, "conditions": [dict(c) for c in conditions]}
    if ready:
        status["conditions"].append({"type": "Ready", "status": "True"})
    state = {"running": {}} if exit_code is None else {"terminated": {
        "exitCode": exit_code, "finishedAt": timestamps.format_time(finished)}}
    status["containerStatuses"] = [{"name": "main", "state": state, "restartCount": restarts}]
    meta = {"name": name, "namespace": "default", "uid": f"p-{name}",
            "creationTimestamp": timestamps.format_time(T0 - 100)}
    if index is not None:
        meta["annotations"] = {"batch.kubernetes.io/job-completion-index": str(index)}
    if deleting:
        meta["deletionTimestamp"] = timestamps.format_time(T0)
    return {"metadata": meta, "status": status}


def types(plan):
    return [(c["type"], c["status"], c.get("reason")) for c in plan.status.get("conditions", [])]


# -- pure decisions ---------------------------------------------------------------------


def test_parallelism_bounds_creation_and_completions_bound_the_total():
    p = jobstate.plan(job(completions=5, parallelism=2), [], T0)
    assert p.create == [None, None] and p.status["startTime"] == timestamps.format_time(T0)
    pods = [pod("a", "Succeeded", 0), pod("b", "Succeeded", 0), pod("c", "Succeeded", 0),
            pod("d")]
    p = jobstate.plan(job(completions=5, parallelism=2), pods, T0)
    assert p.create == [None]          # 3 done + 1 running: one more, not two
    p = jobstate.plan(job(completions=5, parallelism=3), pods[:3] + [pod("d"), pod("e")], T0)
    assert p.create == [] and p.status["active"] == 2


def test_success_writes_success_criteria_met_then_complete():
    done = [pod(n, "Succeeded", 0) for n in "ab"]
    p = jobstate.plan(job(completions=2, parallelism=2), done, T0)
    assert types(p) == [("SuccessCriteriaMet", "True", "CompletionsReached"),
                        ("Complete", "True", "CompletionsReached")]
    assert p.status["completionTime"] == timestamps.format_time(T0)
    assert p.status["succeeded"] == 2 and "active" not in p.status
    assert ("Normal", "Completed", "Job completed") in p.events


def test_work_queue_completes_when_one_succeeded_and_none_runs():
    spec = {"completions": None, "parallelism": 3}
    p = jobstate.plan(job(**spec), [pod("a", "Succeeded", 0), pod("b")], T0)
    assert p.create == [] and not types(p)      # b still runs: no new pods, not done
    p = jobstate.plan(job(**spec), [pod("a", "Succeeded", 0), pod("b", "Succeeded", 0)], T0)
    assert ("Complete", "True", "CompletionsReached") in types(p)


def test_backoff_limit_fails_with_failure_target_first_and_deletes_running_pods():
    failed = [pod(n, "Failed", 1) for n in "abc"]
    running = pod("d")
    p = jobstate.plan(job(backoffLimit=2, parallelism=2, completions=5), failed + [running], T0)
    assert types(p) == [("FailureTarget", "True", "BackoffLimitExceeded")]
    assert p.delete == [running] and p.create == []
    # once nothing runs any more the terminal condition follows, with Kubernetes' message
    stored = {**job(backoffLimit=2), "status": p.status}
    p = jobstate.plan(stored, failed + [pod("d", "Failed", 137)], T0 + 1)
    assert types(p)[-1] == ("Failed", "True", "BackoffLimitExceeded")
    assert p.status["conditions"][-1]["message"] == "Job has reached the specified backoff limit"
    assert "completionTime" not in p.status
    assert ("Warning", "BackoffLimitExceeded", "Job has reached the specified backoff limit") in p.events


def test_failed_pods_are_replaced_after_exponential_backoff():
    backoff = jobstate.Backoff(base=10, cap=40)
    one = [pod("a", "Failed", 1, finished=T0)]
    p = jobstate.plan(job(), one, T0 + 3, backoff)
    assert p.create == [] and p.requeue_after == pytest.approx(7)
    assert jobstate.plan(job(), one, T0 + 10, backoff).create == [None]
    three = [pod(n, "Failed", 1, finished=T0 - 30) for n in "ab"] + [pod("c", "Failed", 1, finished=T0)]
    p = jobstate.plan(job(), three, T0 + 39, backoff)       # 3rd failure: 40 s (10, 20, 40)
    assert p.create == [] and p.requeue_after == pytest.approx(1)
    # a success resets the count of failures
    mixed = three + [pod("ok", "Succeeded", 0, finished=T0 + 1), pod("d", "Failed", 1, finished=T0 + 2)]
    assert jobstate.plan(job(completions=3), mixed, T0 + 12, backoff).create == [None]
    assert backoff.delay(10) == 40


def test_on_failure_restarts_count_toward_the_backoff_limit():
    spec = {"backoffLimit": 3}
    j = job(**spec)
    j["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    assert not types(jobstate.plan(j, [pod("a", restarts=2)], T0))
    assert types(jobstate.plan(j, [pod("a", restarts=3)], T0)) == [
        ("FailureTarget", "True", "BackoffLimitExceeded")]


def test_active_deadline_fails_the_job_and_wakes_when_it_runs_out():
    j = job(activeDeadlineSeconds=30)
    j["status"] = {"startTime": timestamps.format_time(T0)}
    p = jobstate.plan(j, [pod("a")], T0 + 10)
    assert p.requeue_after == pytest.approx(20) and not types(p)
    p = jobstate.plan(j, [pod("a")], T0 + 30)
    assert types(p) == [("FailureTarget", "True", "DeadlineExceeded")]
    assert p.status["conditions"][0]["message"] == "Job was active longer than specified deadline"


def test_pod_failure_policy_fail_job_ignore_and_count():
    rules = {"rules": [
        {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]}},
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
        {"action": "Count", "onExitCodes": {"operator": "NotIn", "values": [42]}}]}
    j = job(podFailurePolicy=rules, backoffLimit=0)
    p = jobstate.plan(j, [pod("a", "Failed", 42)], T0)
    # nothing runs any more: the interim and the terminal condition in one write
    assert types(p) == [("FailureTarget", "True", "PodFailurePolicy"),
                        ("Failed", "True", "PodFailurePolicy")]
    assert p.status["conditions"][0]["message"] == (
        "Container main for pod default/a failed with exit code 42 matching FailJob rule at index 0")
    evicted = pod("b", "Failed", 137, conditions=[{"type": "DisruptionTarget", "status": "True"}])
    p = jobstate.plan(j, [evicted], T0)
    assert not types(p) and p.create == [None] and "failed" not in p.status   # ignored: replaced, not counted
    p = jobstate.plan(j, [pod("c", "Failed", 3)], T0)
    assert types(p)[0] == ("FailureTarget", "True", "BackoffLimitExceeded")


def test_indexed_job_creates_free_indexes_and_reports_completed_ones():
    j = job(completions=5, parallelism=3, completionMode="Indexed")
    pods = [pod("a", "Succeeded", 0, index=0), pod("b", "Succeeded", 0, index=2),
            pod("c", index=1), pod("dup", index=1), pod("old", "Succeeded", 0, index=2)]
    p = jobstate.plan(j, pods, T0)
    assert p.status["completedIndexes"] == "0,2" and p.status["succeeded"] == 2
    assert [podutil.meta(v)["name"] for v in p.delete] == ["dup"]
    assert p.create == [3, 4]
    assert jobstate.format_indexes({0, 1, 2, 4, 6, 7}) == "0-2,4,6-7"


def test_indexed_pod_template_carries_its_index():
    j = job(completions=3, completionMode="Indexed")
    j["spec"]["template"]["metadata"] = {"labels": {"app": "x"}}
    made = pod_from_template(j, 2)
    meta = made["metadata"]
    assert meta["name"].startswith("work-2-") and meta["generateName"] == "work-2-"
    assert meta["annotations"]["batch.kubernetes.io/job-completion-index"] == "2"
    assert meta["labels"] == {"app": "x", "batch.kubernetes.io/job-completion-index": "2"}
    assert made["spec"]["hostname"] == "work-2"
    env = made["spec"]["containers"][0]["env"]
    assert env == [{"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {
        "apiVersion": "v1", "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}}]
    assert meta["ownerReferences"][0]["controller"] is True and meta["ownerReferences"][0]["kind"] == "Job"


def test_suspend_deletes_active_pods_and_resume_restarts_the_clock():
    j = job(suspend=True, parallelism=2, completions=4)
    j["status"] = {"startTime": timestamps.format_time(T0 - 500)}
    running = [pod("a"), pod("b")]
    p = jobstate.plan(j, running, T0)
    assert p.delete == running and types(p) == [("Suspended", "True", "JobSuspended")]
    resumed = {**job(parallelism=2, completions=4), "status": p.status}
    p = jobstate.plan(resumed, [], T0 + 60)
    assert types(p) == [("Suspended", "False", "JobResumed")]
    assert p.status["startTime"] == timestamps.format_time(T0 + 60) and p.create == [None, None]


def test_ttl_after_finished():
    j = job(ttlSecondsAfterFinished=100)
    j["status"] = {"conditions": [{"type": "Complete", "status": "True",
                                   "lastTransitionTime": timestamps.format_time(T0)}]}
    p = jobstate.plan(j, [], T0 + 40)
    assert not p.delete_job and p.requeue_after == pytest.approx(60)
    assert jobstate.plan(j, [], T0 + 100).delete_job


# -- the controller over a real API ------------------------------------------------------


class JobKubelet(KubeletStandIn):
    """Runs pods and ends them with an exit code; remembers the most pods active at once."""

    def __init__(self, client):
        super().__init__(client)
        self.max_active = 0

    async def active_pods(self, selector):
        pods = await self.pods(selector=selector)
        active = [p for p in pods if podutil.is_active(p)]
        self.max_active = max(self.max_active, len(active))
        return active

    async def finish(self, pod, exit_code):
        for _ in range(20):
            current = await self.client.get("pods", "default", pod["metadata"]["name"])
            now = timestamps.format_time(time.time())
            current["status"] = {
                "phase": "Succeeded" if exit_code == 0 else "Failed",
                "containerStatuses": [{"name": c["name"], "image": c["image"], "imageID": "",
                                       "ready": False, "restartCount": 0, "started": False,
                                       "state": {"terminated": {"exitCode": exit_code,
                                                                "finishedAt": now}}}
                                      for c in current["spec"]["containers"]]}
            try:
                return await self.client.update_status("pods", current)
            except api_errors.Conflict:
                continue
        raise AssertionError("could not finish the pod")


@pytest.fixture
async def jobs_cluster(api, tmp_path):
    options = ControllerOptions(retry_base=0.005, retry_cap=0.5, namespace_poll=0.1,
                                informer_retry=0.1, job_backoff=jobstate.Backoff(0.2, 1.0))
    await ensure_namespaces(api)
    manager = build_manager(api, Settings(state_dir=tmp_path, node_name=NODE), options)
    kubelet = JobKubelet(api)
    await manager.start()
    kubelet.start()
    try:
        yield api, kubelet
    finally:
        await kubelet.stop()
        await manager.stop()


def api_job(name, **spec):
    body = job(name, **spec)
    del body["metadata"]["uid"]
    return body


async def get_job(client, name):
    return await client.get("jobs.batch", "default", name)


async def test_completions_5_parallelism_2_completes_never_more_than_2_at_once(jobs_cluster):
    client, kubelet = jobs_cluster
    await client.create("jobs.batch", api_job("five", completions=5, parallelism=2))
    selector = "batch.kubernetes.io/job-name=five"

    async def step():
        for p in await kubelet.active_pods(selector):
            await kubelet.finish(p, 0)
        got = await get_job(client, "five")
        return got if jobstate.is_true(got, "Complete") else None

    done = await eventually(step, timeout=20)
    assert kubelet.max_active == 2
    assert done["status"]["succeeded"] == 5 and "active" not in done["status"]
    assert [c["type"] for c in done["status"]["conditions"]] == ["SuccessCriteriaMet", "Complete"]
    pods = await kubelet.pods(selector=selector)
    assert len(pods) == 5 and all(podutil.phase(p) == "Succeeded" for p in pods)
    assert done["metadata"]["labels"]["batch.kubernetes.io/job-name"] == "five"


async def test_failing_job_stops_at_backoff_limit(jobs_cluster):
    client, kubelet = jobs_cluster
    await client.create("jobs.batch", api_job("bad", backoffLimit=2))
    seen = set()

    async def step():
        for p in await kubelet.active_pods("job-name=bad"):
            seen.add(p["metadata"]["name"])
            await kubelet.finish(p, 1)
        got = await get_job(client, "bad")
        return got if jobstate.is_true(got, "Failed") else None

    failed = await eventually(step, timeout=20)
    assert len(seen) == 3                                   # backoffLimit 2: 3 attempts
    assert failed["status"]["failed"] == 3
    cond = failed["status"]["conditions"][-1]
    assert (cond["reason"], cond["message"]) == ("BackoffLimitExceeded",
                                                 "Job has reached the specified backoff limit")
    await asyncio.sleep(0.5)
    assert len(await kubelet.pods(selector="job-name=bad")) == 3    # no more attempts
    items, _ = await client.list("events", "default")
    reasons = [e["reason"] for e in items if e["involvedObject"]["name"] == "bad"]
    assert "BackoffLimitExceeded" in reasons and reasons.count("SuccessfulCreate") == 3


async def test_ttl_deletes_the_finished_job_and_its_pods(jobs_cluster):
    client, kubelet = jobs_cluster
    await client.create("jobs.batch", api_job("brief", ttlSecondsAfterFinished=1))

    async def step():
        for p in await kubelet.active_pods("job-name=brief"):
            await kubelet.finish(p, 0)
        try:
            await get_job(client, "brief")
        except api_errors.NotFound:
            return not await kubelet.pods(selector="job-name=brief")
        return False

    await eventually(step, timeout=15)
