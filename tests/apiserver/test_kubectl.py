"""The real kubectl against shoal, with the kubeconfig `shoal up` writes."""

from __future__ import annotations

import json
import secrets
import subprocess
import time

import pytest
import yaml

pytestmark = pytest.mark.slow

DEPLOY = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: main
        image: busybox:1.36
        ports:
        - containerPort: 80
"""


@pytest.fixture
def ns(shoal):
    name = f"k-{secrets.token_hex(3)}"
    shoal.kubectl("create", "-f", "-", input=f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n")
    return name


def test_get_namespaces(shoal):
    out = shoal.kubectl("get", "ns").stdout
    assert out.splitlines()[0].split()[:2] == ["NAME", "STATUS"]
    assert any(line.split()[:2] == ["default", "Active"] for line in out.splitlines())


def test_create_apply_get_scale_label_annotate_patch_delete(shoal, ns, tmp_path):
    f = tmp_path / "deploy.yaml"
    f.write_text(DEPLOY)
    out = shoal.kubectl("-n", ns, "create", "-f", str(f)).stdout
    assert "deployment.apps/web created" in out

    # client-side apply over a created object, then a change, then no change
    out = shoal.kubectl("-n", ns, "apply", "-f", str(f)).stdout
    assert "deployment.apps/web" in out
    f.write_text(DEPLOY.replace("busybox:1.36", "busybox:1.37").replace("replicas: 2", "replicas: 3"))
    assert "configured" in shoal.kubectl("-n", ns, "apply", "-f", str(f)).stdout
    assert "unchanged" in shoal.kubectl("-n", ns, "apply", "-f", str(f)).stdout
    got = yaml.safe_load(shoal.kubectl("-n", ns, "get", "deploy", "web", "-o", "yaml").stdout)
    assert got["spec"]["replicas"] == 3
    assert got["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox:1.37"

    assert "scaled" in shoal.kubectl("-n", ns, "scale", "deploy", "web", "--replicas=5").stdout
    shoal.kubectl("-n", ns, "label", "deploy", "web", "tier=front")
    shoal.kubectl("-n", ns, "annotate", "deploy", "web", "owner=team-a")
    shoal.kubectl("-n", ns, "patch", "deploy", "web", "--type", "merge",
                  "-p", '{"spec":{"minReadySeconds":3}}')
    got = yaml.safe_load(shoal.kubectl("-n", ns, "get", "deploy", "web", "-o", "yaml").stdout)
    assert got["spec"]["replicas"] == 5
    assert got["metadata"]["labels"]["tier"] == "front"
    assert got["metadata"]["annotations"]["owner"] == "team-a"
    assert got["spec"]["minReadySeconds"] == 3

    table = shoal.kubectl("-n", ns, "get", "deploy").stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert table[1].split()[0] == "web"

    assert "deleted" in shoal.kubectl("-n", ns, "delete", "deploy", "web").stdout
    r = shoal.kubectl("-n", ns, "get", "deploy", "web", check=False)
    assert r.returncode != 0 and "NotFound" in r.stderr


def test_get_pods_yaml(shoal, ns, tmp_path):
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1", "namespace": ns},
           "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    shoal.kubectl("create", "-f", "-", input=yaml.safe_dump(pod))
    out = yaml.safe_load(shoal.kubectl("-n", ns, "get", "pods", "-o", "yaml").stdout)
    assert out["kind"] == "List" and out["items"][0]["metadata"]["name"] == "p1"
    assert out["items"][0]["spec"]["containers"][0]["imagePullPolicy"] == "Always"


def test_watch_deployments(shoal, ns, tmp_path):
    f = tmp_path / "deploy.yaml"
    f.write_text(DEPLOY)
    shoal.kubectl("-n", ns, "create", "-f", str(f))
    watcher = subprocess.Popen(
        ["kubectl", "--kubeconfig", str(shoal.kubeconfig), "-n", ns, "get", "deploy", "-w",
         "--output-watch-events", "-o", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.5)
        shoal.kubectl("-n", ns, "scale", "deploy", "web", "--replicas=4")
        shoal.kubectl("-n", ns, "delete", "deploy", "web")
        time.sleep(1.5)
    finally:
        watcher.terminate()
        out, err = watcher.communicate(timeout=10)
    decoder, pos, events = json.JSONDecoder(), 0, []
    while pos < len(out.strip()):
        event, pos = decoder.raw_decode(out, pos)
        events.append((event["type"], event["object"]["metadata"]["name"],
                       event["object"]["spec"]["replicas"]))
        while pos < len(out) and out[pos].isspace():
            pos += 1
    assert events[0] == ("ADDED", "web", 2), (out, err)
    assert ("MODIFIED", "web", 4) in events, events
    assert events[-1][:2] == ("DELETED", "web"), events


def test_bad_manifest_errors_are_clear(shoal, ns):
    bad = DEPLOY.replace("image: busybox:1.36", "imagee: busybox:1.36")
    r = shoal.kubectl("-n", ns, "apply", "-f", "-", input=bad, check=False)
    assert r.returncode != 0
    assert "imagee" in r.stderr
