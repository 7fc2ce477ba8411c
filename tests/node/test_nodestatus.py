"""The Node object and its heartbeat: pure status building, and the reporter against the
real API (LocalClient over SQLite) reading this machine's real facts."""

from __future__ import annotations

import asyncio
import os

import pytest

from shoal import timestamps
from shoal.api import errors as api_errors, fieldselectors, printers
from shoal.api.builtin.namespaces import SYSTEM_NAMESPACES
from shoal.api.quantity import parse_quantity
from shoal.controllers.events import EventRecorder
from shoal.node import nodestatus
from shoal.node.nodestatus import HostFacts, Readings

GiB = 1024 ** 3
HOST = HostFacts(cpus=4, memory_bytes=8 * GiB, disk_bytes=100 * GiB, kernel="6.1.0-test",
                 os_image="Debian GNU/Linux 12 (bookworm)", architecture="amd64",
                 machine_id="m1", boot_id="b1", runtime_version="runc://1.1.5",
                 internal_ip="10.42.0.1")
CALM = Readings(memory_available=4 * GiB, disk_available=50 * GiB, pids_used=300, pid_max=32768)


def test_os_image_is_pretty_name():
    text = 'NAME="Debian GNU/Linux"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n'
    assert nodestatus.os_image(text) == "Debian GNU/Linux 12 (bookworm)"
    assert nodestatus.os_image("") == "Linux"


def test_capacity_and_allocatable_less_eviction_thresholds():
    status = nodestatus.node_status("n", HOST, CALM, None, 1_000_000)
    assert status["capacity"]["cpu"] == "4" and status["capacity"]["pods"] == "110"
    assert parse_quantity(status["capacity"]["memory"]) == 8 * GiB
    assert parse_quantity(status["allocatable"]["memory"]) == 8 * GiB - 100 * 1024 ** 2
    assert parse_quantity(status["allocatable"]["ephemeral-storage"]) == int(100 * GiB * 0.9)
    assert status["addresses"] == [{"type": "InternalIP", "address": "10.42.0.1"},
                                   {"type": "Hostname", "address": "n"}]
    info = status["nodeInfo"]
    assert info["containerRuntimeVersion"] == "runc://1.1.5"
    assert info["kubeletVersion"].startswith("v1.") and info["operatingSystem"] == "linux"


def test_conditions_keep_transition_time_and_move_heartbeat():
    first = nodestatus.conditions(HOST, CALM, [], 1000)
    assert [c["type"] for c in first] == ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"]
    assert {c["type"]: c["status"] for c in first} == {
        "MemoryPressure": "False", "DiskPressure": "False", "PIDPressure": "False", "Ready": "True"}
    assert first[-1]["reason"] == "KubeletReady"
    squeezed = Readings(memory_available=50 * 1024 ** 2, disk_available=5 * GiB,
                        pids_used=32000, pid_max=32768)
    later = nodestatus.conditions(HOST, squeezed, first, 2000)
    by_type = {c["type"]: c for c in later}
    assert by_type["MemoryPressure"]["status"] == "True"
    assert by_type["MemoryPressure"]["reason"] == "KubeletHasInsufficientMemory"
    assert by_type["DiskPressure"]["reason"] == "KubeletHasDiskPressure"
    assert by_type["PIDPressure"]["reason"] == "KubeletHasInsufficientPID"
    assert by_type["MemoryPressure"]["lastTransitionTime"] == timestamps.format_time(2000)
    assert by_type["Ready"]["lastTransitionTime"] == timestamps.format_time(1000)
    assert by_type["Ready"]["lastHeartbeatTime"] == timestamps.format_time(2000)


def test_node_table_columns_as_kubectl_prints_them():
    node = nodestatus.node_object("shoal", HOST, CALM, 1000)
    node["metadata"]["creationTimestamp"] = timestamps.format_time(1000)
    table = printers.table("Node", [node], now=timestamps.parse_time(timestamps.format_time(1060)))
    text = printers.render_text(table, wide=True)
    header, row = text.splitlines()
    assert header.split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP",
                              "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"]
    assert row.split()[:4] == ["shoal", "Ready", "control-plane", "60s"]
    assert "10.42.0.1" in row and "<none>" in row and "runc://1.1.5" in row
    node["spec"]["unschedulable"] = True
    assert printers.table("Node", [node])["rows"][0]["cells"][1] == "Ready,SchedulingDisabled"


def test_nodes_select_by_unschedulable():
    node = nodestatus.node_object("shoal", HOST, CALM, 1000)
    schedulable = fieldselectors.parse_field_selector("spec.unschedulable=false", "Node")
    assert schedulable.matches(node)
    node["spec"]["unschedulable"] = True
    assert not schedulable.matches(node)


def test_transition_events_name_what_changed():
    first = nodestatus.conditions(HOST, CALM, [], 1000)
    assert nodestatus.transition_events([], first) == [
        "NodeHasSufficientMemory", "NodeHasNoDiskPressure", "NodeHasSufficientPID", "NodeReady"]
    again = nodestatus.conditions(HOST, CALM, first, 1010)
    assert nodestatus.transition_events(first, again) == []
    full = Readings(memory_available=4 * GiB, disk_available=GiB, pids_used=1, pid_max=32768)
    assert nodestatus.transition_events(
        again, nodestatus.conditions(HOST, full, again, 1020)) == ["NodeHasDiskPressure"]


def test_node_lease_namespace_is_a_system_namespace():
    assert "kube-node-lease" in SYSTEM_NAMESPACES


@pytest.fixture
async def api(tmp_path):
    from shoal.apiserver.local import LocalClient
    from shoal.controllers.namespace import ensure_namespaces

    async with LocalClient.open(tmp_path / "store.db") as client:
        await ensure_namespaces(client)
        yield client


async def test_reporter_registers_node_and_lease_and_keeps_them_current(api, tmp_path):
    reporter = nodestatus.NodeStatusReporter(api, "testnode", tmp_path, internal_ip="10.9.0.1",
                                             recorder=EventRecorder(api, "kubelet", host="testnode"),
                                             heartbeat=0.3, poll=0.1)
    await reporter.start()
    try:
        node = await api.get("nodes", None, "testnode")
        assert node["status"]["capacity"]["cpu"] == str(os.cpu_count())
        assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("runc://1.")
        assert node["status"]["nodeInfo"]["kernelVersion"] == os.uname().release
        ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
        assert ready and ready[0]["status"] == "True"
        lease = await api.get("leases", "kube-node-lease", "testnode")
        assert lease["spec"]["holderIdentity"] == "testnode"
        assert lease["metadata"]["ownerReferences"][0]["uid"] == node["metadata"]["uid"]

        # a user's taint survives the heartbeats; heartbeat and lease move on
        node["spec"]["taints"] = [{"key": "k", "value": "v", "effect": "NoSchedule"}]
        for _ in range(5):
            try:
                await api.update("nodes", node)
                break
            except api_errors.Conflict:  # a heartbeat raced us; re-read
                node = {**await api.get("nodes", None, "testnode"), "spec": node["spec"]}
        first_beat = ready[0]["lastHeartbeatTime"]
        await asyncio.sleep(1.6)
        later = await api.get("nodes", None, "testnode")
        assert later["spec"]["taints"][0]["key"] == "k"
        beat = [c for c in later["status"]["conditions"] if c["type"] == "Ready"][0]
        assert beat["lastHeartbeatTime"] > first_beat
        assert beat["lastTransitionTime"] == ready[0]["lastTransitionTime"]
        renewed = await api.get("leases", "kube-node-lease", "testnode")
        assert renewed["spec"]["renewTime"] > lease["spec"]["renewTime"]
        events, _ = await api.list("events", "default")
        by_reason = {e["reason"]: e for e in events if e["involvedObject"]["kind"] == "Node"}
        assert {"Starting", "NodeHasSufficientMemory", "NodeHasNoDiskPressure",
                "NodeHasSufficientPID", "NodeReady"} <= set(by_reason)
        assert by_reason["NodeReady"]["message"] == "Node testnode status is now: NodeReady"
        assert by_reason["NodeReady"]["count"] == 1  # heartbeats are not transitions
    finally:
        await reporter.stop()
