"""Pure rollout math: fencepost rounding, new-RS sizing, old-RS scale-down, status."""

from __future__ import annotations

import pytest

from shoal.controllers import rollout
from shoal.controllers.errors import InvalidSpec


def deployment(replicas=3, surge=1, unavailable=0, strategy="RollingUpdate", generation=1):
    spec = {"replicas": replicas, "strategy": {"type": strategy}, "progressDeadlineSeconds": 600,
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "c", "image": "v1"}]}}}
    if strategy == "RollingUpdate":
        spec["strategy"]["rollingUpdate"] = {"maxSurge": surge, "maxUnavailable": unavailable}
    return {"metadata": {"name": "web", "generation": generation}, "spec": spec, "status": {}}


def rs(name, replicas, available=None, created="2026-01-01T00:00:00Z", revision=1, status_replicas=None):
    available = replicas if available is None else available
    return {"metadata": {"name": name, "uid": name, "creationTimestamp": created,
                         "annotations": {rollout.REVISION: str(revision)}},
            "spec": {"replicas": replicas},
            "status": {"replicas": replicas if status_replicas is None else status_replicas,
                       "availableReplicas": available, "readyReplicas": available}}


@pytest.mark.parametrize("value,total,up,expected", [
    ("25%", 10, True, 3), ("25%", 10, False, 2), ("25%", 3, True, 1), ("25%", 3, False, 0),
    ("50%", 5, True, 3), ("50%", 5, False, 2), (2, 10, True, 2), ("0%", 10, True, 0),
    ("100%", 3, False, 3), ("3", 10, False, 3),
])
def test_scaled_value_rounds_surge_up_and_unavailable_down(value, total, up, expected):
    assert rollout.scaled_value(value, total, up) == expected


def test_scaled_value_rejects_garbage_naming_the_field():
    with pytest.raises(InvalidSpec, match="maxSurge.*'abc'"):
        rollout.resolve_fenceposts("abc", 1, 3)


def test_fenceposts_both_zero_become_one_unavailable():
    # 25% of 3 rounds down to 0 unavailable; with maxSurge 0 the rollout could never move.
    assert rollout.resolve_fenceposts(0, "25%", 3) == (0, 1)
    assert rollout.resolve_fenceposts("25%", "25%", 3) == (1, 0)
    assert rollout.resolve_fenceposts("25%", "25%", 10) == (3, 2)


def test_max_unavailable_is_zero_for_recreate_and_capped_at_replicas():
    assert rollout.max_unavailable(deployment(strategy="Recreate")) == 0
    assert rollout.max_unavailable(deployment(replicas=2, surge=0, unavailable=5)) == 2
    assert rollout.max_unavailable(deployment(replicas=0)) == 0


def test_new_rs_grows_only_within_surge():
    d = deployment(replicas=3, surge=1, unavailable=0)
    old, new = rs("old", 3), rs("new", 0)
    assert rollout.new_rs_replicas(d, [old, new], new) == 1
    # at the surge limit nothing more until an old pod goes
    new = rs("new", 1, available=0)
    assert rollout.new_rs_replicas(d, [old, new], new) == 1
    old = rs("old", 2)
    assert rollout.new_rs_replicas(d, [old, new], new) == 2
    # never beyond replicas
    assert rollout.new_rs_replicas(d, [rs("old", 0), rs("n", 3)], rs("n", 3)) == 3


def test_new_rs_recreate_gets_all_replicas():
    d = deployment(replicas=4, strategy="Recreate")
    assert rollout.new_rs_replicas(d, [rs("new", 0)], rs("new", 0)) == 4


def test_old_rs_not_scaled_down_before_new_pods_are_available():
    d = deployment(replicas=3, surge=1, unavailable=0)
    new = rs("new", 1, available=0)
    assert rollout.plan_old_scale_down(d, [rs("old", 3)], new) == {}
    new = rs("new", 1, available=1)
    assert rollout.plan_old_scale_down(d, [rs("old", 3)], new) == {"old": 2}


def test_unavailable_old_pods_go_first_even_without_budget():
    d = deployment(replicas=3, surge=1, unavailable=0)
    # old RS has 3 replicas but only 2 available: the broken one may go at once.
    new = rs("new", 1, available=1)
    assert rollout.plan_old_scale_down(d, [rs("old", 3, available=2)], new) == {"old": 2}


def test_old_scale_down_respects_max_unavailable_and_oldest_first():
    d = deployment(replicas=4, surge=0, unavailable=1)
    older = rs("a", 2, created="2026-01-01T00:00:00Z")
    newer = rs("b", 2, created="2026-01-02T00:00:00Z")
    plan = rollout.plan_old_scale_down(d, [newer, older], rs("new", 0))
    assert plan == {"a": 1}


@pytest.mark.parametrize("replicas,surge,unavailable", [
    (3, 1, 0), (3, 0, 1), (5, "25%", "25%"), (10, "30%", "10%"), (4, 2, 2), (1, 1, 0),
])
def test_simulated_rollout_keeps_invariants_and_finishes(replicas, surge, unavailable):
    """Drive the pure plan like the controller does, pods becoming available at once
    after each step; availability never drops below replicas - maxUnavailable and the
    pod count never exceeds replicas + maxSurge."""
    d = deployment(replicas, surge, unavailable)
    max_surge, max_unavail = rollout.max_surge(d), rollout.max_unavailable(d)
    old, new = rs("old", replicas), rs("new", 0)
    for _ in range(100):
        all_rss = [old, new]
        target = rollout.new_rs_replicas(d, all_rss, new)
        if target != new["spec"]["replicas"]:
            new["spec"]["replicas"] = target
        else:
            plan = rollout.plan_old_scale_down(d, [old], new)
            if not plan:
                break
            old["spec"]["replicas"] = plan["old"]
        for r in (old, new):  # the kubelet: every pod is available at once here
            r["status"] = {"replicas": r["spec"]["replicas"],
                           "availableReplicas": r["spec"]["replicas"]}
            total = old["spec"]["replicas"] + new["spec"]["replicas"]
        assert total <= replicas + max_surge
        assert rollout.status_sum([old, new], "availableReplicas") >= replicas - max_unavail
    assert new["spec"]["replicas"] == replicas and old["spec"]["replicas"] == 0


def test_template_hash_is_stable_safe_and_changes_with_collisions():
    t = deployment()["spec"]["template"]
    h = rollout.template_hash(t)
    assert h == rollout.template_hash(dict(t))
    assert set(h) <= set("bcdfghjklmnpqrstvwxz2456789")
    assert rollout.template_hash(t, 1) != h


def test_templates_equal_ignores_hash_label():
    t = deployment()["spec"]["template"]
    labelled = {"metadata": {"labels": {"app": "web", rollout.HASH_LABEL: "abc"}},
                "spec": t["spec"]}
    assert rollout.templates_equal(labelled, t)
    other = {"metadata": t["metadata"], "spec": {"containers": [{"name": "c", "image": "v2"}]}}
    assert not rollout.templates_equal(other, t)


def test_status_available_and_progress_conditions():
    d = deployment(replicas=3, surge=1, unavailable=0)
    new = rs("new", 3, available=3)
    status, wake = rollout.rollout_status(d, [new], new, now=1000.0)
    assert status["availableReplicas"] == 3 and status["updatedReplicas"] == 3
    avail = rollout.get_condition(status, "Available")
    prog = rollout.get_condition(status, "Progressing")
    assert avail["status"] == "True" and avail["reason"] == "MinimumReplicasAvailable"
    assert prog["reason"] == "NewReplicaSetAvailable" and wake is None


def test_progress_deadline_exceeded_after_no_progress():
    d = deployment(replicas=3)
    d["spec"]["progressDeadlineSeconds"] = 2
    new = rs("new", 3, available=0, status_replicas=3)
    status, wake = rollout.rollout_status(d, [new], new, now=1000.0)
    assert rollout.get_condition(status, "Progressing")["reason"] == "ReplicaSetUpdated"
    assert 2.0 <= wake <= 2.1
    d["status"] = status
    later, wake = rollout.rollout_status(d, [new], new, now=1003.0)
    cond = rollout.get_condition(later, "Progressing")
    assert cond["status"] == "False" and cond["reason"] == "ProgressDeadlineExceeded"
    assert wake is None
    assert rollout.get_condition(later, "Available")["status"] == "False"


def test_history_limit_prunes_oldest_scaled_down_revisions():
    d = deployment()
    d["spec"]["revisionHistoryLimit"] = 1
    olds = [rs("r1", 0, revision=1), rs("r2", 0, revision=2), rs("r3", 1, revision=3)]
    for r in olds:
        r["status"]["replicas"] = r["spec"]["replicas"]
    assert [r["metadata"]["name"] for r in rollout.replica_sets_to_prune(d, olds)] == ["r1", "r2"]


def test_rollout_state_messages_like_kubectl():
    from shoal.controllers.deployment import rollout_state

    d = deployment(replicas=3, generation=2)
    d["metadata"]["name"] = "web"
    d["status"] = {"observedGeneration": 1}
    assert rollout_state(d).message == "Waiting for deployment spec update to be observed..."
    d["status"] = {"observedGeneration": 2, "replicas": 4, "updatedReplicas": 1,
                   "availableReplicas": 3}
    assert rollout_state(d).message == ('Waiting for deployment "web" rollout to finish: '
                                        "1 out of 3 new replicas have been updated...")
    d["status"].update(updatedReplicas=3)
    assert rollout_state(d).message.endswith("1 old replicas are pending termination...")
    d["status"].update(replicas=3, availableReplicas=2)
    assert rollout_state(d).message.endswith("2 of 3 updated replicas are available...")
    d["status"].update(availableReplicas=3)
    state = rollout_state(d)
    assert state.done and state.message == 'deployment "web" successfully rolled out'
    d["status"]["conditions"] = [{"type": "Progressing", "status": "False",
                                  "reason": "ProgressDeadlineExceeded"}]
    state = rollout_state(d)
    assert state.failed and "exceeded its progress deadline" in state.message


def test_replica_failure_is_copied_to_the_deployment_and_cleared():
    d = deployment(replicas=1)
    new = rs("new", 1, available=0, status_replicas=0)
    new["status"]["conditions"] = [{"type": "ReplicaFailure", "status": "True",
                                    "reason": "FailedCreate", "message": "Error creating: quota"}]
    status = rollout.calculate_status(d, [new], new, now=1000.0)
    cond = rollout.get_condition(status, "ReplicaFailure")
    assert (cond["reason"], cond["message"]) == ("FailedCreate", "Error creating: quota")
    d["status"] = status
    new["status"]["conditions"] = []
    assert rollout.get_condition(rollout.calculate_status(d, [new], new, 1001.0),
                                 "ReplicaFailure") is None


def _annotated(r, desired, maximum):
    r["metadata"]["annotations"].update({rollout.DESIRED_REPLICAS: str(desired),
                                         rollout.MAX_REPLICAS: str(maximum)})
    return r


def test_scaling_event_detected_from_desired_replicas_annotation():
    d = deployment(replicas=5)
    assert rollout.is_scaling_event(d, [_annotated(rs("a", 3), 3, 4)])
    assert not rollout.is_scaling_event(d, [_annotated(rs("a", 5), 5, 6)])
    assert not rollout.is_scaling_event(d, [_annotated(rs("a", 0), 3, 4)])  # inactive


def test_plan_scale_single_active_replicaset_takes_everything():
    d = deployment(replicas=5)
    assert rollout.plan_scale(d, rs("new", 3), [rs("old", 0)]) == {"new": 5}
    assert rollout.plan_scale(d, None, [rs("old", 2)]) == {"old": 5}


def test_plan_scale_mid_rollout_is_proportional():
    # 10 -> 20 replicas while old has 8 and new 3 (sized for 10 + surge 1 = 11)
    d = deployment(replicas=20, surge=1, unavailable=0)
    old = _annotated(rs("old", 8, created="2026-01-01T00:00:00Z"), 10, 11)
    new = _annotated(rs("new", 3, available=0, created="2026-01-02T00:00:00Z"), 10, 11)
    plan = rollout.plan_scale(d, new, [old])
    assert plan == {"old": 15, "new": 6}
    assert sum(plan.values()) == 20 + 1
    # and back down: 20 -> 5 (allowed 6) shrinks both, the largest takes the leftover
    d = deployment(replicas=5, surge=1, unavailable=0)
    old = _annotated(rs("old", 15), 20, 21)
    new = _annotated(rs("new", 6, available=0), 20, 21)
    plan = rollout.plan_scale(d, new, [old])
    assert sum(plan.values()) == 6 and plan["old"] > plan["new"] > 0
