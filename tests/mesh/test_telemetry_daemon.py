"""Istio's standard metrics as a user gets them from `shoal up`: real daemon, runc pods,
injected sidecars; the metrics service's sockets bound per pod next to the xDS socket.
Prometheus-style: the pages are fetched from the host at podIP:15090, as a scraper
would. (test_telemetry_e2e.py covers labels and counting in detail without a daemon.)"""

from __future__ import annotations

import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from shoal.config import Settings
from tests.daemon_harness import ShoalInstance, get_json, wait_for

pytestmark = pytest.mark.slow

APP = """
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio-injection: enabled}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web, version: v2}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: httpd
        image: busybox
        imagePullPolicy: IfNotPresent
        command: ["sh", "-c", "mkdir -p /www && echo hi > /www/index.html && exec httpd -f -p 8080 -h /www"]
        ports: [{containerPort: 8080, name: http}]
        readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: shop, labels: {app: client}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: client, image: busybox, imagePullPolicy: IfNotPresent, command: ["sleep", "3600"]}
"""


def pods(shoal: ShoalInstance, selector: str | None = None) -> list[dict]:
    return get_json(shoal, "pods", "-n", "shop", *(["-l", selector] if selector else []))["items"]


def all_ready(items: list[dict]) -> bool:
    return bool(items) and all(
        p["status"].get("containerStatuses") and
        all(c.get("ready") for c in p["status"]["containerStatuses"]) for p in items)


def requests_total(pod: dict, reporter: str) -> list:
    url = f"http://{pod['status']['podIP']}:15090/stats/prometheus"
    with urllib.request.urlopen(url, timeout=5) as response:
        page = response.read().decode()
    return [s for f in text_string_to_metric_families(page) for s in f.samples
            if s.name == "istio_requests_total" and s.labels["reporter"] == reporter]


@pytest.fixture(scope="module")
def shoal(tmp_path_factory):
    instance = ShoalInstance(tmp_path_factory.mktemp("telemetry-daemon"))
    instance.shoal("image", "bootstrap", "busybox", "--busybox")
    instance.start()
    try:
        instance.shoal("apply", "-f", "-", input=APP)
        wait_for(lambda: all_ready(pods(instance)), 120, what="pods ready")
        yield instance
    finally:
        instance.stop()


def test_both_sidecars_count_the_requests_with_istios_labels(shoal):
    n = 7
    out = shoal.shoal("exec", "-n", "shop", "client", "-c", "client", "--", "sh", "-c",
                      f"for i in $(seq {n}); do timeout 5 wget -qO- http://web/; done").stdout
    assert out.split() == ["hi"] * n
    web = pods(shoal, "app=web")[0]
    client = get_json(shoal, "pod", "client", "-n", "shop")
    expected = {
        "source_workload": "client", "source_workload_namespace": "shop",
        "source_principal": "spiffe://cluster.local/ns/shop/sa/default", "source_app": "client",
        "destination_workload": "web", "destination_workload_namespace": "shop",
        "destination_principal": "spiffe://cluster.local/ns/shop/sa/default",
        "destination_app": "web", "destination_version": "v2",
        "destination_service": "web.shop.svc.cluster.local", "destination_service_name": "web",
        "response_code": "200", "response_flags": "-", "request_protocol": "http",
    }
    for pod, reporter, policy in ((web, "destination", "mutual_tls"), (client, "source", "unknown")):
        found = wait_for(lambda: (s := requests_total(pod, reporter)) and sum(
            x.value for x in s) >= n and s, 15, what=f"{reporter} reporter's count")
        assert [x.value for x in found] == [n], found
        assert expected.items() <= found[0].labels.items(), found[0].labels
        assert found[0].labels["connection_security_policy"] == policy
    # the pod sockets sit next to each pod's xDS socket, and go with the pod
    socket_dir = Settings.from_env(state_dir=shoal.state_dir).socket_dir / "xds"
    per_pod = {p.parent.name: {s.name for s in p.parent.glob("*.sock")}
               for p in socket_dir.glob("*/xds.sock")}
    assert len(per_pod) == 2 and all(names == {"xds.sock", "als.sock", "stats.sock"}
                                     for names in per_pod.values()), per_pod
    shoal.shoal("delete", "pod", "client", "-n", "shop")
    wait_for(lambda: len(list(socket_dir.glob("*/*.sock"))) == 3, 30,
             what="the deleted pod's sockets removed")
