"""Pod phase (the kubelet's getPhase), conditions and container state rendering."""

import datetime as dt

from shoal.node import status
from shoal.node.status import ContainerView, Terminated

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def running(name="a"):
    return ContainerView(name, "busybox", running_since=NOW, ready=True, started=True, container_id="x")


def exited(code, name="a"):
    return ContainerView(name, "busybox", terminated=Terminated(code, status.terminated_reason(code, False),
                                                                NOW, NOW, "x"))


def test_phase_table():
    assert status.pod_phase("Always", [], [running()], initialized=True, init_failed=False) == "Running"
    assert status.pod_phase("Never", [], [exited(0)], initialized=True, init_failed=False) == "Succeeded"
    assert status.pod_phase("Never", [], [exited(1), exited(0, "b")], initialized=True, init_failed=False) == "Failed"
    assert status.pod_phase("OnFailure", [], [exited(1)], initialized=True, init_failed=False) == "Running"
    assert status.pod_phase("Always", [], [running()], initialized=False, init_failed=False) == "Pending"
    waiting = ContainerView("a", "busybox", waiting_reason="ErrImagePull")
    assert status.pod_phase("Always", [], [waiting], initialized=True, init_failed=False) == "Pending"
    backoff = ContainerView("a", "busybox", waiting_reason="CrashLoopBackOff", last=exited(1).terminated)
    assert status.pod_phase("Always", [], [backoff], initialized=True, init_failed=False) == "Running"
    assert status.pod_phase("Never", [], [], initialized=False, init_failed=True) == "Failed"


def test_container_status_shapes():
    oom = Terminated(137, status.terminated_reason(137, True), NOW, NOW, "cid")
    view = ContainerView("a", "busybox", restart_count=2, waiting_reason="CrashLoopBackOff",
                         waiting_message="back-off 20s", last=oom)
    out = view.to_status()
    assert out["state"] == {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 20s"}}
    assert out["lastState"]["terminated"]["reason"] == "OOMKilled"
    assert out["lastState"]["terminated"]["containerID"] == "shoal://cid"
    assert out["restartCount"] == 2 and out["ready"] is False


def test_conditions_keep_transition_time():
    old = status.merge_conditions(status.conditions(initialized=True, containers_ready=False), None, "T1")
    new = status.merge_conditions(status.conditions(initialized=True, containers_ready=True), old, "T2")
    by = {c["type"]: c for c in new}
    assert by["Initialized"]["lastTransitionTime"] == "T1"
    assert by["Ready"]["lastTransitionTime"] == "T2" and by["Ready"]["status"] == "True"


def test_qos_class():
    guaranteed = {"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"},
                                                "requests": {"cpu": "1", "memory": "1Gi"}}}]}
    burstable = {"containers": [{"resources": {"requests": {"cpu": "100m"}}}]}
    assert status.qos_class(guaranteed) == "Guaranteed"
    assert status.qos_class(burstable) == "Burstable"
    assert status.qos_class({"containers": [{"resources": {}}]}) == "BestEffort"
