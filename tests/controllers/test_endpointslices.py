"""EndpointSlices as Kubernetes' endpointslice controller builds them (pure), and the
controller writing, updating and deleting them through a real API registry."""

from __future__ import annotations

import asyncio

import pytest

from shoal.apiserver.local import LocalClient
from shoal.controllers import engine
from shoal.controllers.endpointslices import (MANAGED_BY, MANAGED_BY_LABEL, SERVICE_NAME_LABEL, SLICES,
                                              EndpointSliceController, build_slices)
from shoal.controllers.events import EventRecorder

SERVICE = {"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": "web", "namespace": "default", "uid": "svc-uid", "labels": {"tier": "front"}},
           "spec": {"selector": {"app": "web"}, "clusterIP": "10.43.0.10",
                    "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]}}


def pod(name, ip, *, ready=True, port=8080, deleting=False, phase="Running"):
    meta = {"name": name, "namespace": "default", "uid": f"uid-{name}", "labels": {"app": "web"}}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta,
            "spec": {"nodeName": "node1", "containers": [{"name": "c", "ports": [
                {"name": "http", "containerPort": port, "protocol": "TCP"}]}]},
            "status": {"podIP": ip, "phase": phase,
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def test_slice_shape_labels_conditions_and_named_ports():
    [one] = build_slices(SERVICE, [pod("b", "10.42.0.6", ready=False), pod("a", "10.42.0.5"),
                                   pod("c", "10.42.0.7", deleting=True), pod("d", "", ready=False)])
    assert one["metadata"]["name"].startswith("web-") and len(one["metadata"]["name"]) == 9
    assert one["metadata"]["labels"] == {"tier": "front", SERVICE_NAME_LABEL: "web", MANAGED_BY_LABEL: MANAGED_BY}
    assert one["addressType"] == "IPv4" and one["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    assert [(e["addresses"], e["conditions"]) for e in one["endpoints"]] == [
        (["10.42.0.5"], {"ready": True, "serving": True, "terminating": False}),
        (["10.42.0.6"], {"ready": False, "serving": False, "terminating": False}),
        (["10.42.0.7"], {"ready": False, "serving": True, "terminating": True}),
    ]
    assert one["endpoints"][0]["targetRef"] == {"kind": "Pod", "namespace": "default", "name": "a", "uid": "uid-a"}
    assert one["endpoints"][0]["nodeName"] == "node1"


def test_pods_with_other_resolved_ports_get_their_own_slice_and_nothing_gives_a_placeholder():
    slices = build_slices(SERVICE, [pod("a", "10.42.0.5"), pod("b", "10.42.0.6", port=9090)])
    assert sorted(s["ports"][0]["port"] for s in slices) == [8080, 9090]
    assert len({s["metadata"]["name"] for s in slices}) == 2
    [empty] = build_slices(SERVICE, [])
    assert empty["endpoints"] == [] and empty["ports"] == []
    assert build_slices(SERVICE, [pod("a", "10.42.0.5")]) == build_slices(SERVICE, [pod("a", "10.42.0.5")])


@pytest.fixture
async def api(tmp_path):
    async with LocalClient.open(tmp_path / "store.db") as client:
        yield client


async def test_controller_publishes_updates_and_removes_slices(api):
    manager = engine.Manager(api)
    manager.add(EndpointSliceController(manager, EventRecorder(api, "endpoint-slice-controller")).controller())
    async with manager:
        service = await api.create("services", {k: v for k, v in SERVICE.items() if k != "metadata"} | {
            "metadata": {"name": "web", "namespace": "default"}})
        body = pod("a", "")
        del body["metadata"]["uid"]
        created = await api.create("pods", {"apiVersion": "v1", "kind": "Pod", **body,
                                            "spec": {**body["spec"], "containers": [{
                                                "name": "c", "image": "busybox",
                                                "ports": body["spec"]["containers"][0]["ports"]}]}})
        created["status"] = pod("a", "10.42.0.5")["status"]
        await api.update_status("pods", created)

        async def slices():
            for _ in range(100):
                items, _ = await api.list(SLICES, "default")
                if items and items[0].get("endpoints"):
                    return items
                await asyncio.sleep(0.05)
            return items

        [published] = await slices()
        assert published["endpoints"][0]["addresses"] == ["10.42.0.5"]
        owner = published["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
            "Service", "web", service["metadata"]["uid"], True)
        await api.delete("services", "default", "web")
        for _ in range(100):
            items, _ = await api.list(SLICES, "default")
            if not items:
                break
            await asyncio.sleep(0.05)
        assert items == []
