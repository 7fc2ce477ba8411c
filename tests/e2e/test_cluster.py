"""The whole node as a user drives it through `shoal up`: Services, DNS, readiness,
NodePort, rolling updates under traffic, and `shoal down` leaving nothing behind.

The layers have their own tests (tests/network, tests/node, tests/controllers); these
prove they work together in one daemon."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.request

import pytest

from tests.daemon_harness import ShoalInstance, get_json, wait_for

pytestmark = pytest.mark.slow

SERVE = ("mkdir -p /www && echo \"$VERSION $(hostname)\" > /www/index.html && "
         "touch /tmp/ready && exec httpd -f -p 8080 -h /www")


def app(version: str = "v1", replicas: int = 3) -> str:
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: default}}
spec:
  replicas: {replicas}
  strategy:
    type: RollingUpdate
    rollingUpdate: {{maxUnavailable: 0, maxSurge: 1}}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 3
      containers:
      - name: httpd
        image: busybox
        imagePullPolicy: IfNotPresent
        command: ["sh", "-c", {json.dumps(SERVE)}]
        env: [{{name: VERSION, value: {version}}}]
        ports: [{{containerPort: 8080, name: http}}]
        readinessProbe:
          exec: {{command: ["test", "-f", "/tmp/ready"]}}
          periodSeconds: 1
          failureThreshold: 1
        lifecycle:
          preStop: {{exec: {{command: ["sleep", "1"]}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: default}}
spec:
  type: NodePort
  selector: {{app: web}}
  ports: [{{name: http, port: 80, targetPort: http}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: client, namespace: default}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {{name: client, image: busybox, imagePullPolicy: IfNotPresent, command: ["sleep", "3600"]}}
"""


def ready_web(shoal: ShoalInstance) -> list[dict]:
    pods = get_json(shoal, "pods", "-l", "app=web")["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp") and any(
        c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))]


def in_client(shoal: ShoalInstance, script: str, check: bool = False) -> subprocess.CompletedProcess:
    return shoal.shoal("exec", "client", "-c", "client", "--", "sh", "-c", script, check=check)


@pytest.fixture(scope="module")
def shoal(tmp_path_factory):
    instance = ShoalInstance(tmp_path_factory.mktemp("cluster"))
    instance.shoal("image", "bootstrap", "busybox", "--busybox")
    instance.start()
    try:
        instance.shoal("apply", "-f", "-", input=app())
        wait_for(lambda: len(ready_web(instance)) == 3, 90, what="3 ready web pods")
        wait_for(lambda: get_json(instance, "pod", "client")["status"].get("phase") == "Running", 60,
                 what="client running")
        yield instance
    finally:
        instance.stop()


def test_service_by_dns_names_balances_over_every_ready_endpoint(shoal):
    names = {p["metadata"]["name"] for p in ready_web(shoal)}
    for host in ("web", "web.default", "web.default.svc.cluster.local"):
        out = in_client(shoal, f"timeout 5 wget -qO- http://{host}/").stdout
        assert out.startswith("v1 "), (host, out)
    out = in_client(shoal, "for i in $(seq 30); do timeout 5 wget -qO- http://web/; done").stdout
    seen = {line.split()[1] for line in out.splitlines() if line.startswith("v1 ")}
    assert seen == names, f"30 requests reached {seen}, expected every one of {names}"
    r = in_client(shoal, "nslookup nothing-here.default.svc.cluster.local")
    assert "NXDOMAIN" in r.stdout + r.stderr or "can't find" in r.stdout + r.stderr


def test_a_pod_failing_readiness_leaves_the_endpoints(shoal):
    victim = sorted(p["metadata"]["name"] for p in ready_web(shoal))[0]
    shoal.shoal("exec", victim, "-c", "httpd", "--", "rm", "/tmp/ready")
    wait_for(lambda: victim not in {a.get("targetRef", {}).get("name")
                                    for s in get_json(shoal, "endpoints", "web").get("subsets", [])
                                    for a in s.get("addresses", [])}, 30, what="victim removed")
    out = in_client(shoal, "for i in $(seq 20); do timeout 5 wget -qO- http://web/; done").stdout
    assert victim not in out
    shoal.shoal("exec", victim, "-c", "httpd", "--", "touch", "/tmp/ready")
    wait_for(lambda: len(ready_web(shoal)) == 3, 30, what="victim ready again")


def test_node_port_answers_on_loopback_from_the_host(shoal):
    node_port = get_json(shoal, "svc", "web")["spec"]["ports"][0]["nodePort"]
    with urllib.request.urlopen(f"http://127.0.0.1:{node_port}/", timeout=5) as r:
        assert r.read().decode().startswith("v1 ")


def test_rolling_update_under_traffic_drops_no_request(shoal):
    failures: list[str] = []
    answers: list[str] = []
    stop = threading.Event()
    node_port = get_json(shoal, "svc", "web")["spec"]["ports"][0]["nodePort"]

    def poll() -> None:
        while not stop.is_set():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{node_port}/", timeout=5) as r:
                    answers.append(r.read().decode().split()[0])
            except OSError as exc:
                failures.append(str(exc))
            time.sleep(0.02)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        min_ready = 3
        shoal.shoal("apply", "-f", "-", input=app("v2"))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            pods = get_json(shoal, "pods", "-l", "app=web")["items"]
            ready = ready_web(shoal)
            min_ready = min(min_ready, len(ready))
            if len(ready) == 3 and all(p["spec"]["containers"][0]["env"][0]["value"] == "v2"
                                       for p in ready) and len(pods) == 3:
                break
            time.sleep(0.3)
        else:
            raise AssertionError("the rollout to v2 did not finish in 120 s")
        time.sleep(1)
    finally:
        stop.set()
        poller.join(10)
    assert min_ready >= 3, f"ready pods dropped to {min_ready} with maxUnavailable 0"
    assert not failures, f"{len(failures)} of {len(failures) + len(answers)} requests failed: {failures[:3]}"
    assert "v1" in answers and answers[-1] == "v2"
    history = shoal.shoal("rollout", "history", "deploy/web").stdout
    assert "1" in history and "2" in history
    shoal.shoal("rollout", "undo", "deploy/web")
    wait_for(lambda: (r := ready_web(shoal)) and len(r) == 3 and all(
        p["spec"]["containers"][0]["env"][0]["value"] == "v1" for p in r), 120, what="undo to v1")


def test_shoal_down_leaves_nothing_behind(tmp_path):
    instance = ShoalInstance(tmp_path / "state")
    instance.shoal("image", "bootstrap", "busybox", "--busybox")
    instance.start()
    try:
        instance.shoal("apply", "-f", "-", input=app(replicas=2))
        wait_for(lambda: len([p for p in get_json(instance, "pods")["items"]
                              if p["status"].get("phase") == "Running"]) == 3, 90, what="pods running")
    finally:
        instance.stop()
    bridge = instance.env["SHOAL_BRIDGE"]
    prefix = instance.env["SHOAL_CHAIN_PREFIX"]
    pod_net = instance.env["SHOAL_POD_CIDR"].rsplit(".", 1)[0]
    svc_net = instance.env["SHOAL_SERVICE_CIDR"].rsplit(".", 1)[0]
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert bridge not in links
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not [n for n in namespaces.split() if n.startswith(f"{bridge}-")], namespaces
    records = instance.state_dir / "network" / "sandboxes"
    assert not records.exists() or not any(records.iterdir())
    assert prefix not in subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    routes = subprocess.run(["ip", "route", "show", "table", "all"], capture_output=True, text=True).stdout
    assert pod_net not in routes and svc_net not in routes
    assert str(instance.state_dir) not in open("/proc/mounts").read()
    leftover = subprocess.run(["pgrep", "-af", str(instance.state_dir)], capture_output=True, text=True).stdout
    assert not leftover.strip(), leftover
