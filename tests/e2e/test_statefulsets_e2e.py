"""A StatefulSet through kubectl against a real daemon: web-0..2 created in order, per-pod
DNS names through the headless Service resolved from another pod, and a claim's data
surviving the deletion of its pod. (Commands inside pods go through `shoal exec` until
the API serves pods/exec.)"""

from __future__ import annotations

import json

import pytest

from tests.daemon_harness import ShoalInstance, wait_for

pytestmark = pytest.mark.slow

APP = """
apiVersion: v1
kind: Service
metadata: {name: nginx, namespace: default}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{name: web, port: 80}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web, namespace: default}
spec:
  serviceName: nginx
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: busybox
        imagePullPolicy: IfNotPresent
        command: ["sh", "-c", "touch /tmp/ready; exec sleep 3600"]
        readinessProbe:
          exec: {command: ["test", "-f", "/tmp/ready"]}
          periodSeconds: 1
        volumeMounts: [{name: www, mountPath: /data}]
  volumeClaimTemplates:
  - metadata: {name: www}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Mi}}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: default}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: client, image: busybox, imagePullPolicy: IfNotPresent, command: ["sleep", "3600"]}
"""


@pytest.fixture(scope="module")
def shoal(tmp_path_factory):
    instance = ShoalInstance(tmp_path_factory.mktemp("sts"))
    instance.shoal("image", "bootstrap", "busybox", "--busybox")
    instance.start()
    try:
        instance.kubectl("apply", "-f", "-", input=APP)
        yield instance
    finally:
        instance.stop()


def _pod(shoal: ShoalInstance, name: str) -> dict | None:
    result = shoal.kubectl("get", "pod", name, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def _created(pod: dict) -> str:
    return pod["metadata"]["creationTimestamp"]


def _ready(pod: dict | None) -> bool:
    return pod is not None and not pod["metadata"].get("deletionTimestamp") and any(
        c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions") or [])


def test_pods_are_created_in_order_and_become_ready(shoal):
    def all_ready():
        out = shoal.kubectl("get", "sts", "web").stdout.split()
        return out if out[3:5] == ["web", "3/3"] else None

    wait_for(all_ready, 60, what="web 3/3")
    pods = [_pod(shoal, f"web-{i}") for i in range(3)]
    assert all(_ready(p) for p in pods)
    # each ordinal was created only once the previous one was ready
    for before, after in zip(pods, pods[1:]):
        ready_at = next(c["lastTransitionTime"] for c in before["status"]["conditions"]
                        if c["type"] == "Ready")
        assert _created(after) >= ready_at, (before["metadata"]["name"], after["metadata"]["name"])
    assert [p["spec"]["hostname"] for p in pods] == ["web-0", "web-1", "web-2"]
    assert {p["spec"]["subdomain"] for p in pods} == {"nginx"}
    status = json.loads(shoal.kubectl("get", "sts", "web", "-o", "json").stdout)["status"]
    assert status["readyReplicas"] == 3 and status["currentRevision"] == status["updateRevision"]
    claims = shoal.kubectl("get", "pvc", "-o", "name").stdout.split()
    assert sorted(claims) == [f"persistentvolumeclaim/www-web-{i}" for i in range(3)]


def test_per_pod_dns_names_resolve_from_another_pod(shoal):
    wait_for(lambda: (_pod(shoal, "client") or {}).get("status", {}).get("phase") == "Running",
             60, what="client running")
    wait_for(lambda: _ready(_pod(shoal, "web-2")), 60, what="web-2 ready")
    for i in range(3):
        ip = _pod(shoal, f"web-{i}")["status"]["podIP"]
        full = f"web-{i}.nginx.default.svc.cluster.local"

        def resolves(i=i, ip=ip, full=full):
            out = shoal.shoal("exec", "client", "--", "nslookup", full, check=False).stdout
            return out if ip in out else None

        out = wait_for(resolves, 20, what=f"{full} resolving to {ip}")
        assert f"Name:\t{full}" in out
        # the short form a program uses goes through the search path in resolv.conf (this
        # busybox's nslookup applies search domains only to dotless names; ping does not)
        ping = shoal.shoal("exec", "client", "--", "ping", "-c1", "-W2", f"web-{i}.nginx").stdout
        assert f"PING web-{i}.nginx ({ip})" in ping
    gone = shoal.shoal("exec", "client", "--", "nslookup", "web-7.nginx.default.svc.cluster.local",
                       check=False)
    assert "NXDOMAIN" in gone.stdout + gone.stderr


def test_claim_data_survives_pod_deletion(shoal):
    wait_for(lambda: _ready(_pod(shoal, "web-1")), 60, what="web-1 ready")
    old_uid = _pod(shoal, "web-1")["metadata"]["uid"]
    shoal.shoal("exec", "web-1", "--", "sh", "-c", "echo kept-by-web-1 > /data/note")
    shoal.kubectl("delete", "pod", "web-1")

    def back():
        pod = _pod(shoal, "web-1")
        return pod if _ready(pod) and pod["metadata"]["uid"] != old_uid else None

    wait_for(back, 60, what="web-1 recreated and ready")
    out = shoal.shoal("exec", "web-1", "--", "cat", "/data/note").stdout
    assert out.strip() == "kept-by-web-1"
