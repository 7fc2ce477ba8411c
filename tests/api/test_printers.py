"""Table printing: kubectl's columns, STATUS values, AGE and text alignment."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import shutil
import subprocess
import threading

import pytest

from shoal.api import printers

NOW = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.timezone.utc)


def ago(seconds: int) -> str:
    return (NOW - dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def meta(name: str, seconds: int = 60, **extra) -> dict:
    return {"name": name, "namespace": "default", "creationTimestamp": ago(seconds), **extra}


def headers(kind: str, objects: list, wide: bool = False) -> list[str]:
    """Column headers of a Table built without (default) or with the wide columns."""
    table = printers.table(kind, objects, wide=wide, now=NOW)
    return [c["name"].upper() for c in table["columnDefinitions"]]


def cells(kind: str, obj: dict, wide: bool = False) -> list:
    table = printers.table(kind, [obj], wide=wide, now=NOW)
    return table["rows"][0]["cells"]


# ----------------------------------------------------------------------------- AGE


@pytest.mark.parametrize("seconds,text", [
    (-5, "<invalid>"), (-1, "0s"), (0, "0s"), (5, "5s"), (119, "119s"), (120, "2m"),
    (200, "3m20s"), (599, "9m59s"), (600, "10m"), (3 * 3600 - 1, "179m"), (3 * 3600, "3h"),
    (5 * 3600 + 30 * 60, "5h30m"), (8 * 3600, "8h"), (47 * 3600, "47h"),
    (52 * 3600, "2d4h"), (3 * 86400, "3d"), (8 * 86400, "8d"), (400 * 86400, "400d"),
    (800 * 86400, "2y70d"), (3 * 365 * 86400, "3y"), (9 * 365 * 86400, "9y"),
])
def test_age_is_formatted_like_human_duration(seconds, text):
    assert printers.human_duration(seconds) == text


def test_age_of_an_object_without_creation_timestamp_is_unknown():
    assert cells("ConfigMap", {"metadata": {"name": "c"}}) == ["c", 0, "<unknown>"]


# ----------------------------------------------------------------------------- Pods


def pod(status: dict, *, containers=("web",), init=(), deleting=False, **spec) -> dict:
    metadata = meta("web-1", 200)
    if deleting:
        metadata["deletionTimestamp"] = ago(1)
    return {"kind": "Pod", "metadata": metadata,
            "spec": {"containers": [{"name": c} for c in containers],
                     "initContainers": [{"name": c} for c in init], **spec},
            "status": status}


def running(name="web", ready=True, restarts=0, **extra):
    return {"name": name, "ready": ready, "restartCount": restarts,
            "state": {"running": {"startedAt": ago(100)}}, **extra}


def waiting(reason, name="web", restarts=0, **extra):
    return {"name": name, "ready": False, "restartCount": restarts,
            "state": {"waiting": {"reason": reason}}, **extra}


def terminated(reason, name="web", exit_code=0, restarts=0, **extra):
    state = {"exitCode": exit_code}
    if reason:
        state["reason"] = reason
    return {"name": name, "ready": False, "restartCount": restarts,
            "state": {"terminated": state}, **extra}


READY = [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}]


@pytest.mark.parametrize("obj,ready,status,restarts", [
    (pod({"phase": "Pending"}), "0/1", "Pending", "0"),
    (pod({"phase": "Running", "conditions": READY, "containerStatuses": [running()]}),
     "1/1", "Running", "0"),
    (pod({"phase": "Pending", "containerStatuses": [waiting("ContainerCreating")]}),
     "0/1", "ContainerCreating", "0"),
    (pod({"phase": "Running", "containerStatuses": [waiting(
        "CrashLoopBackOff", restarts=5,
        lastState={"terminated": {"exitCode": 1, "finishedAt": ago(300)}})]}),
     "0/1", "CrashLoopBackOff", "5 (5m ago)"),
    (pod({"phase": "Pending", "containerStatuses": [waiting("ImagePullBackOff")]}),
     "0/1", "ImagePullBackOff", "0"),
    (pod({"phase": "Pending", "containerStatuses": [waiting("ErrImagePull")]}),
     "0/1", "ErrImagePull", "0"),
    (pod({"phase": "Succeeded", "containerStatuses": [terminated("Completed")]}),
     "0/1", "Completed", "0"),
    (pod({"phase": "Failed", "containerStatuses": [terminated("OOMKilled", exit_code=137)]}),
     "0/1", "OOMKilled", "0"),
    (pod({"phase": "Failed", "containerStatuses": [terminated("", exit_code=3)]}),
     "0/1", "ExitCode:3", "0"),
    (pod({"phase": "Failed", "containerStatuses": [
        {**terminated("", exit_code=0), "state": {"terminated": {"exitCode": 0, "signal": 9}}}]}),
     "0/1", "Signal:9", "0"),
    (pod({"phase": "Running", "conditions": READY, "containerStatuses": [running()]},
         deleting=True), "1/1", "Terminating", "0"),
    (pod({"phase": "Succeeded", "containerStatuses": [terminated("Completed")]}, deleting=True),
     "0/1", "Completed", "0"),
    (pod({"phase": "Pending", "initContainerStatuses": [
        {"name": "setup", "restartCount": 0, "state": {"running": {}}}],
        "containerStatuses": [waiting("PodInitializing")]}, init=("setup",)),
     "0/1", "Init:0/1", "0"),
    (pod({"phase": "Pending", "initContainerStatuses": [
        terminated("Completed", name="a"),
        {"name": "b", "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}],
        "containerStatuses": [waiting("PodInitializing")]}, init=("a", "b")),
     "0/1", "Init:1/2", "0"),
    (pod({"phase": "Pending", "initContainerStatuses": [
        waiting("CrashLoopBackOff", name="a", restarts=3,
                lastState={"terminated": {"exitCode": 1, "finishedAt": ago(30)}})],
        "containerStatuses": [waiting("PodInitializing")]}, init=("a",)),
     "0/1", "Init:CrashLoopBackOff", "3 (30s ago)"),
    (pod({"phase": "Pending", "initContainerStatuses": [terminated("Error", name="a", exit_code=1)],
          "containerStatuses": [waiting("PodInitializing")]}, init=("a",)),
     "0/1", "Init:Error", "0"),
    (pod({"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}],
          "containerStatuses": [running("web"), terminated("Completed", name="job")]},
         containers=("web", "job")), "1/2", "NotReady", "0"),
    (pod({"phase": "Running", "conditions": READY,
          "containerStatuses": [running("web", restarts=1, lastState={"terminated": {
              "exitCode": 1, "finishedAt": ago(7200)}}), running("proxy", ready=False)]},
         containers=("web", "proxy")), "1/2", "Running", "1 (120m ago)"),
    (pod({"phase": "Failed", "reason": "Evicted"}), "0/1", "Evicted", "0"),
])
def test_pod_status_like_kubectl(obj, ready, status, restarts):
    row = cells("Pod", obj)
    assert row[1:4] == [ready, status, restarts]
    assert row[0] == "web-1" and row[4] == "3m20s"


def test_pod_columns_and_wide_cells():
    obj = pod({"phase": "Running", "podIP": "10.42.0.5", "podIPs": [{"ip": "10.42.0.5"}],
               "conditions": READY + [{"type": "example.com/gate", "status": "True"}],
               "containerStatuses": [running()]},
              nodeName="shoal", readinessGates=[{"conditionType": "example.com/gate"},
                                                {"conditionType": "other"}])
    assert headers("Pod", [obj]) == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert headers("Pod", [obj], wide=True)[5:] == ["IP", "NODE", "NOMINATED NODE",
                                                    "READINESS GATES"]
    assert cells("Pod", obj, wide=True)[5:] == ["10.42.0.5", "shoal", "<none>", "1/2"]
    assert cells("Pod", pod({"phase": "Pending"}), wide=True)[5:] == [
        "<none>", "<none>", "<none>", "<none>"]


def test_finished_pods_carry_the_completed_row_condition():
    table = printers.table("Pod", [pod({"phase": "Succeeded"}), pod({"phase": "Running"})], now=NOW)
    assert table["rows"][0]["conditions"][0]["reason"] == "Succeeded"
    assert "conditions" not in table["rows"][1]


def test_table_shape_for_kubectl():
    obj = pod({"phase": "Pending"})
    obj["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    table = printers.table("Pod", [obj], now=NOW, resource_version="42")
    assert table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1"
    assert table["metadata"] == {"resourceVersion": "42"}
    # By default the Table carries the -o wide columns too, as a Kubernetes server sends it.
    assert [c["priority"] for c in table["columnDefinitions"]] == [0] * 5 + [1] * 4
    assert len(table["rows"][0]["cells"]) == 9
    assert "IP" not in printers.render_text(table) and "IP" in printers.render_text(table, wide=True)
    assert table["columnDefinitions"][0] == {
        "name": "Name", "type": "string", "format": "name",
        "description": printers.NAME["description"], "priority": 0}
    row_object = table["rows"][0]["object"]
    assert row_object["kind"] == "PartialObjectMetadata"
    assert row_object["metadata"]["name"] == "web-1"
    assert "managedFields" not in row_object["metadata"]
    full = printers.table("Pod", [obj], now=NOW, include_object="Object")
    assert full["rows"][0]["object"] is obj
    assert "object" not in printers.table("Pod", [obj], now=NOW, include_object="None")["rows"][0]


# ----------------------------------------------------------------------------- other kinds

DEPLOYMENT = {"kind": "Deployment", "metadata": meta("web", 52 * 3600),
              "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                       "template": {"spec": {"containers": [
                           {"name": "web", "image": "nginx:1.27"},
                           {"name": "proxy", "image": "envoy:1.40"}]}}},
              "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}}


def test_deployment_columns():
    assert headers("Deployment", [DEPLOYMENT], wide=True) == [
        "NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"]
    assert cells("Deployment", DEPLOYMENT, wide=True) == [
        "web", "2/3", 3, 2, "2d4h", "web,proxy", "nginx:1.27,envoy:1.40", "app=web"]
    assert cells("Deployment", {"metadata": {"name": "new"}, "spec": {}}) == [
        "new", "0/1", 0, 0, "<unknown>"]


def test_replicaset_columns():
    rs = {**DEPLOYMENT, "kind": "ReplicaSet", "status": {"replicas": 3, "readyReplicas": 1}}
    assert headers("ReplicaSet", [rs]) == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
    assert cells("ReplicaSet", rs) == ["web", 3, 3, 1, "2d4h"]
    assert cells("ReplicaSet", rs, wide=True)[5:] == ["web,proxy", "nginx:1.27,envoy:1.40", "app=web"]


@pytest.mark.parametrize("spec,status,expected", [
    ({"type": "ClusterIP", "clusterIP": "10.43.0.10", "clusterIPs": ["10.43.0.10"],
      "ports": [{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}],
      "selector": {"app": "web", "tier": "x"}},
     {}, ["ClusterIP", "10.43.0.10", "<none>", "80/TCP,53/UDP", "app=web,tier=x"]),
    ({"type": "NodePort", "clusterIP": "10.43.0.11",
      "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}]},
     {}, ["NodePort", "10.43.0.11", "<none>", "80:30080/TCP", "<none>"]),
    ({"type": "ClusterIP", "clusterIP": "None", "ports": [{"port": 80}]},
     {}, ["ClusterIP", "None", "<none>", "80/TCP", "<none>"]),
    ({"type": "LoadBalancer", "clusterIP": "10.43.0.12", "ports": [{"port": 443, "nodePort": 31443}]},
     {}, ["LoadBalancer", "10.43.0.12", "<pending>", "443:31443/TCP", "<none>"]),
    ({"type": "LoadBalancer", "clusterIP": "10.43.0.12", "ports": []},
     {"loadBalancer": {"ingress": [{"ip": "127.0.0.1"}]}},
     ["LoadBalancer", "10.43.0.12", "127.0.0.1", "<none>", "<none>"]),
    ({"type": "ExternalName", "externalName": "db.example.com"},
     {}, ["ExternalName", "<none>", "db.example.com", "<none>", "<none>"]),
])
def test_service_columns(spec, status, expected):
    svc = {"kind": "Service", "metadata": meta("web", 30), "spec": spec, "status": status}
    assert headers("Service", [svc], wide=True) == [
        "NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE", "SELECTOR"]
    row = cells("Service", svc, wide=True)
    assert row == ["web", *expected[:4], "30s", expected[4]]


def test_endpoints_show_three_then_count_the_rest():
    ep = {"kind": "Endpoints", "metadata": meta("web"), "subsets": [{
        "addresses": [{"ip": f"10.42.0.{i}"} for i in (5, 6, 7, 8)],
        "ports": [{"port": 8080, "name": "http"}]}]}
    assert headers("Endpoints", [ep]) == ["NAME", "ENDPOINTS", "AGE"]
    assert cells("Endpoints", ep)[1] == "10.42.0.5:8080,10.42.0.6:8080,10.42.0.7:8080 + 1 more..."
    two = {**ep, "subsets": [{"addresses": [{"ip": "10.42.0.5"}, {"ip": "10.42.0.6"}],
                              "ports": [{"port": 8080}]}]}
    assert cells("Endpoints", two)[1] == "10.42.0.5:8080,10.42.0.6:8080"
    headless = {**ep, "subsets": [{"addresses": [{"ip": "10.42.0.5"}]}]}
    assert cells("Endpoints", headless)[1] == "10.42.0.5"
    assert cells("Endpoints", {"metadata": meta("none")})[1] == "<none>"


def test_namespace_configmap_secret_serviceaccount_columns():
    assert headers("Namespace", []) == ["NAME", "STATUS", "AGE"]
    assert cells("Namespace", {"metadata": meta("shop", 5), "status": {"phase": "Active"}}) == [
        "shop", "Active", "5s"]
    assert headers("ConfigMap", []) == ["NAME", "DATA", "AGE"]
    assert cells("ConfigMap", {"metadata": meta("c"), "data": {"a": "1", "b": "2"},
                               "binaryData": {"c": "AA=="}}) == ["c", 3, "60s"]
    assert headers("Secret", []) == ["NAME", "TYPE", "DATA", "AGE"]
    assert cells("Secret", {"metadata": meta("tls"), "type": "kubernetes.io/tls",
                            "data": {"tls.crt": "", "tls.key": ""}}) == [
        "tls", "kubernetes.io/tls", 2, "60s"]
    assert headers("ServiceAccount", []) == ["NAME", "SECRETS", "AGE"]
    assert cells("ServiceAccount", {"metadata": meta("default")}) == ["default", 0, "60s"]


def test_event_columns():
    event = {"kind": "Event", "metadata": meta("web-1.17a", 600),
             "involvedObject": {"kind": "Pod", "name": "web-1", "fieldPath": "spec.containers{web}"},
             "reason": "BackOff", "type": "Warning",
             "message": "Back-off restarting failed container\n",
             "firstTimestamp": ago(600), "lastTimestamp": ago(30), "count": 7,
             "source": {"component": "kubelet", "host": "shoal"}}
    assert headers("Event", [event]) == ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert cells("Event", event) == ["30s", "Warning", "BackOff", "pod/web-1",
                                     "Back-off restarting failed container"]
    assert headers("Event", [event], wide=True) == [
        "LAST SEEN", "TYPE", "REASON", "OBJECT", "SUBOBJECT", "SOURCE", "MESSAGE",
        "FIRST SEEN", "COUNT", "NAME"]
    assert cells("Event", event, wide=True) == [
        "30s", "Warning", "BackOff", "pod/web-1", "spec.containers{web}", "kubelet, shoal",
        "Back-off restarting failed container", "10m", 7, "web-1.17a"]
    new_style = {"metadata": meta("e"), "eventTime": "2026-01-01T11:59:00.123456Z",
                 "involvedObject": {"kind": "Node"}, "reportingComponent": "shoal-node"}
    assert cells("Event", new_style, wide=True)[0:6] == [
        "59s", "", "", "node", "", "shoal-node"]  # 59.88 s truncates, as in Go


def test_pvc_columns():
    pvc = {"kind": "PersistentVolumeClaim", "metadata": meta("data"),
           "spec": {"volumeName": "pv-1", "storageClassName": "local",
                    "resources": {"requests": {"storage": "1Gi"}}},
           "status": {"phase": "Bound", "capacity": {"storage": "1Gi"},
                      "accessModes": ["ReadWriteMany", "ReadWriteOnce"]}}
    assert headers("PersistentVolumeClaim", []) == [
        "NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS MODES", "STORAGECLASS", "AGE"]
    assert cells("PersistentVolumeClaim", pvc) == [
        "data", "Bound", "pv-1", "1Gi", "RWO,RWX", "local", "60s"]
    pending = {"metadata": meta("p"), "spec": {}, "status": {"phase": "Pending"}}
    assert cells("PersistentVolumeClaim", pending) == ["p", "Pending", "", "", "", "", "60s"]


def test_unknown_kind_gets_name_and_age():
    # (not an Istio kind: the mesh registers printers for VirtualService and DestinationRule)
    assert headers("Gadget", []) == ["NAME", "AGE"]
    assert cells("Gadget", {"metadata": meta("reviews", 3 * 86400)}) == ["reviews", "3d"]


# ----------------------------------------------------------------------------- text


def test_render_text_aligns_columns_like_kubectl():
    pods = [
        pod({"phase": "Running", "conditions": READY, "containerStatuses": [running()]}),
        {**pod({"phase": "Pending", "containerStatuses": [waiting("ContainerCreating")]}),
         "metadata": {**meta("db-0", 5), "namespace": "shop"}},
    ]
    table = printers.table("Pod", pods, wide=True, now=NOW)
    assert printers.render_text(table) == (
        "NAME    READY   STATUS              RESTARTS   AGE\n"
        "web-1   1/1     Running             0          3m20s\n"
        "db-0    0/1     ContainerCreating   0          5s\n"
    )
    assert printers.render_text(table, no_headers=True, show_namespace=True) == (
        "default   web-1   1/1   Running             0     3m20s\n"
        "shop      db-0    0/1   ContainerCreating   0     5s\n"
    )
    assert printers.render_text(table, wide=True).splitlines()[0] == (
        "NAME    READY   STATUS              RESTARTS   AGE     IP       NODE     "
        "NOMINATED NODE   READINESS GATES")


def test_render_text_of_a_narrow_table_and_odd_cells():
    table = {"columnDefinitions": [printers.NAME, {"name": "N", "priority": 0},
                                   {"name": "Msg", "priority": 0}],
             "rows": [{"cells": ["a", 1, "two\nlines"]}, {"cells": ["b", True, None]}]}
    assert printers.render_text(table) == (
        "NAME   N      MSG\n"
        "a      1      two...\n"
        "b      true   \n"
    )
    assert printers.render_text({"columnDefinitions": [printers.NAME], "rows": []}) == ""


# ------------------------------------------------- the real kubectl renders our Tables

KUBECTL = shutil.which("kubectl")

SERVED = {
    "pods": ("Pod", [
        pod({"phase": "Running", "podIP": "10.42.0.5", "conditions": READY,
             "containerStatuses": [running(restarts=2, lastState={"terminated": {
                 "exitCode": 1, "finishedAt": ago(90)}})]}, nodeName="shoal"),
        {**pod({"phase": "Pending", "containerStatuses": [waiting("ContainerCreating")]}),
         "metadata": {**meta("database-0", 3 * 86400), "namespace": "shop"}},
    ]),
    "services": ("Service", [
        {"metadata": meta("web", 30), "spec": {
            "type": "NodePort", "clusterIP": "10.43.0.11", "selector": {"app": "web"},
            "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}]}},
    ]),
    "events": ("Event", [
        {"metadata": meta("web-1.17a", 600), "type": "Warning", "reason": "BackOff",
         "involvedObject": {"kind": "Pod", "name": "web-1", "fieldPath": "spec.containers{web}"},
         "message": "Back-off restarting failed container", "count": 3,
         "firstTimestamp": ago(600), "lastTimestamp": ago(30),
         "source": {"component": "kubelet", "host": "shoal"}},
    ]),
}


class _TableServer(http.server.BaseHTTPRequestHandler):
    """Just enough of an API server for `kubectl get`: discovery plus Table lists."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        path = self.path.split("?")[0]
        resource = path.rsplit("/", 1)[-1]
        if path == "/api":
            body = {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
        elif path == "/apis":
            body = {"kind": "APIGroupList", "apiVersion": "v1", "groups": []}
        elif path == "/api/v1":
            body = {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
                {"name": name, "singularName": name[:-1], "namespaced": True, "kind": kind,
                 "verbs": ["get", "list"]} for name, (kind, _) in SERVED.items()]}
        elif resource in SERVED and "as=Table" in (self.headers.get("Accept") or ""):
            kind, objects = SERVED[resource]
            namespace = path.split("/namespaces/")[1].split("/")[0] if "/namespaces/" in path else None
            chosen = [o for o in objects if namespace in (None, o["metadata"]["namespace"])]
            body = printers.table(kind, chosen, wide=True, now=NOW)
        else:
            self.send_response(404)
            self.end_headers()
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def kubectl(tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _TableServer)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    config = tmp_path / "kubeconfig"
    config.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters: [{{name: c, cluster: {{server: 'http://127.0.0.1:{server.server_port}'}}}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u, namespace: default}}]\n"
        "users: [{name: u, user: {}}]\n")

    def run(*args: str) -> str:
        done = subprocess.run(
            [KUBECTL, "--kubeconfig", str(config), "--cache-dir", str(tmp_path / "cache"), *args],
            capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        return done.stdout

    yield run
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
@pytest.mark.parametrize("resource,flags", [
    ("pods", []), ("pods", ["-o", "wide"]), ("pods", ["-A"]), ("pods", ["--no-headers"]),
    ("services", ["-o", "wide"]), ("events", []), ("events", ["-o", "wide"]),
])
def test_kubectl_get_prints_our_table_exactly_like_render_text(kubectl, resource, flags):
    kind, objects = SERVED[resource]
    all_namespaces = "-A" in flags
    shown = objects if all_namespaces else [o for o in objects
                                            if o["metadata"]["namespace"] == "default"]
    expected = printers.render_text(
        printers.table(kind, shown, wide=True, now=NOW), wide="wide" in flags,
        show_namespace=all_namespaces, no_headers="--no-headers" in flags)
    assert kubectl("get", resource, *flags) == expected


def test_a_stored_invalid_selector_prints_as_invalid():
    broken = {**DEPLOYMENT, "spec": {**DEPLOYMENT["spec"], "selector": {
        "matchExpressions": [{"key": "a", "operator": "Near"}]}}}
    assert cells("Deployment", broken, wide=True)[-1] == "<invalid>"
