"""Pod ranking (which pods a ReplicaSet deletes first) and readiness facts."""

from __future__ import annotations

from shoal import timestamps
from shoal.controllers import pods


def pod(name, *, node="shoal", phase="Running", ready=True, ready_at="2026-01-01T00:00:10Z",
        restarts=0, created="2026-01-01T00:00:00Z"):
    conditions = [{"type": "Ready", "status": "True" if ready else "False",
                   "lastTransitionTime": ready_at}]
    return {"metadata": {"name": name, "creationTimestamp": created},
            "spec": {"nodeName": node} if node else {},
            "status": {"phase": phase, "conditions": conditions,
                       "containerStatuses": [{"restartCount": restarts}]}}


def names(items):
    return [p["metadata"]["name"] for p in items]


def test_ranking_follows_kubernetes_active_pods_order():
    candidates = [
        pod("ready-old", created="2026-01-01T00:00:00Z", ready_at="2026-01-01T00:00:05Z"),
        pod("ready-recent", created="2026-01-01T00:00:00Z", ready_at="2026-01-01T00:09:00Z"),
        pod("unscheduled", node="", phase="Pending", ready=False),
        pod("pending", phase="Pending", ready=False),
        pod("unknown", phase="Unknown", ready=False),
        pod("running-not-ready", ready=False),
    ]
    assert names(pods.rank_for_deletion(candidates)) == [
        "unscheduled", "pending", "unknown", "running-not-ready", "ready-recent", "ready-old"]


def test_restarts_then_newest_first():
    a = pod("many-restarts", restarts=5)
    b = pod("newer", created="2026-01-02T00:00:00Z")
    c = pod("older", created="2026-01-01T00:00:00Z")
    assert names(pods.rank_for_deletion([c, b, a])) == ["many-restarts", "newer", "older"]
    assert names(pods.pods_to_delete([c, b, a], 1)) == ["many-restarts"]
    assert pods.pods_to_delete([c], 0) == []


def test_availability_waits_min_ready_seconds():
    p = pod("p", ready_at="2026-01-01T00:00:10Z")
    t = timestamps.epoch_seconds("2026-01-01T00:00:10Z")
    assert pods.is_available(p, 0, t)
    assert not pods.is_available(p, 5, t + 4)
    assert pods.is_available(p, 5, t + 5)
    assert not pods.is_available(pod("q", ready=False), 0, t)


def test_active_excludes_terminal_and_deleting():
    assert pods.is_active(pod("a"))
    assert not pods.is_active(pod("b", phase="Succeeded"))
    deleting = pod("c")
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert not pods.is_active(deleting)
