"""Endpoints, the scheduler and event aggregation against the real API, plus the pure
endpoint builder."""

from __future__ import annotations

import asyncio

from shoal.controllers import endpoints as ep, pods as podutil
from shoal.controllers.engine import Request
from shoal.controllers.events import EventRecorder
from tests.controllers.conftest import NODE, deployment, eventually, patch


def service(name="web", selector=None, target="http", **spec):
    body = {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default", "labels": {"tier": "front"}},
            "spec": {"ports": [{"name": "web", "port": 80, "targetPort": target}],
                     **({"selector": selector} if selector is not None else {}), **spec}}
    return body


async def _endpoints(client, name="web"):
    try:
        return await client.get("endpoints", "default", name)
    except Exception:
        return None


async def test_endpoints_follow_readiness_and_named_target_ports(cluster):
    client, manager, kubelet = cluster
    await client.create("services", service(selector={"app": "web"}))
    await client.create("deployments.apps", deployment(replicas=2))

    async def two_pods():
        pods = await kubelet.pods(selector="app=web")
        return pods if len(pods) == 2 else None

    first, second = await eventually(two_pods)
    first = await kubelet.run(first, ready=True)
    second = await kubelet.run(second, ready=False)

    async def split():
        e = await _endpoints(client)
        subsets = (e or {}).get("subsets") or []
        if len(subsets) != 1:
            return None
        s = subsets[0]
        if len(s.get("addresses") or []) == 1 and len(s.get("notReadyAddresses") or []) == 1:
            return e
        return None

    e = await eventually(split)
    subset = e["subsets"][0]
    assert subset["ports"] == [{"name": "web", "port": 8080, "protocol": "TCP"}]
    addr = subset["addresses"][0]
    assert addr["ip"] == first["status"]["podIP"]
    assert addr["nodeName"] == NODE
    assert addr["targetRef"] == {"kind": "Pod", "namespace": "default",
                                 "name": first["metadata"]["name"],
                                 "uid": first["metadata"]["uid"]}
    assert subset["notReadyAddresses"][0]["ip"] == second["status"]["podIP"]
    assert e["metadata"]["labels"] == {"tier": "front"}

    # the second pod becomes ready: both addresses served
    await kubelet.run(second, ready=True)

    async def both_ready():
        s = ((await _endpoints(client)) or {}).get("subsets") or [{}]
        return len(s[0].get("addresses") or []) == 2 and not s[0].get("notReadyAddresses")

    await eventually(both_ready)
    # readiness lost: moved back to notReadyAddresses
    await kubelet.run(first, ready=False)

    async def one_ready():
        s = ((await _endpoints(client)) or {}).get("subsets") or [{}]
        return [a["ip"] for a in s[0].get("notReadyAddresses") or []] == [first["status"]["podIP"]]

    await eventually(one_ready)

    # an unchanged result writes nothing
    before = (await _endpoints(client))["metadata"]["resourceVersion"]
    await patch(client, "services", "default", "web", {"metadata": {"annotations": {"x": "y"}}})
    await asyncio.sleep(0.3)
    assert (await _endpoints(client))["metadata"]["resourceVersion"] == before


async def test_service_selecting_nothing_gets_empty_subsets_and_no_warning(cluster):
    client, manager, kubelet = cluster
    await client.create("services", service(name="lonely", selector={"app": "nothing"}, target=80))

    async def exists():
        return await _endpoints(client, "lonely")

    e = await eventually(exists)
    assert (e.get("subsets") or []) == []
    events, _ = await client.list("events", "default")
    assert not [x for x in events if x["type"] == "Warning"]
    # deleting the Service deletes its Endpoints
    await client.delete("services", "default", "lonely")

    async def gone():
        return await _endpoints(client, "lonely") is None

    await eventually(gone)


async def test_scheduler_binds_and_records_scheduled(cluster):
    client, manager, kubelet = cluster
    await client.create("pods", {"apiVersion": "v1", "kind": "Pod",
                                 "metadata": {"name": "solo", "namespace": "default"},
                                 "spec": {"containers": [{"name": "c", "image": "busybox"}]}})

    async def bound():
        p = await client.get("pods", "default", "solo")
        cond = podutil.condition(p, "PodScheduled")
        return p if p["spec"].get("nodeName") == NODE and cond is not None else None

    pod = await eventually(bound)
    assert podutil.condition(pod, "PodScheduled")["status"] == "True"

    async def scheduled_event():
        events, _ = await client.list("events", "default")
        return [e for e in events if e["reason"] == "Scheduled"
                and e["involvedObject"]["name"] == "solo"]

    (event,) = await eventually(scheduled_event)
    assert event["message"] == f"Successfully assigned default/solo to {NODE}"
    assert event["type"] == "Normal" and event["source"]["component"] == "default-scheduler"
    # a pod for another scheduler is left alone
    await client.create("pods", {"apiVersion": "v1", "kind": "Pod",
                                 "metadata": {"name": "other", "namespace": "default"},
                                 "spec": {"schedulerName": "my-scheduler",
                                          "containers": [{"name": "c", "image": "busybox"}]}})
    await asyncio.sleep(0.3)
    assert not (await client.get("pods", "default", "other"))["spec"].get("nodeName")


async def test_event_recorder_aggregates_repeats(api):
    pod = await api.create("pods", {"apiVersion": "v1", "kind": "Pod",
                                    "metadata": {"name": "p", "namespace": "default"},
                                    "spec": {"containers": [{"name": "c", "image": "x"}]}})
    clock = iter(range(1_000_000, 1_000_100))
    recorder = EventRecorder(api, "kubelet", host="shoal", clock=lambda: next(clock))
    await asyncio.gather(*(recorder.event(pod, "Warning", "BackOff", "Back-off restarting")
                           for _ in range(3)))
    await recorder.event(pod, "Normal", "Pulled", "Container image \"x\" already present")
    events, _ = await api.list("events", "default")
    by_reason = {e["reason"]: e for e in events}
    assert len(events) == 2
    backoff = by_reason["BackOff"]
    assert backoff["count"] == 3
    assert backoff["firstTimestamp"] < backoff["lastTimestamp"]
    assert backoff["involvedObject"]["uid"] == pod["metadata"]["uid"]
    assert backoff["source"] == {"component": "kubelet", "host": "shoal"}
    assert by_reason["Pulled"]["count"] == 1


def _pod(name, ip, ready, ports=None, phase="Running", policy="Always"):
    return {"metadata": {"name": name, "namespace": "default", "uid": name},
            "spec": {"nodeName": "n", "restartPolicy": policy,
                     "containers": [{"name": "c", "ports": ports or []}]},
            "status": {"phase": phase, "podIP": ip,
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def test_build_subsets_groups_by_port_set_and_resolves_names():
    svc = {"metadata": {"name": "s"},
           "spec": {"ports": [{"name": "a", "port": 80, "targetPort": "http"},
                              {"name": "b", "port": 81, "targetPort": 9000}]}}
    named = [{"name": "http", "containerPort": 8080}]
    pods = [_pod("p2", "10.0.0.2", True, named), _pod("p1", "10.0.0.1", False, named),
            _pod("p3", "10.0.0.3", True, [{"name": "other", "containerPort": 1}]),
            _pod("p4", "", True, named),                    # no IP yet
            _pod("p5", "10.0.0.5", True, named, phase="Succeeded", policy="Never")]
    subsets = ep.build_subsets(svc, pods)
    assert subsets == [
        {"addresses": [{"ip": "10.0.0.2", "nodeName": "n",
                        "targetRef": {"kind": "Pod", "namespace": "default", "name": "p2",
                                      "uid": "p2"}}],
         "notReadyAddresses": [{"ip": "10.0.0.1", "nodeName": "n",
                                "targetRef": {"kind": "Pod", "namespace": "default",
                                              "name": "p1", "uid": "p1"}}],
         "ports": [{"name": "a", "port": 8080, "protocol": "TCP"},
                   {"name": "b", "port": 9000, "protocol": "TCP"}]},
        {"addresses": [{"ip": "10.0.0.3", "nodeName": "n",
                        "targetRef": {"kind": "Pod", "namespace": "default", "name": "p3",
                                      "uid": "p3"}}],
         "ports": [{"name": "b", "port": 9000, "protocol": "TCP"}]},
    ]


def test_publish_not_ready_and_no_selector():
    svc = {"metadata": {"name": "s"},
           "spec": {"publishNotReadyAddresses": True, "ports": [{"port": 80}]}}
    subsets = ep.build_subsets(svc, [_pod("p", "10.0.0.9", False)])
    assert [a["ip"] for a in subsets[0]["addresses"]] == ["10.0.0.9"]
    assert subsets[0]["ports"] == [{"port": 80, "protocol": "TCP"}]
    assert ep.service_selector({"spec": {"selector": {}}}) is None
    assert not ep.selects({"spec": {}}, {"app": "x"})


async def test_event_ttl_deletes_only_expired_events(api):
    from shoal.controllers.engine import Manager
    from shoal.controllers.eventttl import EventTTL

    pod = await api.create("pods", {"apiVersion": "v1", "kind": "Pod",
                                    "metadata": {"name": "p", "namespace": "default"},
                                    "spec": {"containers": [{"name": "c", "image": "x"}]}})
    now = 2_000_000_000.0
    old = EventRecorder(api, "kubelet", clock=lambda: now - 7200)
    new = EventRecorder(api, "kubelet", clock=lambda: now - 60)
    await old.event(pod, "Normal", "Pulled", "old news")
    await new.event(pod, "Normal", "Started", "recent")
    ttl = EventTTL(Manager(api), ttl=3600, interval=5, clock=lambda: now)
    result = await ttl.reconcile(Request(None, "sweep"))
    assert result.requeue_after == 5
    events, _ = await api.list("events", "default")
    assert [e["reason"] for e in events] == ["Started"]


async def test_many_similar_events_are_combined(api):
    pod = await api.create("pods", {"apiVersion": "v1", "kind": "Pod",
                                    "metadata": {"name": "p", "namespace": "default"},
                                    "spec": {"containers": [{"name": "c", "image": "x"}]}})
    recorder = EventRecorder(api, "kubelet")
    for i in range(12):
        await recorder.event(pod, "Warning", "Unhealthy", f"Readiness probe failed: attempt {i}")
    events, _ = await api.list("events", "default")
    assert len(events) == 10
    (combined,) = [e for e in events if e["message"].startswith("(combined from similar events)")]
    assert combined["count"] == 3
    assert combined["message"].endswith("attempt 11")
