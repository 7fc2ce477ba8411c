"""Jobs and CronJobs end to end: real kubectl against a real daemon (real runc pods).

One daemon for the module. What a user sees: `kubectl create job` / `wait` / `get jobs`,
a Job of 5 completions at parallelism 2 never running more than 2 pods, a failing Job
stopping at its backoff limit after the back-off delay, a CronJob on the real
every-minute schedule running twice while a Forbid one waits, and a malformed schedule
refused with the field path.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from shoal import timestamps
from tests.daemon_harness import ShoalInstance, wait_for


@pytest.fixture(scope="module")
def shoal(tmp_path_factory):
    instance = ShoalInstance(tmp_path_factory.mktemp("jobs"))
    instance.shoal("image", "bootstrap", "busybox", "--busybox")
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()


def kjson(shoal: ShoalInstance, *args: str) -> dict:
    return json.loads(shoal.kubectl("get", *args, "-o", "json").stdout)


def job_yaml(name: str, script: str, **spec: object) -> str:
    extra = "".join(f"  {k}: {json.dumps(v)}\n" for k, v in spec.items())
    return f"""apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
spec:
{extra}  template:
    spec:
      restartPolicy: Never
      containers:
      - name: main
        image: busybox
        imagePullPolicy: IfNotPresent
        command: ["sh", "-c", {json.dumps(script)}]
"""


def cronjob_yaml(name: str, schedule: str, script: str, policy: str = "Allow") -> str:
    return f"""apiVersion: batch/v1
kind: CronJob
metadata:
  name: {name}
spec:
  schedule: {json.dumps(schedule)}
  concurrencyPolicy: {policy}
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
          - name: main
            image: busybox
            imagePullPolicy: IfNotPresent
            command: ["sh", "-c", {json.dumps(script)}]
"""


def condition(obj: dict, kind: str) -> dict | None:
    for cond in obj.get("status", {}).get("conditions") or []:
        if cond["type"] == kind and cond["status"] == "True":
            return cond
    return None


def test_kubectl_create_job_wait_and_get_jobs(shoal):
    shoal.kubectl("create", "job", "hello", "--image=busybox", "--", "sh", "-c", "echo hello")
    shoal.kubectl("wait", "--for=condition=complete", "job/hello", "--timeout=60s")
    out = shoal.kubectl("get", "jobs").stdout.splitlines()
    assert out[0].split() == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    row = next(line.split() for line in out if line.startswith("hello "))
    assert row[1:3] == ["Complete", "1/1"]
    job = kjson(shoal, "job", "hello")
    assert [c["type"] for c in job["status"]["conditions"]] == ["SuccessCriteriaMet", "Complete"]
    assert job["spec"]["selector"] == {"matchLabels": {
        "batch.kubernetes.io/controller-uid": job["metadata"]["uid"]}}
    (pod,) = kjson(shoal, "pods", "-l", "job-name=hello")["items"]
    assert pod["status"]["phase"] == "Succeeded"
    assert pod["metadata"]["ownerReferences"][0]["uid"] == job["metadata"]["uid"]
    # deleting the Job takes its pods with it (the garbage collector follows the owner)
    shoal.kubectl("delete", "job", "hello")
    wait_for(lambda: not kjson(shoal, "pods", "-l", "job-name=hello")["items"], 30,
             what="the Job's pods deleted")


def test_completions_5_parallelism_2_never_runs_more_than_2(shoal):
    shoal.kubectl("apply", "-f", "-", input=job_yaml("five", "sleep 2", completions=5, parallelism=2))
    most = 0
    stop = threading.Event()

    def watch() -> None:
        nonlocal most
        while not stop.is_set():
            pods = kjson(shoal, "pods", "-l", "job-name=five")["items"]
            running = [p for p in pods if p["status"].get("phase") not in ("Succeeded", "Failed")]
            most = max(most, len(running))
            time.sleep(0.2)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        shoal.kubectl("wait", "--for=condition=complete", "job/five", "--timeout=120s", timeout=130)
    finally:
        stop.set()
        watcher.join()
    assert most == 2
    job = kjson(shoal, "job", "five")
    assert job["status"]["succeeded"] == 5 and not job["status"].get("active")
    pods = kjson(shoal, "pods", "-l", "job-name=five")["items"]
    assert len(pods) == 5 and {p["status"]["phase"] for p in pods} == {"Succeeded"}
    row = next(line for line in shoal.kubectl("get", "jobs").stdout.splitlines()
               if line.startswith("five "))
    assert row.split()[1:3] == ["Complete", "5/5"]


def test_failing_job_stops_at_backoff_limit_after_the_backoff(shoal):
    shoal.kubectl("apply", "-f", "-", input=job_yaml("doomed", "exit 3", backoffLimit=1))
    shoal.kubectl("wait", "--for=condition=failed", "job/doomed", "--timeout=90s", timeout=100)
    job = kjson(shoal, "job", "doomed")
    failed = condition(job, "Failed")
    assert failed["reason"] == "BackoffLimitExceeded"
    assert failed["message"] == "Job has reached the specified backoff limit"
    assert condition(job, "FailureTarget")["reason"] == "BackoffLimitExceeded"
    assert job["status"]["failed"] == 2 and "completionTime" not in job["status"]
    pods = sorted(kjson(shoal, "pods", "-l", "job-name=doomed")["items"],
                  key=lambda p: p["metadata"]["creationTimestamp"])
    assert len(pods) == 2 and {p["status"]["phase"] for p in pods} == {"Failed"}
    # the replacement waited out the first back-off (10 s after the first failure)
    first_end = pods[0]["status"]["containerStatuses"][0]["state"]["terminated"]["finishedAt"]
    gap = _seconds(pods[1]["metadata"]["creationTimestamp"]) - _seconds(first_end)
    assert 9 <= gap <= 15, gap
    time.sleep(2)
    assert len(kjson(shoal, "pods", "-l", "job-name=doomed")["items"]) == 2
    row = next(line for line in shoal.kubectl("get", "jobs").stdout.splitlines()
               if line.startswith("doomed "))
    assert row.split()[1:3] == ["Failed", "0/1"]


def test_malformed_schedule_is_refused_with_the_field_path(shoal):
    r = shoal.kubectl("apply", "-f", "-", input=cronjob_yaml("broken", "*/5 * * *", "true"),
                      check=False)
    assert r.returncode != 0
    assert 'spec.schedule: Invalid value: "*/5 * * *": expected exactly 5 fields, found 4: ' \
           "[*/5 * * *]" in r.stderr
    r = shoal.kubectl("create", "cronjob", "broken", "--image=busybox", "--schedule=61 * * * *",
                      check=False)
    assert 'spec.schedule: Invalid value: "61 * * * *": end of range (61) above maximum (59)' in r.stderr


def test_cronjob_every_minute_runs_twice_and_forbid_waits(shoal):
    shoal.kubectl("apply", "-f", "-", input=cronjob_yaml("tick", "* * * * *", "date"))
    shoal.kubectl("apply", "-f", "-", input=cronjob_yaml("slow", "* * * * *", "sleep 600", "Forbid"))
    shoal.kubectl("create", "job", "by-hand", "--from=cronjob/tick")
    shoal.kubectl("wait", "--for=condition=complete", "job/by-hand", "--timeout=60s")

    def tick_jobs() -> list[dict]:
        return [j for j in kjson(shoal, "jobs")["items"]
                if j["metadata"]["name"].startswith("tick-")]

    jobs = wait_for(lambda: (lambda js: js if len(js) >= 2 else None)(tick_jobs()), 150,
                    interval=2, what="two scheduled runs of tick")
    minutes = sorted(int(j["metadata"]["name"].rsplit("-", 1)[1]) for j in jobs)
    assert minutes[1] - minutes[0] == 1                   # one Job per scheduled minute
    for j in jobs:
        shoal.kubectl("wait", "--for=condition=complete", f"job/{j['metadata']['name']}",
                      "--timeout=60s")
    cj = kjson(shoal, "cronjob", "tick")
    assert cj["status"]["lastScheduleTime"] and cj["status"].get("lastSuccessfulTime")
    slow = [j for j in kjson(shoal, "jobs")["items"] if j["metadata"]["name"].startswith("slow-")]
    assert len(slow) == 1                                   # Forbid: the first still runs
    events = kjson(shoal, "events", "--field-selector", "involvedObject.name=slow")["items"]
    assert "JobAlreadyActive" in {e["reason"] for e in events}
    assert [r["name"] for r in kjson(shoal, "cronjob", "slow")["status"]["active"]] == \
        [slow[0]["metadata"]["name"]]
    header = shoal.kubectl("get", "cronjobs").stdout.splitlines()[0].split()
    assert header == ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST", "SCHEDULE", "AGE"]
    shoal.kubectl("delete", "cronjob", "slow", "tick")
    wait_for(lambda: not [j for j in kjson(shoal, "jobs")["items"]
                          if j["metadata"]["name"].startswith(("slow-", "tick-", "by-hand"))],
             60, what="the CronJobs' Jobs deleted with them")


def _seconds(stamp: str) -> float:
    return timestamps.parse_time(stamp).timestamp()


def test_meshed_job_completes_when_its_main_container_exits(shoal):
    """Kubernetes' old problem: a Job's sidecar never exits. The injected istio-proxy is a
    native sidecar (an init container with restartPolicy Always), which the node agent
    stops once the Job's own containers are done, so the pod and the Job complete."""
    shoal.kubectl("create", "namespace", "meshed")
    shoal.kubectl("label", "namespace", "meshed", "istio-injection=enabled")
    shoal.kubectl("apply", "-n", "meshed", "-f", "-", input=job_yaml("meshed", "echo done"))
    shoal.kubectl("wait", "-n", "meshed", "--for=condition=complete", "job/meshed",
                  "--timeout=90s", timeout=100)
    (pod,) = kjson(shoal, "pods", "-n", "meshed", "-l", "job-name=meshed")["items"]
    (sidecar,) = [c for c in pod["spec"].get("initContainers") or [] if c["name"] == "istio-proxy"]
    assert sidecar["restartPolicy"] == "Always"
    assert pod["status"]["phase"] == "Succeeded"
    proxy = next(s for s in pod["status"]["initContainerStatuses"] if s["name"] == "istio-proxy")
    assert "terminated" in proxy["state"]


def test_indexed_job_pods_see_their_index_and_hostname(shoal):
    # each pod succeeds only if the downward-API index and its hostname agree
    script = 'test -n "$JOB_COMPLETION_INDEX" && test "$(hostname)" = "idx-$JOB_COMPLETION_INDEX"'
    shoal.kubectl("apply", "-f", "-", input=job_yaml("idx", script, completions=3, parallelism=3,
                                                      completionMode="Indexed"))
    shoal.kubectl("wait", "--for=condition=complete", "job/idx", "--timeout=90s", timeout=100)
    job = kjson(shoal, "job", "idx")
    assert job["status"]["completedIndexes"] == "0-2" and job["status"]["succeeded"] == 3
    pods = kjson(shoal, "pods", "-l", "job-name=idx")["items"]
    indexes = sorted(p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
                     for p in pods)
    assert indexes == ["0", "1", "2"] and {p["status"]["phase"] for p in pods} == {"Succeeded"}
