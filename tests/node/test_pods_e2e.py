"""The node agent end to end: real runc containers in real pod sandboxes, driven through
the API (LocalClient), asserting what `shoal get/describe pod` would show."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import signal
import time

import pytest

from shoal.node import access, paths
from shoal.node.metrics import CgroupUsage
from tests.node.conftest import (
    busybox_pod,
    container_status,
    eventually,
    init_status,
    is_ready,
    waiting_reason,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

def proxy_status(pod: dict) -> dict:
    """The injected istio-proxy's status: a native sidecar (initContainers) or, with older
    injectors, the first regular container."""
    return init_status(pod, "istio-proxy") or container_status(pod, "istio-proxy")


HTTPD = ["sh", "-c", "mkdir -p /www && echo hello > /www/index.html && exec httpd -f -p 8080 -h /www"]


async def test_pod_runs_ready_with_an_ip_and_logs(node):
    pod = busybox_pod("web", HTTPD, container={"readinessProbe": {"httpGet": {"path": "/", "port": 8080},
                                                                   "periodSeconds": 1}})
    await node.create_pod(pod)
    got = await node.wait_pod("web", is_ready)
    st = got["status"]
    assert st["phase"] == "Running"
    assert ipaddress.ip_address(st["podIP"]) in ipaddress.ip_network(node.settings.pod_cidr)
    cs = container_status(got)
    assert cs["containerID"].startswith("shoal://") and cs["restartCount"] == 0 and cs["started"]
    assert {c["type"] for c in st["conditions"]} >= {"PodScheduled", "Initialized", "ContainersReady", "Ready"}
    reasons = [e["reason"] for e in await node.events("web")]
    assert "Created" in reasons and "Started" in reasons
    # a steady pod's status is not rewritten (the agent resyncs every second here)
    await asyncio.sleep(2.5)
    assert (await node.pod("web"))["metadata"]["resourceVersion"] == got["metadata"]["resourceVersion"]

    # logs: the resolver gives the CRI log file the runtime writes
    cid, log = await access.resolve_container(node.client, node.settings, "default", "web")
    assert cid == cs["containerID"].removeprefix("shoal://")
    assert log == paths.log_path(paths.pod_dir_of(node.settings, got), "main", 0)


async def test_killed_process_is_restarted(node):
    await node.create_pod(busybox_pod("crashy-kill", ["sleep", "3600"]))
    got = await node.wait_pod("crashy-kill", lambda p: container_status(p).get("state", {}).get("running"))
    first = container_status(got)["containerID"].removeprefix("shoal://")
    st = await node.runtime.status(first)
    os.kill(st.pid, signal.SIGKILL)
    got = await node.wait_pod("crashy-kill", lambda p: container_status(p).get("restartCount") == 1
                              and container_status(p).get("state", {}).get("running"))
    cs = container_status(got)
    assert cs["containerID"] != f"shoal://{first}"
    assert cs["lastState"]["terminated"]["exitCode"] == 137
    assert cs["lastState"]["terminated"]["reason"] == "Error"
    _, prev_log = await access.resolve_container(node.client, node.settings, "default", "crashy-kill", previous=True)
    assert prev_log.name == "0.log"


async def test_crash_loop_backs_off_on_schedule(node):
    # base 0.5 s doubling, capped at 2 s (the fixture's BackoffPolicy)
    await node.create_pod(busybox_pod("crashloop", ["sh", "-c", "exit 3"]))
    starts: list[tuple[int, float]] = []
    saw_backoff = False
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(starts) < 5:
        got = await node.pod("crashloop")
        cs = container_status(got)
        if waiting_reason(got) == "CrashLoopBackOff":
            saw_backoff = True
            assert "back-off" in cs["state"]["waiting"]["message"]
        if cs and (not starts or starts[-1][0] != cs["restartCount"]):
            starts.append((cs["restartCount"], time.monotonic()))
        await asyncio.sleep(0.05)
    assert saw_backoff
    assert [n for n, _ in starts][:5] == [0, 1, 2, 3, 4] or len(starts) >= 4
    gaps = [b - a for (_, a), (_, b) in zip(starts, starts[1:])]
    # restart 1 immediately, then 0.5, 1, 2 s (+ the time a container takes to start and exit)
    assert gaps[0] < 1.0
    assert 0.4 < gaps[1] < 1.8
    assert 0.9 < gaps[2] < 2.8
    if len(gaps) > 3:
        assert 1.8 < gaps[3] < 3.8
    got = await node.pod("crashloop")
    assert got["status"]["phase"] == "Running"
    assert container_status(got)["lastState"]["terminated"]["exitCode"] == 3
    assert "BackOff" in [e["reason"] for e in await node.events("crashloop")]


async def test_failing_liveness_probe_restarts_container(node):
    pod = busybox_pod("unlively", ["sleep", "3600"], container={
        "livenessProbe": {"exec": {"command": ["test", "-f", "/tmp/healthy"]}, "periodSeconds": 1,
                          "failureThreshold": 2}})
    await node.create_pod(pod)
    await node.wait_pod("unlively", lambda p: container_status(p).get("restartCount", 0) >= 1, timeout=20)
    events = await node.events("unlively")
    # one Unhealthy per failed attempt, aggregated (failureThreshold 2 before the kill)
    assert sum(e["count"] for e in events
               if e["reason"] == "Unhealthy" and "Liveness probe failed" in e["message"]) >= 2
    assert any(e["reason"] == "Killing" for e in events)


async def test_failing_readiness_probe_flips_ready(node):
    pod = busybox_pod("flaky", ["sh", "-c", "touch /tmp/ready; exec sleep 3600"], container={
        "readinessProbe": {"exec": {"command": ["test", "-f", "/tmp/ready"]}, "periodSeconds": 1,
                           "failureThreshold": 1}})
    await node.create_pod(pod)
    got = await node.wait_pod("flaky", is_ready)
    cid = container_status(got)["containerID"].removeprefix("shoal://")
    code, _, _ = await node.runtime.exec(cid, ["rm", "/tmp/ready"])
    assert code == 0
    got = await node.wait_pod("flaky", lambda p: not is_ready(p) and p["status"]["phase"] == "Running")
    assert container_status(got)["ready"] is False and container_status(got)["restartCount"] == 0


async def test_pvc_data_survives_pod_replacement(node):
    await node.client.create("persistentvolumeclaims", {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": "default"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})

    async def bound() -> bool:
        pvc = await node.client.get("persistentvolumeclaims", "default", "data")
        return (pvc.get("status") or {}).get("phase") == "Bound"

    await eventually(bound, what="PVC bound")
    volume = {"volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}],
              "container": {"volumeMounts": [{"name": "d", "mountPath": "/data"}]}, "restartPolicy": "Never"}
    await node.create_pod(busybox_pod("writer", ["sh", "-c", "echo kept > /data/file"], **volume))
    await node.wait_pod("writer", lambda p: p["status"].get("phase") == "Succeeded")
    await node.client.delete("pods", "default", "writer")
    await node.wait_gone("writer")
    volume["container"]["volumeMounts"] = [{"name": "d", "mountPath": "/data"}]
    await node.create_pod(busybox_pod("reader", ["sh", "-c", "test \"$(cat /data/file)\" = kept"], **volume))
    got = await node.wait_pod("reader", lambda p: p["status"].get("phase") in ("Succeeded", "Failed"))
    assert got["status"]["phase"] == "Succeeded"
    pvc = await node.client.get("persistentvolumeclaims", "default", "data")
    directory = paths.claim_dir(node.settings, pvc)
    assert (directory / "file").read_text() == "kept\n"
    # deleting the claim while a running pod uses it keeps the data until the pod is gone
    await node.create_pod(busybox_pod("holder", ["sleep", "3600"], **{**volume, "restartPolicy": "Always"}))
    await node.wait_pod("holder", lambda p: container_status(p).get("state", {}).get("running"))
    await node.client.delete("persistentvolumeclaims", "default", "data")
    await asyncio.sleep(1.5)
    assert (directory / "file").exists()
    await node.client.delete("pods", "default", "reader")
    await node.client.delete("pods", "default", "holder")
    await node.wait_gone("holder")

    async def removed() -> bool:
        return not directory.exists()

    await eventually(removed, what="PVC directory removed")


async def test_configmap_change_appears_in_mounted_file(node):
    await node.client.create("configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                            "metadata": {"name": "conf", "namespace": "default"},
                                            "data": {"greeting": "v1"}})
    pod = busybox_pod("confread", ["sleep", "3600"], volumes=[{"name": "c", "configMap": {"name": "conf"}}],
                      container={"volumeMounts": [{"name": "c", "mountPath": "/etc/conf"}]})
    await node.create_pod(pod)
    got = await node.wait_pod("confread", lambda p: container_status(p).get("state", {}).get("running"))
    cid = container_status(got)["containerID"].removeprefix("shoal://")
    _, out, _ = await node.runtime.exec(cid, ["cat", "/etc/conf/greeting"])
    assert out == b"v1"
    cm = await node.client.get("configmaps", "default", "conf")
    cm["data"]["greeting"] = "v2"
    await node.client.update("configmaps", cm)

    async def updated() -> bool:
        _, out, _ = await node.runtime.exec(cid, ["cat", "/etc/conf/greeting"])
        return out == b"v2"

    await eventually(updated, what="ConfigMap update visible in the container")


async def test_memory_hog_is_oom_killed(node):
    pod = busybox_pod("hog", ["sh", "-c", "head -c 200m /dev/zero | tail"], restartPolicy="Never",
                      container={"resources": {"limits": {"memory": "32Mi"}}})
    await node.create_pod(pod)
    got = await node.wait_pod("hog", lambda p: p["status"].get("phase") == "Failed", timeout=30)
    term = container_status(got)["state"]["terminated"]
    assert term["reason"] == "OOMKilled"


async def test_missing_image_backs_off_with_clear_message(node):
    pod = busybox_pod("noimage", ["true"], container={"image": "does-not-exist:1.0"})
    await node.create_pod(pod)
    got = await node.wait_pod("noimage", lambda p: waiting_reason(p) == "ImagePullBackOff")
    message = container_status(got)["state"]["waiting"]["message"]
    assert "does-not-exist:1.0" in message and "not found in the local store" in message
    assert got["status"]["phase"] == "Pending"
    assert any(e["reason"] == "Failed" and "does-not-exist" in e["message"] for e in await node.events("noimage"))


async def test_missing_command_is_a_clear_container_error(node):
    await node.create_pod(busybox_pod("nocmd", ["/no/such/binary"]))
    got = await node.wait_pod("nocmd", lambda p: waiting_reason(p) == "CreateContainerError")
    waiting = container_status(got)["state"]["waiting"]
    assert waiting["reason"] == "CreateContainerError"
    assert waiting["message"] == 'exec: "/no/such/binary": stat /no/such/binary: no such file or directory'
    assert got["status"]["phase"] == "Pending"


async def test_missing_configmap_key_is_config_error(node):
    await node.client.create("configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                            "metadata": {"name": "partial", "namespace": "default"},
                                            "data": {"present": "yes"}})
    pod = busybox_pod("badkey", ["sleep", "3600"], container={"env": [
        {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "partial", "key": "absent"}}}]})
    await node.create_pod(pod)
    got = await node.wait_pod("badkey", lambda p: waiting_reason(p) == "CreateContainerConfigError")
    assert container_status(got)["state"]["waiting"]["message"] == \
        "couldn't find key absent in ConfigMap default/partial"


async def test_native_sidecar_starts_first_and_pod_completes(node):
    pod = {
        "metadata": {"name": "withsidecar"},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 2,
            "initContainers": [{
                "name": "proxy", "image": "busybox", "imagePullPolicy": "IfNotPresent", "restartPolicy": "Always",
                "command": ["sh", "-c", "sleep 1; mkdir -p /w; echo up > /w/index.html; exec httpd -f -p 9000 -h /w"],
                "startupProbe": {"tcpSocket": {"port": 9000}, "periodSeconds": 1, "failureThreshold": 30},
            }],
            "containers": [{
                "name": "app", "image": "busybox", "imagePullPolicy": "IfNotPresent",
                # no retry: if the sidecar were not up yet this fails and the pod Fails
                "command": ["sh", "-c", "timeout 3 wget -q -O - http://127.0.0.1:9000/ | grep up"],
            }],
        },
    }
    await node.create_pod(pod)
    got = await node.wait_pod("withsidecar", lambda p: p["status"].get("phase") in ("Succeeded", "Failed"),
                              timeout=30)
    assert got["status"]["phase"] == "Succeeded", got["status"]
    app = container_status(got, "app")["state"]["terminated"]
    proxy = init_status(got, "proxy")
    assert app["exitCode"] == 0
    assert "terminated" in proxy["state"]
    assert proxy["state"]["terminated"]["startedAt"] <= app["startedAt"]


async def test_delete_runs_prestop_then_sigterm_and_removes_pod(node, tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    pod = busybox_pod(
        "graceful",
        ["sh", "-c", "trap 'echo term >> /marks/log; exit 0' TERM; while true; do sleep 0.1; done"],
        volumes=[{"name": "m", "hostPath": {"path": str(marks)}}],
        container={"volumeMounts": [{"name": "m", "mountPath": "/marks"}],
                   "lifecycle": {"postStart": {"exec": {"command": ["sh", "-c", "echo poststart >> /marks/log"]}},
                                 "preStop": {"exec": {"command": ["sh", "-c", "echo prestop >> /marks/log"]}}}})
    pod["spec"]["terminationGracePeriodSeconds"] = 5
    await node.create_pod(pod)
    got = await node.wait_pod("graceful", lambda p: container_status(p).get("state", {}).get("running"))
    root = paths.pod_dir_of(node.settings, got)
    await node.client.delete("pods", "default", "graceful")
    await node.wait_gone("graceful", timeout=15)
    assert (marks / "log").read_text().split() == ["poststart", "prestop", "term"]
    assert not root.exists()
    assert await node.network.get_sandbox("default/graceful") is None


async def test_agent_restart_adopts_running_pods(node):
    await node.create_pod(busybox_pod("survivor", HTTPD, container={
        "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}))
    got = await node.wait_pod("survivor", is_ready)
    before = container_status(got)
    await node.restart_agent()
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:  # Ready never flaps while the new agent adopts the pod
        assert is_ready(await node.pod("survivor"))
        await asyncio.sleep(0.1)
    got = await node.wait_pod("survivor", is_ready)
    after = container_status(got)
    assert after == before  # nothing in the container's status changed, imageID included
    assert (after["containerID"], after["restartCount"]) == (before["containerID"], before["restartCount"])
    assert after["state"]["running"]["startedAt"] == before["state"]["running"]["startedAt"]


async def test_deployment_of_three_becomes_ready(node):
    from shoal.controllers import ControllerOptions, run_controllers

    manager = await run_controllers(node.client, node.settings, ControllerOptions(retry_base=0.05, retry_cap=1))
    try:
        await node.client.create("deployments.apps", {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "trio", "namespace": "default"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "trio"}},
                     "template": {"metadata": {"labels": {"app": "trio"}},
                                  "spec": {"terminationGracePeriodSeconds": 1, "containers": [
                                      {"name": "web", "image": "busybox", "imagePullPolicy": "IfNotPresent",
                                       "command": HTTPD,
                                       "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}]}}}})

        async def ready() -> bool:
            d = await node.client.get("deployments.apps", "default", "trio")
            return (d.get("status") or {}).get("readyReplicas") == 3

        await eventually(ready, timeout=30, what="3/3 ready replicas")
        pods, _ = await node.client.list("pods", "default", label_selector="app=trio")
        assert len({p["status"]["podIP"] for p in pods}) == 3
        await node.client.delete("deployments.apps", "default", "trio")

        async def gone() -> bool:
            pods, _ = await node.client.list("pods", "default", label_selector="app=trio")
            return not pods

        await eventually(gone, timeout=30, what="deployment's pods removed")
    finally:
        await manager.stop()


async def test_init_containers_in_order_with_secret_and_memory_volumes(node):
    await node.client.create("secrets", {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                                         "metadata": {"name": "creds", "namespace": "default"},
                                         "stringData": {"token": "t0k3n"}})
    init = [{"name": f"step{i}", "image": "busybox", "imagePullPolicy": "IfNotPresent",
             "command": ["sh", "-c", f"echo step{i} >> /cache/order"],
             "volumeMounts": [{"name": "cache", "mountPath": "/cache"}]} for i in (1, 2)]
    check = ("grep -q ' /cache tmpfs ' /proc/mounts && test \"$(cat /cache/order | tr '\\n' ' ')\" = 'step1 step2 ' "
             "&& test \"$(cat /secret/token)\" = t0k3n && test \"$TOKEN\" = t0k3n && test \"$MY_NAME\" = ordered")
    pod = busybox_pod("ordered", ["sh", "-c", check], restartPolicy="Never",
                      volumes=[{"name": "cache", "emptyDir": {"medium": "Memory", "sizeLimit": "8Mi"}},
                               {"name": "s", "secret": {"secretName": "creds", "defaultMode": 0o400}}],
                      container={"volumeMounts": [{"name": "cache", "mountPath": "/cache"},
                                                  {"name": "s", "mountPath": "/secret", "readOnly": True}],
                                 "env": [{"name": "MY_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                                 "envFrom": [{"secretRef": {"name": "creds"}, "prefix": ""}]})
    pod["spec"]["containers"][0]["env"].append(
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}})
    pod["spec"]["initContainers"] = init
    await node.create_pod(pod)
    got = await node.wait_pod("ordered", lambda p: p["status"].get("phase") in ("Succeeded", "Failed"))
    assert got["status"]["phase"] == "Succeeded", got["status"]
    assert [s["state"]["terminated"]["reason"] for s in got["status"]["initContainerStatuses"]] == \
        ["Completed", "Completed"]
    root = paths.pod_dir_of(node.settings, got)
    await node.client.delete("pods", "default", "ordered")
    await node.wait_gone("ordered")

    async def unmounted() -> bool:
        return str(root) not in open("/proc/mounts").read()

    await eventually(unmounted, what="memory emptyDir unmounted")


async def test_top_pods_reports_cgroup_usage(node):
    await node.create_pod(busybox_pod("busy", ["sh", "-c", "head -c 20m /dev/zero > /dev/shm/x 2>/dev/null || "
                                                         "head -c 20m /dev/zero > /tmp/x; while :; do :; done"]))
    await node.wait_pod("busy", lambda p: container_status(p).get("state", {}).get("running"))
    await asyncio.sleep(0.5)
    usage = CgroupUsage(node.client, node.runtime, node.settings.node_name)
    rows = [u for u in await usage.pod_usage("default") if u.name == "busy"]
    assert len(rows) == 1
    assert [c.name for c in rows[0].containers] == ["main"]
    main = rows[0].containers[0]
    assert main.cpu_nanocores > 100_000_000  # a busy loop uses a good part of a core
    assert main.memory_bytes > 1024 * 1024
    await node.client.delete("pods", "default", "busy")
    await node.wait_gone("busy")


async def test_host_network_pod_sees_the_host_interfaces(node):
    check = f"test -e /sys/class/net/{node.settings.bridge} && grep -q nameserver /etc/resolv.conf"
    await node.create_pod(busybox_pod("hostnet", ["sh", "-c", check], restartPolicy="Never", hostNetwork=True))
    got = await node.wait_pod("hostnet", lambda p: p["status"].get("phase") in ("Succeeded", "Failed"))
    assert got["status"]["phase"] == "Succeeded"
    assert got["status"]["podIP"] == got["status"]["hostIP"]
    await node.client.delete("pods", "default", "hostnet")
    await node.wait_gone("hostnet")


async def test_image_change_restarts_the_container(node):
    await asyncio.to_thread(node.images.tag, "busybox", "busybox:v2")
    await node.create_pod(busybox_pod("upgrade", ["sleep", "3600"]))
    got = await node.wait_pod("upgrade", lambda p: container_status(p).get("state", {}).get("running"))
    got["spec"]["containers"][0]["image"] = "busybox:v2"
    await node.client.update("pods", got)
    got = await node.wait_pod("upgrade", lambda p: container_status(p).get("image") == "busybox:v2"
                              and container_status(p).get("state", {}).get("running"))
    assert container_status(got)["restartCount"] == 1
    assert any("definition changed" in e["message"] for e in await node.events("upgrade"))
    await node.client.delete("pods", "default", "upgrade")
    await node.wait_gone("upgrade")


async def test_dying_sidecar_is_restarted_without_touching_the_app(node):
    pod = busybox_pod("sidecar-dies", ["sleep", "3600"])
    pod["spec"]["initContainers"] = [{"name": "helper", "image": "busybox", "imagePullPolicy": "IfNotPresent",
                                      "restartPolicy": "Always", "command": ["sh", "-c", "sleep 1; exit 1"]}]
    await node.create_pod(pod)
    got = await node.wait_pod("sidecar-dies", lambda p: init_status(p, "helper").get("restartCount", 0) >= 2,
                              timeout=20)
    assert container_status(got)["restartCount"] == 0
    assert "running" in container_status(got)["state"]
    assert {c["type"]: c["status"] for c in got["status"]["conditions"]}["Initialized"] == "True"
    await node.client.delete("pods", "default", "sidecar-dies")
    await node.wait_gone("sidecar-dies")


async def test_meshed_pod_gets_capture_rules_and_an_envoy_sidecar_that_holds_the_app(node):
    """An injected pod (shoal.mesh.inject): capture rules in its netns before anything
    runs, Envoy as UID 1337 in the pod netns, and the app held until the proxy is ready
    (no control plane here, so the proxy never is)."""
    import subprocess
    import sys

    from shoal.mesh import inject

    app = busybox_pod("meshed", ["sleep", "3600"])
    pod = inject.inject(app)
    await node.create_pod(pod)
    got = await node.wait_pod("meshed", lambda p: proxy_status(p).get("state", {}).get("running"), timeout=30)
    assert waiting_reason(got, "main") in ("PodInitializing", "ContainerCreating")
    sandbox = await node.network.get_sandbox("default/meshed")
    nat = subprocess.run(["ip", "netns", "exec", sandbox.netns_name, "iptables-save", "-t", "nat"],
                         capture_output=True, text=True, check=True).stdout
    assert "ISTIO_OUTPUT" in nat and "--uid-owner 1337" in nat
    cid = proxy_status(got)["containerID"].removeprefix("shoal://")
    st = await node.runtime.status(cid)
    uids = [line for line in open(f"/proc/{st.pid}/status").read().splitlines() if line.startswith("Uid:")]
    assert uids[0].split()[1] == "1337"

    async def admin_listening() -> bool:
        probe = subprocess.run(["ip", "netns", "exec", sandbox.netns_name, sys.executable, "-c",
                                "import socket; socket.create_connection(('127.0.0.1', 15000), 1)"],
                               capture_output=True)
        return probe.returncode == 0

    await eventually(admin_listening, what="Envoy admin listening in the pod netns")
    await asyncio.sleep(1)
    got = await node.pod("meshed")
    assert waiting_reason(got, "main") in ("PodInitializing", "ContainerCreating") and not is_ready(got)
    await node.client.delete("pods", "default", "meshed")
    await node.wait_gone("meshed")


async def test_meshed_app_starts_once_envoy_has_its_config(node, tmp_path):
    """With the mesh's real control plane (MeshControl + XdsServer on a per-pod Unix
    socket), the Envoy sidecar gets its config, turns ready, and only then the app starts."""
    from shoal.mesh import ca as mesh_ca
    from shoal.mesh import inject
    from shoal.mesh.control import MeshControl
    from shoal.mesh.meshconfig import MeshConfig
    from shoal.mesh.server import XdsServer
    from shoal.mesh.source import NAMESPACES, PODS, InMemorySource
    from shoal.mesh.sidecar import MeshHooks

    source = InMemorySource()
    source.put(NAMESPACES, {"metadata": {"name": "default", "labels": {"istio-injection": "enabled"}}})
    control = MeshControl(source, mesh_ca.MeshCA.load_or_create(tmp_path / "ca"), MeshConfig())
    await control.start()
    server = XdsServer(control)
    await node.restart_agent(hooks=MeshHooks(xds_server=server, socket_dir=node.settings.run_dir / "xds"))
    try:
        # the app's readiness probe must pass although inbound traffic to it is captured
        # into the sidecar, which wants mTLS (STRICT): the agent probes inside the pod netns
        app = busybox_pod("meshed-ready", HTTPD, container={
            "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1}})
        await node.create_pod(inject.inject(app))
        got = await node.wait_pod("meshed-ready", lambda p: p["status"].get("podIP"))
        assert not container_status(got, "main").get("state", {}).get("running")
        source.put(PODS, got)  # what the daemon's ClusterSource over the API would show
        got = await node.wait_pod("meshed-ready", is_ready, timeout=40)
        proxy = proxy_status(got)
        app = container_status(got, "main")
        assert proxy["ready"] and app["ready"]
        assert proxy["state"]["running"]["startedAt"] <= app["state"]["running"]["startedAt"]
        # a daemon restart (new agent, new xDS server) re-binds the pod's socket: Envoy
        # reconnects and stays ready, nothing restarts
        await server.stop(0)
        server = XdsServer(control)
        await node.restart_agent(hooks=MeshHooks(xds_server=server, socket_dir=node.settings.run_dir / "xds"))

        async def reconnected() -> bool:
            return any(st.connected and st.sent for st in server.status())  # sent by the new server

        await eventually(reconnected, timeout=20, what="sidecar reconnected to the new xDS server")
        got = await node.wait_pod("meshed-ready", is_ready)
        assert proxy_status(got)["restartCount"] == 0
        await node.client.delete("pods", "default", "meshed-ready")
        await node.wait_gone("meshed-ready")
    finally:
        await node.restart_agent()
        await server.stop(0)
        await control.stop()


async def test_termination_messages_from_file_and_from_logs(node):
    await node.create_pod(busybox_pod("says-why", ["sh", "-c", "echo 'disk full' > /dev/termination-log; exit 2"],
                                      restartPolicy="Never"))
    pod = busybox_pod("logs-why", ["sh", "-c", "echo starting; echo 'cannot connect to db'; exit 1"],
                      restartPolicy="Never", container={"terminationMessagePolicy": "FallbackToLogsOnError"})
    await node.create_pod(pod)
    for name, expected in (("says-why", "disk full\n"), ("logs-why", "starting\ncannot connect to db")):
        got = await node.wait_pod(name, lambda p: p["status"].get("phase") == "Failed")
        assert container_status(got)["state"]["terminated"]["message"] == expected
        await node.client.delete("pods", "default", name)
        await node.wait_gone(name)


async def test_active_deadline_fails_the_pod(node):
    await node.create_pod(busybox_pod("deadline", ["sleep", "3600"], activeDeadlineSeconds=2))
    got = await node.wait_pod("deadline", lambda p: p["status"].get("phase") == "Failed", timeout=15)
    assert got["status"]["reason"] == "DeadlineExceeded"
    assert "terminated" in container_status(got)["state"]
    await node.client.delete("pods", "default", "deadline")
    await node.wait_gone("deadline")


async def test_image_with_a_registry_host_is_pulled(node, tmp_path):
    """A reference naming a registry (a real docker-registry on 127.0.0.1, seeded with
    skopeo) is pulled per imagePullPolicy, with the kubelet's Pulling/Pulled events."""
    from tests.images.registry_fixtures import Registry

    archive = tmp_path / "busybox.oci.tar"
    await asyncio.to_thread(node.images.export, "busybox", archive, "oci-archive")
    registry = await asyncio.to_thread(Registry, tmp_path / "registry")
    try:
        await asyncio.to_thread(registry.seed, archive, "shoal/pulled:1")
        image = f"{registry.host}/shoal/pulled:1"
        pod = busybox_pod("pulled", ["sleep", "3600"], container={"image": image})
        await node.create_pod(pod)
        got = await node.wait_pod("pulled", lambda p: container_status(p).get("state", {}).get("running"),
                                  timeout=30)
        assert container_status(got)["imageID"].startswith("sha256:")
        reasons = [(e["reason"], e["message"]) for e in await node.events("pulled")]
        assert ("Pulling", f'Pulling image "{image}"') in reasons
        assert any(r == "Pulled" and m.startswith(f'Successfully pulled image "{image}"') for r, m in reasons)
        await node.client.delete("pods", "default", "pulled")
        await node.wait_gone("pulled")
    finally:
        await asyncio.to_thread(registry.close)


async def test_private_registry_needs_the_pods_image_pull_secret(node, tmp_path):
    import base64
    import json

    from tests.images.registry_fixtures import PASSWORD, USER, Registry, TokenServer

    archive = tmp_path / "busybox.oci.tar"
    await asyncio.to_thread(node.images.export, "busybox", archive, "oci-archive")
    tokens = await asyncio.to_thread(TokenServer, tmp_path)
    registry = await asyncio.to_thread(Registry, tmp_path / "registry", tokens)
    try:
        await asyncio.to_thread(registry.seed, archive, "shoal/private:1", f"{USER}:{PASSWORD}")
        image = f"{registry.host}/shoal/private:1"
        await node.create_pod(busybox_pod("no-creds", ["sleep", "3600"], container={"image": image}))
        got = await node.wait_pod("no-creds", lambda p: waiting_reason(p) in ("ErrImagePull", "ImagePullBackOff"))
        message = container_status(got)["state"]["waiting"]["message"]
        assert image in message and ("401" in message or "auth" in message.lower())
        auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        config = json.dumps({"auths": {registry.host: {"auth": auth}}})
        await node.client.create("secrets", {
            "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
            "metadata": {"name": "regcred", "namespace": "default"},
            "data": {".dockerconfigjson": base64.b64encode(config.encode()).decode()}})
        await node.create_pod(busybox_pod("with-creds", ["sleep", "3600"], container={"image": image},
                                          imagePullSecrets=[{"name": "regcred"}]))
        await node.wait_pod("with-creds", lambda p: container_status(p).get("state", {}).get("running"), timeout=30)
        for name in ("no-creds", "with-creds"):
            await node.client.delete("pods", "default", name)
            await node.wait_gone(name)
    finally:
        await asyncio.to_thread(registry.close)
        await asyncio.to_thread(tokens.close)
