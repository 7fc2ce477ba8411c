"""The mesh as a user gets it from `shoal up`: real daemon, real runc pods, real Envoy
sidecars injected by admission, capture rules from the node agent, config from the
daemon's control plane. (test_e2e.py drives the same pieces without the daemon.)"""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from shoal.mesh import proxyconfig
from tests.daemon_harness import ShoalInstance, get_json, wait_for

pytestmark = pytest.mark.slow

WHO = ("mkdir -p /www/cgi-bin && printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\n"
       "echo from $(hostname)\\nenv | grep HTTP_X_FORWARDED_CLIENT_CERT\\n' > /www/cgi-bin/who && "
       "chmod +x /www/cgi-bin/who && echo hi > /www/index.html && exec httpd -f -p 8080 -h /www")

APP = f"""
apiVersion: v1
kind: Namespace
metadata: {{name: shop, labels: {{istio-injection: enabled}}}}
---
apiVersion: v1
kind: Namespace
metadata: {{name: plain}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: b, namespace: shop}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: b}}}}
  template:
    metadata: {{labels: {{app: b}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: httpd
        image: busybox
        imagePullPolicy: IfNotPresent
        command: ["sh", "-c", {json.dumps(WHO)}]
        ports: [{{containerPort: 8080, name: http}}]
        readinessProbe: {{httpGet: {{path: /, port: 8080}}, periodSeconds: 1}}
---
apiVersion: v1
kind: Service
metadata: {{name: b, namespace: shop}}
spec:
  selector: {{app: b}}
  ports: [{{name: http, port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Pod
metadata:
  name: a
  namespace: shop
  annotations:
    proxy.istio.io/config: '{{"concurrency": 2}}'
    sidecar.istio.io/proxyMemoryLimit: 512Mi
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {{name: client, image: busybox, imagePullPolicy: IfNotPresent, command: ["sleep", "3600"]}}
---
apiVersion: v1
kind: Pod
metadata: {{name: c, namespace: plain}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {{name: client, image: busybox, imagePullPolicy: IfNotPresent, command: ["sleep", "3600"]}}
"""


def pods(shoal: ShoalInstance, ns: str, selector: str | None = None) -> list[dict]:
    return get_json(shoal, "pods", "-n", ns, *(["-l", selector] if selector else []))["items"]


def all_ready(items: list[dict]) -> bool:
    return bool(items) and all(
        p["status"].get("containerStatuses") and
        all(c.get("ready") for c in p["status"]["containerStatuses"]) for p in items)


def netns_of(shoal: ShoalInstance, ns: str, pod: str) -> str:
    """The pod's network namespace, from the network layer's sandbox records."""
    for record in (shoal.state_dir / "network" / "sandboxes").glob("*.json"):
        sandbox = json.loads(record.read_text())
        if sandbox["pod_key"] == f"{ns}/{pod}":
            return sandbox["netns_name"]
    raise AssertionError(f"no sandbox for {ns}/{pod}")


def stats(shoal: ShoalInstance, ns: str, pod: str, pattern: str) -> dict[str, int]:
    raw = asyncio.run(proxyconfig.admin_get(netns_of(shoal, ns, pod), "/stats"))
    found = {}
    for line in raw.splitlines():
        name, _, value = line.partition(": ")
        if re.search(pattern, name) and value.strip().isdigit():
            found[name] = int(value)
    return found


def call(shoal: ShoalInstance, ns: str, pod: str, url: str, check: bool = True):
    return shoal.shoal("exec", "-n", ns, pod, "-c", "client", "--",
                       "timeout", "5", "wget", "-qO-", url, check=check)


@pytest.fixture(scope="module")
def shoal(tmp_path_factory):
    instance = ShoalInstance(tmp_path_factory.mktemp("mesh-daemon"))
    instance.shoal("image", "bootstrap", "busybox", "--busybox")
    instance.start()
    try:
        instance.shoal("apply", "-f", "-", input=APP)
        wait_for(lambda: all_ready(pods(instance, "shop")) and all_ready(pods(instance, "plain")),
                 120, what="pods ready")
        yield instance
    finally:
        instance.stop()


def test_injected_pods_have_a_sidecar_and_are_in_sync(shoal):
    for pod in pods(shoal, "shop"):
        names = [c["name"] for c in pod["spec"].get("initContainers", []) + pod["spec"]["containers"]]
        assert "istio-proxy" in names, names
        assert pod["metadata"]["annotations"]["sidecar.istio.io/status"]
    assert [c["name"] for c in pods(shoal, "plain")[0]["spec"]["containers"]] == ["client"]
    out = wait_for(lambda: (o := shoal.shoal("mesh", "status").stdout).count("SYNCED") >= 10 and o,
                   30, what="proxies synced")
    assert "a.shop" in out and ".shop" in out
    assert shoal.shoal("mesh", "check").stdout.strip() == "No problems found."


def test_sidecar_workers_and_resources_follow_istio_annotations(shoal):
    def server_options(pod: str) -> dict:
        info = asyncio.run(proxyconfig.admin_get(netns_of(shoal, "shop", pod), "/server_info"))
        return json.loads(info)["command_line_options"]
    # pod a asks for two workers (proxy.istio.io/config); b gets the default, one
    assert server_options("a")["concurrency"] == 2
    b = pods(shoal, "shop", "app=b")[0]
    assert server_options(b["metadata"]["name"])["concurrency"] == 1
    sidecar = next(c for c in b["spec"]["initContainers"] if c["name"] == "istio-proxy")
    a_sidecar = next(c for c in get_json(shoal, "pod", "a", "-n", "shop")["spec"]["initContainers"]
                     if c["name"] == "istio-proxy")
    assert a_sidecar["resources"]["limits"]["memory"] == "512Mi"
    assert sidecar["resources"]["limits"]["cpu"] == "2000m"
    # a malformed ProxyConfig is refused at admission with the annotation's path
    bad = ("apiVersion: v1\nkind: Pod\nmetadata:\n  name: badcfg\n  namespace: shop\n"
           "  annotations: {proxy.istio.io/config: 'concurrency: many'}\n"
           "spec:\n  containers:\n  - {name: app, image: busybox}\n")
    r = shoal.shoal("apply", "-f", "-", input=bad, check=False)
    assert r.returncode != 0
    assert "metadata.annotations[proxy.istio.io/config].concurrency" in r.stderr, r.stderr


def test_call_goes_through_both_sidecars_with_the_callers_identity(shoal):
    b = pods(shoal, "shop", "app=b")[0]["metadata"]["name"]
    out = wait_for(lambda: call(shoal, "shop", "a", "http://b/cgi-bin/who", check=False).stdout,
                   30, what="a reaches b")
    assert f"from {b}" in out
    assert "URI=spiffe://cluster.local/ns/shop/sa/default" in out  # XFCC set by b's sidecar
    client_side = stats(shoal, "shop", "a", r"cluster\.outbound\|80\|\|b\.shop.*(upstream_rq_total|ssl\.handshake)$")
    server_side = stats(shoal, "shop", b, r"listener\.0\.0\.0\.0_15006\.ssl\.handshake$")
    assert client_side and all(v > 0 for v in client_side.values()), client_side
    assert server_side and all(v > 0 for v in server_side.values()), server_side


def test_strict_refuses_plaintext_from_outside_and_permissive_accepts(shoal):
    b_ip = pods(shoal, "shop", "app=b")[0]["status"]["podIP"]
    url = f"http://{b_ip}:8080/"
    refused = call(shoal, "plain", "c", url, check=False)
    assert refused.returncode != 0 and "hi" not in refused.stdout
    policy = ("apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"
              "metadata: {name: default, namespace: shop}\nspec: {mtls: {mode: PERMISSIVE}}\n")
    shoal.shoal("apply", "-f", "-", input=policy)
    wait_for(lambda: call(shoal, "plain", "c", url, check=False).stdout.strip() == "hi", 30,
             what="PERMISSIVE accepts plaintext")
    shoal.shoal("delete", "peerauthentications.security.istio.io", "default", "-n", "shop")
    wait_for(lambda: call(shoal, "plain", "c", url, check=False).returncode != 0, 30,
             what="STRICT again")


def test_scaling_spreads_traffic_over_new_endpoints(shoal):
    shoal.shoal("scale", "deploy", "b", "-n", "shop", "--replicas=3")
    wait_for(lambda: len(p := pods(shoal, "shop", "app=b")) == 3 and all_ready(p), 90,
             what="3 ready b pods")
    names = {p["metadata"]["name"] for p in pods(shoal, "shop", "app=b")}

    def answered() -> set[str]:
        out = shoal.shoal("exec", "-n", "shop", "a", "-c", "client", "--", "sh", "-c",
                          "for i in $(seq 30); do timeout 5 wget -qO- http://b/cgi-bin/who | head -1; done",
                          check=False).stdout
        return {line.split()[-1] for line in out.splitlines() if line.startswith("from ")}

    wait_for(lambda: answered() == names, 60, interval=1, what=f"answers from all of {names}")


def test_job_style_pod_completes_with_its_sidecar(shoal):
    job = ("apiVersion: v1\nkind: Pod\nmetadata: {name: once, namespace: shop}\n"
           "spec:\n  restartPolicy: Never\n  terminationGracePeriodSeconds: 1\n  containers:\n"
           "  - {name: client, image: busybox, imagePullPolicy: IfNotPresent,\n"
           "     command: [sh, -c, 'timeout 5 wget -qO- http://b/ && echo done']}\n")
    shoal.shoal("apply", "-f", "-", input=job)
    pod = wait_for(lambda: (p := get_json(shoal, "pod", "once", "-n", "shop"))["status"].get("phase")
                   in ("Succeeded", "Failed") and p, 60, what="the pod to finish")
    assert pod["status"]["phase"] == "Succeeded", pod["status"]
    assert "done" in shoal.shoal("logs", "once", "-n", "shop", "-c", "client").stdout


def test_bad_mesh_input_is_rejected_with_the_field_path(shoal):
    bad_user = ("apiVersion: v1\nkind: Pod\nmetadata: {name: proxyuser, namespace: shop}\n"
                "spec:\n  containers:\n  - {name: app, image: busybox, securityContext: {runAsUser: 1337}}\n")
    r = shoal.shoal("apply", "-f", "-", input=bad_user, check=False)
    assert r.returncode != 0 and "1337" in r.stderr and "runAsUser" in r.stderr
    bad_policy = ("apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"
                  "metadata: {name: bad, namespace: shop}\nspec: {mtls: {mode: STRICTER}}\n")
    r = shoal.shoal("apply", "-f", "-", input=bad_policy, check=False)
    assert r.returncode != 0 and "spec.mtls.mode" in r.stderr and "STRICTER" in r.stderr
