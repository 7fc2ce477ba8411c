"""The pod lifecycle decisions (shoal.node.lifecycle) and status assembly (shoal.node.views),
without runc: the rules a user sees as restarts, CrashLoopBackOff, init order, readiness
and a pod's end."""

from __future__ import annotations

import datetime as dt

import pytest

from shoal.node import lifecycle, views
from shoal.node.lifecycle import Completion
from shoal.node.observed import Observed

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
POD = {"metadata": {"name": "web", "namespace": "shop", "uid": "u-1"},
       "spec": {"containers": [{"name": "app", "image": "busybox"}],
                "initContainers": [{"name": "setup", "image": "busybox"},
                                   {"name": "proxy", "image": "envoy", "restartPolicy": "Always"}]}}


def restart(policy: str, code: int, **kw) -> bool:
    args = {"init": False, "sidecar": False, "completing": False, "spec_changed": False, **kw}
    return lifecycle.should_restart(policy=policy, exit_code=code, **args)


@pytest.mark.parametrize("policy,code,expected", [
    ("Always", 0, True), ("Always", 1, True),
    ("OnFailure", 0, False), ("OnFailure", 2, True),
    ("Never", 0, False), ("Never", 1, False),
])
def test_regular_containers_follow_the_restart_policy(policy, code, expected):
    assert restart(policy, code) is expected


def test_init_containers_rerun_only_after_a_failure_unless_never():
    assert restart("Always", 1, init=True) and restart("OnFailure", 1, init=True)
    assert not restart("Always", 0, init=True)
    assert not restart("Never", 1, init=True)


def test_sidecars_restart_until_the_pod_completes_and_spec_changes_always_restart():
    assert restart("Never", 0, sidecar=True)
    assert not restart("Never", 0, sidecar=True, completing=True)
    assert restart("Never", 0, spec_changed=True)


def test_crashloop_inputs_and_wording():
    start = NOW.timestamp()
    assert lifecycle.run_times(NOW, NOW + dt.timedelta(seconds=7), 0.0) == (start + 7, 7.0)
    assert lifecycle.run_times(None, None, 100.0) == (100.0, 0.0)  # unknown times: now, ran 0 s
    assert lifecycle.crashloop_message(20, "app", POD) == \
        "back-off 20s restarting failed container=app pod=web_shop(u-1)"
    assert lifecycle.backoff_event("app", POD) == "Back-off restarting failed container app in pod web_shop(u-1)"


def test_init_order_gates():
    setup, proxy = POD["spec"]["initContainers"]
    assert not lifecycle.skips_init(setup, initialized=False)
    assert lifecycle.skips_init(setup, initialized=True)
    assert not lifecycle.skips_init(proxy, initialized=True)  # a sidecar keeps running
    assert lifecycle.blocks_init(done=False, initialized=False)
    assert not lifecycle.blocks_init(done=True, initialized=False)
    assert not lifecycle.blocks_init(done=False, initialized=True)  # a restarting sidecar later
    ready = {**POD, "status": {"conditions": [{"type": "Initialized", "status": "True"}]}}
    assert lifecycle.was_initialized(ready, False) and lifecycle.was_initialized(POD, True)
    assert not lifecycle.was_initialized(POD, False)


def test_readiness():
    assert lifecycle.is_ready(started=True, ready=True)
    assert not lifecycle.is_ready(started=False, ready=True)  # a startup probe still running
    assert lifecycle.sidecar_done(started=True, ready=False, has_readiness=False)
    assert not lifecycle.sidecar_done(started=True, ready=False, has_readiness=True)
    assert lifecycle.holds_next(ready=False, hook_holds=True)
    assert not lifecycle.holds_next(ready=True, hook_holds=True)
    assert not lifecycle.holds_next(ready=False, hook_holds=False)


def test_the_pods_end():
    assert lifecycle.deadline_left("2026-01-01T00:00:00Z", 30, NOW.timestamp() + 10) == 20
    assert lifecycle.deadline_left("2026-01-01T00:00:00Z", None, 0) == float("inf")
    kw = {"initialized": True}
    assert lifecycle.completion(restart_policy="Never", phase="Succeeded", completing=False, **kw) \
        is Completion.STOP_SIDECARS
    assert lifecycle.completion(restart_policy="Never", phase="Succeeded", completing=True, **kw) \
        is Completion.TERMINAL
    assert lifecycle.completion(restart_policy="Always", phase="Succeeded", completing=False, **kw) \
        is Completion.RUNNING
    assert lifecycle.completion(restart_policy="OnFailure", phase="Running", completing=False, **kw) \
        is Completion.RUNNING


def test_grace_and_field_paths():
    assert lifecycle.termination_grace(POD) == 30.0
    deleting = {**POD, "metadata": {**POD["metadata"], "deletionGracePeriodSeconds": 0}}
    assert lifecycle.deletion_grace(deleting) == 0.0
    assert lifecycle.probe_grace({"terminationGracePeriodSeconds": 3}) == 3.0
    assert lifecycle.probe_grace({}) is None
    assert lifecycle.field_path(POD, {"name": "setup"}) == "spec.initContainers{setup}"
    assert lifecycle.field_path(POD, {"name": "app"}) == "spec.containers{app}"


def test_handler_target_is_the_pod_ip_or_inside_the_netns():
    class Sandbox:
        ip, netns_path = "10.0.0.5", "/var/run/netns/p"

    assert lifecycle.handler_target(Sandbox(), probe_in_netns=False, pod_ip=None) == \
        lifecycle.HandlerTarget("10.0.0.5")
    assert lifecycle.handler_target(Sandbox(), probe_in_netns=True, pod_ip=None) == \
        lifecycle.HandlerTarget("127.0.0.1", "/var/run/netns/p")
    assert lifecycle.handler_target(None, probe_in_netns=True, pod_ip="10.0.0.9").host == "10.0.0.9"


def observed(index: int, state: str, code: int | None = None) -> Observed:
    return Observed(index=index, container_id=f"c{index}", state=state, exit_code=code, started_at=NOW,
                    finished_at=NOW if state == "exited" else None, oom_killed=False, reason="", labels={})


def test_views_and_the_status_body():
    app = POD["spec"]["containers"][0]
    view = views.base_view(POD, app, [observed(2, "running"), observed(1, "exited", 1)], False, "sha256:x")
    assert view.restart_count == 2 and view.last.exit_code == 1 and view.image_id == "sha256:x"
    waiting = views.waiting_views(POD, {}, "ContainerCreating", "no sandbox", {})
    assert [(v.name, v.waiting_reason, v.waiting_message) for v in waiting] == [
        ("setup", "ContainerCreating", "no sandbox"), ("proxy", "ContainerCreating", "no sandbox"),
        ("app", "ContainerCreating", "no sandbox")]
    body = views.pod_status(POD, waiting, phase="Pending", initialized=False, n_init=2, host_ip="10.0.0.1",
                            start_time="2026-01-01T00:00:00Z", pod_ip="10.0.0.7", terminal_reason=None,
                            now="2026-01-01T00:00:01Z")
    assert [s["name"] for s in body["initContainerStatuses"]] == ["setup", "proxy"]
    assert [s["name"] for s in body["containerStatuses"]] == ["app"]
    assert body["podIP"] == "10.0.0.7" and body["hostIP"] == "10.0.0.1"
    assert views.unchanged({**body}, body)
    assert not views.unchanged({**body, "phase": "Running"}, body)
    done = views.terminal_views(POD, {"app": [observed(0, "exited", 0)]}, {})
    assert done[-1].terminated.exit_code == 0 and done[0].waiting_reason == "ContainerCreating"
