"""Deployments end to end against the real API (LocalClient + SQLite store)."""

from __future__ import annotations

from shoal.controllers import pods as podutil, rollout
from tests.controllers.conftest import NODE, deployment, eventually, patch


async def test_deployment_creates_replicaset_and_pods_with_owners(cluster):
    client, manager, kubelet = cluster
    d = await client.create("deployments.apps", deployment(replicas=3))

    async def three_pods():
        pods = await kubelet.pods(selector="app=web")
        return pods if len(pods) == 3 else None

    pods = await eventually(three_pods)
    rss, _ = await client.list("replicasets.apps", "default")
    assert len(rss) == 1
    rs = rss[0]
    pod_hash = rs["metadata"]["labels"][rollout.HASH_LABEL]
    assert rs["metadata"]["name"] == f"web-{pod_hash}"
    assert rs["metadata"]["annotations"][rollout.REVISION] == "1"
    ref = rs["metadata"]["ownerReferences"][0]
    assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == (
        "Deployment", "web", d["metadata"]["uid"], True)
    for pod in pods:
        assert pod["metadata"]["name"].startswith(f"web-{pod_hash}-")
        assert len(pod["metadata"]["name"]) == len(f"web-{pod_hash}-") + 5
        assert pod["metadata"]["labels"] == {"app": "web", rollout.HASH_LABEL: pod_hash}
        ref = pod["metadata"]["ownerReferences"][0]
        assert (ref["kind"], ref["name"], ref["controller"], ref["blockOwnerDeletion"]) == (
            "ReplicaSet", rs["metadata"]["name"], True, True)
    # the scheduler bound every pod to the node
    await eventually(lambda: _all_bound(kubelet))


async def _all_bound(kubelet):
    pods = await kubelet.pods(selector="app=web")
    return pods and all(p["spec"].get("nodeName") == NODE for p in pods)


async def _deployment(client, name="web"):
    return await client.get("deployments.apps", "default", name)


def _cond(d, type_):
    return rollout.get_condition(d.get("status") or {}, type_)


async def _ready_deployment(client, kubelet, name="web", replicas=3, **spec):
    await client.create("deployments.apps", deployment(name, replicas=replicas, **spec))

    async def all_pods_running():
        pods = [p for p in await kubelet.pods(selector=f"app={name}")
                if not podutil.is_deleting(p)]
        if len(pods) != replicas:
            return None
        for p in pods:
            if not podutil.is_ready(p):
                await kubelet.run(p)
        return True

    await eventually(all_pods_running)

    async def available():
        d = await _deployment(client, name)
        st = d.get("status") or {}
        return d if st.get("availableReplicas") == replicas and st.get("readyReplicas") == replicas \
            and st.get("updatedReplicas") == replicas else None

    return await eventually(available)


async def test_ready_pods_make_deployment_available(cluster):
    client, manager, kubelet = cluster
    d = await _ready_deployment(client, kubelet)
    st = d["status"]
    assert (st["replicas"], st["readyReplicas"], st["availableReplicas"],
            st.get("unavailableReplicas", 0)) == (3, 3, 3, 0)
    assert st["observedGeneration"] == d["metadata"]["generation"]
    assert _cond(d, "Available")["status"] == "True"
    assert _cond(d, "Available")["reason"] == "MinimumReplicasAvailable"

    async def complete():
        c = _cond(await _deployment(client), "Progressing")
        return c if c and c["reason"] == "NewReplicaSetAvailable" else None

    assert (await eventually(complete))["status"] == "True"
    rss, _ = await client.list("replicasets.apps", "default")
    assert rss[0]["status"]["readyReplicas"] == 3 and rss[0]["status"]["availableReplicas"] == 3
    events, _ = await client.list("events", "default")
    reasons = {(e["involvedObject"]["kind"], e["reason"]) for e in events}
    assert ("Deployment", "ScalingReplicaSet") in reasons
    assert ("ReplicaSet", "SuccessfulCreate") in reasons
    assert ("Pod", "Scheduled") in reasons


async def test_rolling_update_never_drops_ready_below_replicas(cluster):
    client, manager, kubelet = cluster
    await _ready_deployment(client, kubelet, strategy={
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}})
    observed = {"min_ready": 99, "max_pods": 0}

    async def sample():
        pods = [p for p in await kubelet.pods(selector="app=web") if not podutil.is_deleting(p)]
        ready = sum(1 for p in pods if podutil.is_ready(p))
        observed["min_ready"] = min(observed["min_ready"], ready)
        observed["max_pods"] = max(observed["max_pods"], len(pods))
        return pods

    await _set_image(client, "web:v2")

    steps = 0
    for _ in range(20):
        async def next_new_pod():
            pods = await sample()
            fresh = [p for p in pods if p["spec"]["containers"][0]["image"] == "web:v2"
                     and not podutil.is_ready(p)]
            old = [p for p in pods if p["spec"]["containers"][0]["image"] == "web:v1"]
            done = not old and len(pods) == 3 and all(podutil.is_ready(p) for p in pods)
            return ("done", None) if done else (("pod", fresh[0]) if fresh else None)

        kind, pod = await eventually(next_new_pod)
        if kind == "done":
            break
        # The invariant at this step: 3 ready pods still serve while the new one starts.
        ready_now = [p for p in await sample() if podutil.is_ready(p)]
        assert len(ready_now) >= 3, ready_now
        await kubelet.run(pod)
        steps += 1
    assert steps == 3
    assert observed["min_ready"] >= 3, observed
    assert observed["max_pods"] <= 4, observed

    async def rolled():
        st = (await _deployment(client)).get("status") or {}
        return st if (st.get("updatedReplicas"), st.get("availableReplicas"),
                      st.get("replicas")) == (3, 3, 3) else None

    await eventually(rolled)
    rss, _ = await client.list("replicasets.apps", "default")
    by_rev = {rollout.revision(r): r for r in rss}
    assert by_rev[1]["spec"]["replicas"] == 0 and by_rev[2]["spec"]["replicas"] == 3
    d = await _deployment(client)
    assert d["metadata"]["annotations"][rollout.REVISION] == "2"


async def test_recreate_deletes_old_pods_before_new_ones(cluster):
    client, manager, kubelet = cluster
    await _ready_deployment(client, kubelet, replicas=2, strategy={"type": "Recreate"})
    kubelet.finish_deletions = False  # old pods linger in Terminating
    await _set_image(client, "web:v2")

    async def old_terminating():
        pods = await kubelet.pods(selector="app=web")
        return len(pods) == 2 and all(podutil.is_deleting(p) for p in pods)

    await eventually(old_terminating)
    import asyncio
    await asyncio.sleep(0.3)
    pods = await kubelet.pods(selector="app=web")
    assert all(p["spec"]["containers"][0]["image"] == "web:v1" for p in pods), \
        "a new pod started while old ones were still terminating"
    kubelet.finish_deletions = True

    async def new_pods():
        pods = await kubelet.pods(selector="app=web")
        return len(pods) == 2 and all(p["spec"]["containers"][0]["image"] == "web:v2"
                                      for p in pods)

    await eventually(new_pods)


async def _roll_to(client, kubelet, image, replicas=3):
    await _set_image(client, image)

    async def rolled():
        pods = [p for p in await kubelet.pods(selector="app=web") if not podutil.is_deleting(p)]
        for p in pods:
            if not podutil.is_ready(p):
                await kubelet.run(p)
        st = (await _deployment(client)).get("status") or {}
        return (len(pods) == replicas
                and all(p["spec"]["containers"][0]["image"] == image for p in pods)
                and (st.get("updatedReplicas"), st.get("availableReplicas"),
                     st.get("replicas")) == (replicas,) * 3)

    await eventually(rolled, timeout=15)


async def test_rollback_restores_previous_template_with_a_new_revision(cluster):
    from shoal.controllers import deployment as deployments

    client, manager, kubelet = cluster
    await _ready_deployment(client, kubelet)
    await _roll_to(client, kubelet, "web:v2")
    result = await deployments.rollback(client, "default", "web")
    assert result.revision == 1 and not result.skipped
    assert result.deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "web:v1"

    async def rolled_back():
        pods = [p for p in await kubelet.pods(selector="app=web") if not podutil.is_deleting(p)]
        for p in pods:
            if not podutil.is_ready(p):
                await kubelet.run(p)
        d = await _deployment(client)
        return (d["metadata"]["annotations"].get(rollout.REVISION) == "3"
                and len(pods) == 3
                and all(p["spec"]["containers"][0]["image"] == "web:v1" for p in pods))

    await eventually(rolled_back, timeout=15)
    revisions = [(rev, rs["spec"]["template"]["spec"]["containers"][0]["image"])
                 for rev, rs in await deployments.history(client, "default", "web")]
    assert revisions == [(2, "web:v2"), (3, "web:v1")]
    # the v1 ReplicaSet was reused, not recreated: still two ReplicaSets
    rss, _ = await client.list("replicasets.apps", "default")
    assert len(rss) == 2
    again = await deployments.rollback(client, "default", "web", to_revision=3)
    assert again.skipped and "skipped rollback" in again.message


async def test_rollback_to_unknown_revision_is_a_clear_error(cluster):
    import pytest

    from shoal.controllers import deployment as deployments
    from shoal.controllers.errors import RevisionNotFound

    client, manager, kubelet = cluster
    await _ready_deployment(client, kubelet, replicas=1)
    with pytest.raises(RevisionNotFound, match="unable to find specified revision 7"):
        await deployments.rollback(client, "default", "web", to_revision=7)
    with pytest.raises(RevisionNotFound, match="no rollout history"):
        await deployments.rollback(client, "default", "web")


async def test_revision_history_limit_prunes_old_replicasets(cluster):
    client, manager, kubelet = cluster
    await _ready_deployment(client, kubelet, revisionHistoryLimit=1)
    await _roll_to(client, kubelet, "web:v2")
    await _roll_to(client, kubelet, "web:v3")

    async def pruned():
        rss, _ = await client.list("replicasets.apps", "default")
        return sorted(rollout.revision(r) for r in rss) == [2, 3]

    await eventually(pruned)


async def test_progress_deadline_exceeded_is_reported(cluster):
    client, manager, kubelet = cluster
    await client.create("deployments.apps", deployment(replicas=2, progressDeadlineSeconds=2))

    async def timed_out():
        c = _cond(await _deployment(client), "Progressing")
        return c if c and c["reason"] == "ProgressDeadlineExceeded" else None

    cond = await eventually(timed_out, timeout=8)
    assert cond["status"] == "False"
    assert "has timed out progressing" in cond["message"]
    assert _cond(await _deployment(client), "Available")["status"] == "False"


async def test_scale_down_deletes_not_ready_pods_first(cluster):
    client, manager, kubelet = cluster
    await client.create("deployments.apps", deployment(replicas=4))

    async def four():
        pods = await kubelet.pods(selector="app=web")
        return pods if len(pods) == 4 else None

    pods = await eventually(four)
    ready = {p["metadata"]["name"] for p in pods[:2]}
    for p in pods[:2]:
        await kubelet.run(p, ready=True)
    for p in pods[2:]:
        await kubelet.run(p, ready=False)
    await eventually(lambda: _status_is(client, readyReplicas=2, replicas=4))
    await patch(client, "deployments.apps", "default", "web", {"spec": {"replicas": 2}})

    async def two_left():
        live = [p for p in await kubelet.pods(selector="app=web") if not podutil.is_deleting(p)]
        return live if len(live) == 2 else None

    live = await eventually(two_left)
    assert {p["metadata"]["name"] for p in live} == ready
    events, _ = await client.list("events", "default")
    assert any(e["reason"] == "ScalingReplicaSet" and "Scaled down" in e["message"]
               and e["message"].endswith("to 2 from 4") for e in events)


async def _status_is(client, **expected):
    st = (await _deployment(client)).get("status") or {}
    return all(st.get(k) == v for k, v in expected.items())


async def test_paused_deployment_scales_but_does_not_roll_until_resumed(cluster):
    client, manager, kubelet = cluster
    await _ready_deployment(client, kubelet, replicas=2)
    await patch(client, "deployments.apps", "default", "web", {"spec": {
        "paused": True, "replicas": 3,
        "template": {"spec": {"containers": [{"name": "app", "image": "web:v2"}]}}}},
        "strategic")

    async def scaled_same_template():
        pods = [p for p in await kubelet.pods(selector="app=web") if not podutil.is_deleting(p)]
        c = _cond(await _deployment(client), "Progressing")
        return (len(pods) == 3 and c and c["reason"] == "DeploymentPaused"
                and all(p["spec"]["containers"][0]["image"] == "web:v1" for p in pods))

    await eventually(scaled_same_template)
    rss, _ = await client.list("replicasets.apps", "default")
    assert len(rss) == 1
    await patch(client, "deployments.apps", "default", "web", {"spec": {"paused": False}})

    async def rolled():
        pods = [p for p in await kubelet.pods(selector="app=web") if not podutil.is_deleting(p)]
        for p in pods:
            if not podutil.is_ready(p):
                await kubelet.run(p)
        return len(pods) == 3 and all(p["spec"]["containers"][0]["image"] == "web:v2"
                                      for p in pods)

    await eventually(rolled, timeout=15)


async def test_run_controllers_starts_and_stops_cleanly(api, tmp_path):
    import asyncio

    from shoal.config import Settings
    from shoal.controllers import run_controllers

    before = set(asyncio.all_tasks())
    manager = await run_controllers(api, Settings(state_dir=tmp_path, node_name=NODE))
    assert {c.name for c in manager.controllers} >= {
        "deployment", "replicaset", "namespace", "endpoints", "scheduler",
        "garbage-collector-pods"}
    await client_roundtrip(api)
    await manager.stop()
    await asyncio.sleep(0)
    leftover = [t for t in asyncio.all_tasks() - before if not t.done()]
    assert leftover == []


async def client_roundtrip(api):
    await api.create("deployments.apps", deployment(replicas=1))

    async def one_pod():
        pods, _ = await api.list("pods", "default")
        return len(pods) == 1

    await eventually(one_pod)


async def _set_image(client, image, name="web"):
    """What `shoal set image` does: a strategic merge patch of the container image."""
    await patch(client, "deployments.apps", "default", name, {"spec": {"template": {"spec": {
        "containers": [{"name": "app", "image": image}]}}}}, "strategic")


async def test_hash_collision_bumps_collision_count(cluster):
    client, manager, kubelet = cluster
    await client.create("deployments.apps", deployment(replicas=1, paused=True))
    d = await _deployment(client)
    taken = f"web-{rollout.template_hash(d['spec']['template'])}"
    squatter = deployment("other", replicas=0)["spec"]
    await client.create("replicasets.apps", {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": taken, "namespace": "default"},
        "spec": {"replicas": 0, "selector": squatter["selector"],
                 "template": squatter["template"]}})
    await patch(client, "deployments.apps", "default", "web", {"spec": {"paused": False}})

    async def created_elsewhere():
        d = await _deployment(client)
        rss, _ = await client.list("replicasets.apps", "default", label_selector="app=web")
        return d if rss and (d.get("status") or {}).get("collisionCount") == 1 else None

    d = await eventually(created_elsewhere)
    rss, _ = await client.list("replicasets.apps", "default", label_selector="app=web")
    assert [r["metadata"]["name"] for r in rss] == [
        f"web-{rollout.template_hash(d['spec']['template'], 1)}"]


async def test_scaling_mid_rollout_is_proportional(cluster):
    client, manager, kubelet = cluster
    await _ready_deployment(client, kubelet, replicas=4, strategy={
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}})
    await _set_image(client, "web:v2")

    async def by_image():
        rss, _ = await client.list("replicasets.apps", "default")
        return {r["spec"]["template"]["spec"]["containers"][0]["image"]: r["spec"]["replicas"]
                for r in rss}

    async def surged():
        return await by_image() == {"web:v1": 4, "web:v2": 1}

    await eventually(surged)
    await patch(client, "deployments.apps", "default", "web", {"spec": {"replicas": 8}})

    async def proportional():
        return await by_image() == {"web:v1": 7, "web:v2": 2}

    await eventually(proportional)
    await _roll_to(client, kubelet, "web:v2", replicas=8)
