"""DaemonSets: the per-node plan (pure) and the controller against the real API with a
Node and the test kubelet: one pod, bound by the scheduler, replaced on update, removed
when the node stops matching."""

from __future__ import annotations

from shoal.controllers import daemonsets, pods as podutil
from tests.controllers.conftest import NODE, eventually, patch


def node(**spec):
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": NODE, "labels": {"kubernetes.io/hostname": NODE, "disk": "ssd"}},
            "spec": spec,
            "status": {"allocatable": {"cpu": "2", "memory": "2Gi", "pods": "110"}}}


def ds(name="agent", image="agent:v1", **template_spec):
    return {
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "a", "image": image}],
                                       **template_spec}}},
    }


def _pod(name, revision, *, ready=True, deleting=False):
    meta = {"name": name, "labels": {"controller-revision-hash": revision},
            "creationTimestamp": "2026-01-01T00:00:00Z"}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:01Z"
    return {"metadata": meta, "status": {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True" if ready else "False",
         "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}


def test_should_run_follows_selector_taints_and_gives_daemon_tolerations():
    n = node()
    assert daemonsets.should_run(ds(), n)
    assert not daemonsets.should_run(ds(nodeSelector={"disk": "hdd"}), n)
    tainted = node(taints=[{"key": "gpu", "effect": "NoSchedule"}])
    assert not daemonsets.should_run(ds(), tainted)
    assert daemonsets.should_run(ds(tolerations=[{"key": "gpu", "operator": "Exists"}]), tainted)
    # cordoned nodes still run daemons (the unschedulable toleration every daemon pod gets)
    assert daemonsets.should_run(ds(), node(unschedulable=True))
    # a NoSchedule taint keeps the running pod, NoExecute evicts it, a selector change too
    assert daemonsets.placement(ds(), tainted) == (False, True)
    evicting = node(taints=[{"key": "gpu", "effect": "NoExecute"}])
    assert daemonsets.placement(ds(), evicting) == (False, False)
    assert daemonsets.placement(ds(nodeSelector={"disk": "hdd"}), n) == (False, False)
    running = _pod("agent-a", "r1")
    assert daemonsets.node_plan(ds(), False, [running], "r1", 0, may_take_down=True,
                                surge=False, keep=True).delete == []


def test_node_plan_rolling_update_and_surge():
    d = ds()
    d["spec"]["updateStrategy"] = {"type": "RollingUpdate"}
    old = _pod("agent-a", "r1")
    assert daemonsets.node_plan(d, True, [], "r2", 0, may_take_down=True, surge=False).create
    steps = daemonsets.node_plan(d, True, [old], "r2", 0, may_take_down=True, surge=False)
    assert steps.delete == ["agent-a"] and not steps.create
    # no budget left: an available old pod stays
    assert daemonsets.node_plan(d, True, [old], "r2", 0, may_take_down=False, surge=False).delete == []
    # while the old pod terminates, no new one (non-surge)
    going = _pod("agent-a", "r1", deleting=True)
    assert not daemonsets.node_plan(d, True, [going], "r2", 0, may_take_down=True, surge=False).create
    # surge: new first, then the old one once the new is available
    assert daemonsets.node_plan(d, True, [old], "r2", 0, may_take_down=False, surge=True).create
    new = _pod("agent-b", "r2")
    assert daemonsets.node_plan(d, True, [old, new], "r2", 0, may_take_down=False,
                                surge=True).delete == ["agent-a"]
    # a node that should not run it loses its pod
    assert daemonsets.node_plan(d, False, [new], "r2", 0, may_take_down=False,
                                surge=False).delete == ["agent-b"]


async def _pods(client):
    items, _ = await client.list("pods", "default", label_selector="app=agent")
    return [p for p in items if not podutil.is_deleting(p)]


async def test_one_pod_on_the_node_updated_and_removed(cluster):
    client, manager, kubelet = cluster
    await client.create("nodes", node())
    await client.create("daemonsets.apps", ds())

    async def one_bound():
        pods = await _pods(client)
        return pods if len(pods) == 1 and pods[0]["spec"].get("nodeName") == NODE else None

    (pod,) = await eventually(one_bound)
    tolerated = {t["key"] for t in pod["spec"]["tolerations"]}
    assert "node.kubernetes.io/unschedulable" in tolerated
    await kubelet.run_all(selector="app=agent")

    async def status():
        d = await client.get("daemonsets.apps", "default", "agent")
        st = d.get("status") or {}
        return st if st.get("numberReady") == 1 else None

    st = await eventually(status)
    assert st["desiredNumberScheduled"] == 1 and st["currentNumberScheduled"] == 1
    assert st["updatedNumberScheduled"] == 1 and st["numberAvailable"] == 1
    assert st["numberUnavailable"] == 0

    await patch(client, "daemonsets.apps", "default", "agent",
                {"spec": {"template": ds(image="agent:v2")["spec"]["template"]}})

    async def replaced():
        pods = await _pods(client)
        return pods if [p["spec"]["containers"][0]["image"] for p in pods] == ["agent:v2"] else None

    (new,) = await eventually(replaced)
    assert new["metadata"]["name"] != pod["metadata"]["name"]

    await patch(client, "daemonsets.apps", "default", "agent",
                {"spec": {"template": {"spec": {"nodeSelector": {"disk": "hdd"}}}}})

    async def gone():
        d = await client.get("daemonsets.apps", "default", "agent")
        return not await _pods(client) and (d.get("status") or {}).get(
            "desiredNumberScheduled") == 0

    await eventually(gone)
