"""ReplicaSets on their own: adoption and release by selector, minReadySeconds, restart."""

from __future__ import annotations

import asyncio
import time

from shoal.controllers import pods as podutil, rollout
from tests.controllers.conftest import deployment, eventually, patch


def replicaset(name="rs", replicas=2, **spec):
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "solo"}},
                     "template": {"metadata": {"labels": {"app": "solo"}},
                                  "spec": {"containers": [{"name": "c", "image": "x"}]}},
                     **spec}}


def bare_pod(name, labels):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": labels},
            "spec": {"containers": [{"name": "c", "image": "x"}]}}


async def test_replicaset_adopts_matching_orphans_and_releases_relabelled_pods(cluster):
    client, manager, kubelet = cluster
    await client.create("pods", bare_pod("stray", {"app": "solo"}))
    rs = await client.create("replicasets.apps", replicaset(replicas=2))

    async def two_owned():
        pods = await kubelet.pods(selector="app=solo")
        owned = [p for p in pods if any(r["uid"] == rs["metadata"]["uid"]
                                        for r in p["metadata"].get("ownerReferences") or [])]
        return owned if len(pods) == 2 and len(owned) == 2 else None

    owned = await eventually(two_owned)
    assert "stray" in {p["metadata"]["name"] for p in owned}   # adopted, not replaced

    await patch(client, "pods", "default", "stray", {"metadata": {"labels": {"app": "elsewhere"}}})

    async def released_and_replaced():
        p = await client.get("pods", "default", "stray")
        solo = [x for x in await kubelet.pods(selector="app=solo") if not podutil.is_deleting(x)]
        return not p["metadata"].get("ownerReferences") and len(solo) == 2

    await eventually(released_and_replaced)
    # the released pod is not garbage collected: it has no owner any more
    await asyncio.sleep(0.2)
    assert (await client.get("pods", "default", "stray"))["metadata"]["name"] == "stray"


async def test_min_ready_seconds_delays_availability(cluster):
    client, manager, kubelet = cluster
    await client.create("replicasets.apps", replicaset(replicas=1, minReadySeconds=1))

    async def one():
        pods = await kubelet.pods(selector="app=solo")
        return pods[0] if len(pods) == 1 else None

    pod = await eventually(one)
    started = time.monotonic()
    await kubelet.run(pod)

    async def status():
        st = (await client.get("replicasets.apps", "default", "rs")).get("status") or {}
        return st

    async def ready_not_available():
        st = await status()
        return st.get("readyReplicas") == 1 and st.get("availableReplicas") == 0

    await eventually(ready_not_available)

    async def available():
        return (await status()).get("availableReplicas") == 1

    await eventually(available, timeout=5)
    # timestamps have second precision: available between 0 and 2 s after ready
    assert time.monotonic() - started < 3.0


async def test_rollout_restart_annotation_rolls_new_pods(cluster):
    client, manager, kubelet = cluster
    await client.create("deployments.apps", deployment(replicas=1))

    async def running():
        pods = [p for p in await kubelet.pods(selector="app=web") if not podutil.is_deleting(p)]
        for p in pods:
            if not podutil.is_ready(p):
                await kubelet.run(p)
        return pods if len(pods) == 1 and all(podutil.is_ready(p) for p in pods) else None

    (first,) = await eventually(running)
    await patch(client, "deployments.apps", "default", "web", {"spec": {"template": {"metadata": {
        "annotations": {rollout.RESTARTED_AT: "2026-11-22T00:00:00Z"}}}}})

    async def replaced():
        pods = await running()
        return pods and pods[0]["metadata"]["name"] != first["metadata"]["name"] and \
            pods[0]["metadata"]["annotations"][rollout.RESTARTED_AT] == "2026-11-22T00:00:00Z"

    await eventually(replaced)
    rss, _ = await client.list("replicasets.apps", "default")
    assert sorted(rollout.revision(r) for r in rss) == [1, 2]
