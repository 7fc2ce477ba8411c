"""The scheduler's filters (pure) and the scheduler against the real API with a Node:
pods that do not fit stay Pending with Kubernetes' Unschedulable condition and event,
and are placed once room appears."""

from __future__ import annotations

from decimal import Decimal

from shoal.controllers import pods as podutil, scheduling
from tests.controllers.conftest import NODE, eventually, patch


def node(cpu="2", memory="4Gi", pods="110", *, taints=(), labels=None, unschedulable=False):
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": NODE, "labels": {"kubernetes.io/hostname": NODE, **(labels or {})}},
            "spec": {"taints": list(taints), **({"unschedulable": True} if unschedulable else {})},
            "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": pods},
                       "capacity": {"cpu": cpu, "memory": memory, "pods": pods}}}


def pod(name="p", cpu=None, memory=None, *, node_name=None, phase=None, **spec):
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "busybox",
                                     "resources": {"requests": requests} if requests else {}}],
                     **spec}}
    if node_name:
        body["spec"]["nodeName"] = node_name
    if phase:
        body["status"] = {"phase": phase}
    return body


def test_pod_requests_count_sidecars_init_peaks_and_overhead():
    p = pod(cpu="500m", memory="64Mi")
    p["spec"]["initContainers"] = [
        {"name": "big-init", "image": "x", "resources": {"requests": {"cpu": "2"}}},
        {"name": "sidecar", "image": "x", "restartPolicy": "Always",
         "resources": {"requests": {"cpu": "100m", "memory": "16Mi"}}},
    ]
    p["spec"]["overhead"] = {"cpu": "10m"}
    got = scheduling.pod_requests(p)
    # the init container alone needs 2 cores; running, the pod needs 600m; peak wins
    assert got["cpu"] == Decimal("2.010")
    assert got["memory"] == 80 * 1024 * 1024


def test_insufficient_cpu_and_memory_are_both_reported_in_kubernetes_words():
    running = pod("a", cpu="1500m", node_name=NODE, phase="Running")
    finished = pod("b", cpu="2", node_name=NODE, phase="Succeeded")
    reasons = scheduling.filter_node(pod(cpu="1", memory="8Gi"), node(), [running, finished])
    assert reasons == ["Insufficient cpu", "Insufficient memory"]
    assert scheduling.unschedulable_message({NODE: reasons}, 1) == \
        "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory."
    # the finished pod holds nothing: 500m fits next to the running one
    assert scheduling.filter_node(pod(cpu="500m"), node(), [running, finished]) == []
    assert scheduling.filter_node(pod(), node(pods="1"), [running]) == ["Too many pods"]


def test_taints_tolerations_cordon_and_node_affinity():
    tainted = node(taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
                           {"key": "soft", "effect": "PreferNoSchedule"}])
    assert scheduling.filter_node(pod(), tainted) == [
        "node(s) had untolerated taint {dedicated: gpu}"]
    tolerant = pod(tolerations=[{"key": "dedicated", "operator": "Equal", "value": "gpu",
                                 "effect": "NoSchedule"}])
    assert scheduling.filter_node(tolerant, tainted) == []
    assert scheduling.filter_node(pod(tolerations=[{"operator": "Exists"}]), tainted) == []
    assert scheduling.filter_node(pod(), node(unschedulable=True)) == ["node(s) were unschedulable"]

    labelled = node(labels={"disk": "ssd", "zone": "7"})
    assert scheduling.filter_node(pod(nodeSelector={"disk": "ssd"}), labelled) == []
    assert scheduling.filter_node(pod(nodeSelector={"disk": "hdd"}), labelled) == [
        scheduling.NOT_MATCHED]

    def affinity(*terms):
        return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                                 {"nodeSelectorTerms": list(terms)}}}

    gt = {"matchExpressions": [{"key": "zone", "operator": "Gt", "values": ["5"]}]}
    missing = {"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}
    by_name = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [NODE]}]}
    assert scheduling.filter_node(pod(affinity=affinity(gt)), labelled) == []
    assert scheduling.filter_node(pod(affinity=affinity(missing)), labelled) == [
        scheduling.NOT_MATCHED]
    assert scheduling.filter_node(pod(affinity=affinity(missing, by_name)), labelled) == []


def test_host_ports_conflict():
    holder = pod("a", node_name=NODE, phase="Running")
    holder["spec"]["containers"][0]["ports"] = [{"containerPort": 80, "hostPort": 8080}]
    wants = pod()
    wants["spec"]["containers"][0]["ports"] = [{"containerPort": 80, "hostPort": 8080}]
    assert scheduling.filter_node(wants, node(), [holder]) == [scheduling.PORTS_TAKEN]
    wants["spec"]["containers"][0]["ports"][0]["protocol"] = "UDP"
    assert scheduling.filter_node(wants, node(), [holder]) == []


async def test_pod_that_does_not_fit_stays_pending_until_room_appears(cluster):
    client, manager, kubelet = cluster
    await client.create("nodes", node(cpu="1"))
    await client.create("pods", pod("small", cpu="600m"))

    async def bound(name):
        p = await client.get("pods", "default", name)
        return p if p["spec"].get("nodeName") == NODE else None

    await eventually(lambda: bound("small"))
    await client.create("pods", pod("big", cpu="600m"))

    async def unschedulable():
        p = await client.get("pods", "default", "big")
        cond = podutil.condition(p, "PodScheduled")
        return p if cond is not None and cond.get("reason") == "Unschedulable" else None

    big = await eventually(unschedulable)
    cond = podutil.condition(big, "PodScheduled")
    assert cond["status"] == "False"
    assert cond["message"] == "0/1 nodes are available: 1 Insufficient cpu."
    assert not big["spec"].get("nodeName") and big["status"]["phase"] == "Pending"

    async def failed_event():
        events, _ = await client.list("events", "default")
        return [e for e in events if e["reason"] == "FailedScheduling"
                and e["involvedObject"]["name"] == "big"]

    (event,) = await eventually(failed_event)
    assert event["type"] == "Warning"
    assert event["message"] == "0/1 nodes are available: 1 Insufficient cpu."

    # room appears when the small pod goes: the waiting pod is placed without a retry timer
    await client.delete("pods", "default", "small", grace_period_seconds=0)
    placed = await eventually(lambda: bound("big"), timeout=10)
    assert podutil.condition(placed, "PodScheduled") is not None


async def test_taint_keeps_pods_off_until_removed(cluster):
    client, manager, kubelet = cluster
    await client.create("nodes", node(taints=[{"key": "maintenance", "effect": "NoSchedule"}]))
    await client.create("pods", pod("waiting"))

    async def reason():
        p = await client.get("pods", "default", "waiting")
        cond = podutil.condition(p, "PodScheduled")
        return cond.get("message") if cond is not None else None

    assert await eventually(reason) == \
        "0/1 nodes are available: 1 node(s) had untolerated taint {maintenance: }."
    await patch(client, "nodes", None, NODE, {"spec": {"taints": None}})

    async def bound():
        p = await client.get("pods", "default", "waiting")
        return p["spec"].get("nodeName") == NODE

    await eventually(bound)
