"""`shoal apply|get|describe|delete` and the daemon's lifecycle commands."""

from __future__ import annotations

import json
import secrets

import pytest
import yaml

APP = """
apiVersion: v1
kind: Namespace
metadata:
  name: {ns}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: {ns}
data:
  color: blue
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: {ns}
spec:
  replicas: 2
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
      - name: main
        image: busybox
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: {ns}
spec:
  selector: {{app: web}}
  ports:
  - port: 80
    targetPort: 8080
"""


@pytest.fixture
def ns():
    return f"c-{secrets.token_hex(3)}"


def test_apply_is_create_then_configure_then_unchanged(shoal, ns, tmp_path):
    f = tmp_path / "app.yaml"
    f.write_text(APP.format(ns=ns))
    out = shoal.shoal("apply", "-f", str(f)).stdout.splitlines()
    assert out == [f"namespace/{ns} created", "configmap/settings created",
                   "deployment.apps/web created", "service/web created"]
    out = shoal.shoal("apply", "-f", str(f)).stdout.splitlines()
    assert all(line.endswith("unchanged") for line in out), out
    f.write_text(APP.format(ns=ns).replace("color: blue", "color: red"))
    out = shoal.shoal("apply", "-f", str(f)).stdout.splitlines()
    assert "configmap/settings configured" in out
    assert "deployment.apps/web unchanged" in out
    # a directory and stdin work too
    out = shoal.shoal("apply", "-f", "-", input=APP.format(ns=ns)).stdout
    assert "configmap/settings configured" in out


def test_get_tables_and_formats(shoal, ns, tmp_path):
    shoal.shoal("apply", "-f", "-", input=APP.format(ns=ns))
    table = shoal.shoal("get", "deploy", "-n", ns).stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert table[1].split()[0] == "web"
    svc = shoal.shoal("get", "svc", "web", "-n", ns).stdout.splitlines()
    assert svc[0].split()[:4] == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP"]
    assert svc[1].split()[1] == "ClusterIP"
    as_json = json.loads(shoal.shoal("get", "configmap", "settings", "-n", ns, "-o", "json").stdout)
    assert as_json["data"] == {"color": "blue"}
    as_yaml = yaml.safe_load(shoal.shoal("get", "deployments", "-n", ns, "-o", "yaml").stdout)
    assert as_yaml["items"][0]["metadata"]["name"] == "web"
    names = shoal.shoal("get", "cm", "-n", ns, "-o", "name").stdout.split()
    assert "configmap/settings" in names
    everywhere = shoal.shoal("get", "deploy", "-A").stdout.splitlines()
    assert everywhere[0].split()[0] == "NAMESPACE"
    assert any(line.split()[:2] == [ns, "web"] for line in everywhere)
    assert "No resources found" in shoal.shoal("get", "pods", "-n", "kube-public").stdout


def test_get_several_kinds_at_once_like_kubectl(shoal, ns):
    shoal.shoal("apply", "-f", "-", input=APP.format(ns=ns))
    # K1,K2: one table per kind, names qualified with their type, a blank line between
    out = shoal.shoal("get", "deploy,svc", "-n", ns).stdout
    assert not out.endswith("\n\n")
    blocks = out.strip().split("\n\n")
    assert [b.splitlines()[0].split()[0] for b in blocks] == ["NAME", "NAME"]
    assert blocks[0].splitlines()[1].split()[0] == "deployment.apps/web"
    assert blocks[1].splitlines()[1].split()[:2] == ["service/web", "ClusterIP"]
    # TYPE/NAME arguments, and the "all" category (pods, services, deployments, replica sets)
    names = shoal.shoal("get", "deploy/web", "svc/web", "cm/settings", "-n", ns, "-o", "name")
    assert names.stdout.split() == ["deployment.apps/web", "service/web", "configmap/settings"]
    everything = shoal.shoal("get", "all", "-n", ns, "-o", "name").stdout.split()
    assert "service/web" in everything and "deployment.apps/web" in everything
    assert "configmap/settings" not in everything
    # one List holding both kinds, each item saying what it is
    listed = yaml.safe_load(shoal.shoal("get", "svc,deploy", "-n", ns, "-o", "yaml").stdout)
    assert [(i["kind"], i["apiVersion"]) for i in listed["items"]] == [
        ("Service", "v1"), ("Deployment", "apps/v1")]
    assert shoal.shoal("get", "pods,deploy", "-n", "kube-public").stdout.strip() == (
        "No resources found in kube-public namespace.")
    # bad input names what is wrong
    r = shoal.shoal("get", "deploy", "deploy/web", "-n", ns, check=False)
    assert r.returncode == 1 and "resource/name form" in r.stderr
    r = shoal.shoal("get", "deploy,nope", "-n", ns, check=False)
    assert r.returncode == 1 and 'resource type "nope"' in r.stderr
    r = shoal.shoal("get", "deploy/", "-n", ns, check=False)
    assert r.returncode == 1 and "single resource and name" in r.stderr


def test_describe_and_delete(shoal, ns):
    shoal.shoal("apply", "-f", "-", input=APP.format(ns=ns))
    out = shoal.shoal("describe", "deploy", "web", "-n", ns).stdout
    assert "Name:" in out and "web" in out and "StrategyType:" in out and "RollingUpdate" in out
    out = shoal.shoal("delete", "deploy", "web", "-n", ns).stdout
    assert "deployment.apps/web deleted" in out
    r = shoal.shoal("delete", "deploy", "web", "-n", ns, check=False)
    assert r.returncode == 1 and "not found" in r.stderr
    r = shoal.shoal("delete", "-f", "-", input=APP.format(ns=ns).split("---", 1)[1], check=False)
    assert "configmap/settings deleted" in r.stdout and "service/web deleted" in r.stdout
    assert r.returncode == 1 and 'deployments.apps "web" not found' in r.stderr


def test_bad_input_from_the_cli(shoal, ns, tmp_path):
    r = shoal.shoal("apply", "-f", "-", input="kind: [unclosed", check=False)
    assert r.returncode != 0 and "error parsing" in r.stderr
    r = shoal.shoal("apply", "-f", "-", input="apiVersion: v1\nkind: Gizmo\nmetadata: {name: x}\n",
                    check=False)
    assert r.returncode != 0 and "Gizmo" in r.stderr
    r = shoal.shoal("get", "gizmos", check=False)
    assert r.returncode != 0 and "gizmos" in r.stderr
    bad = APP.format(ns=ns).replace("image: busybox", "image: ''")
    r = shoal.shoal("apply", "-f", "-", input=bad, check=False)
    assert r.returncode != 0 and "spec.template.spec.containers[0].image" in r.stderr


def test_status(shoal):
    out = shoal.shoal("status").stdout
    assert "shoal is running" in out and f":{shoal.api_port}" in out and "ready" in out


DEPLOY = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: {ns}
spec:
  replicas: 0
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
{containers}
"""
MAIN = """      - name: main
        image: busybox
        env:
        - {name: A, value: "1"}
"""
HELPER = """      - name: helper
        image: busybox
        command: [sleep, "3600"]
"""


def test_apply_merges_lists_as_kubectl_does(shoal, ns, tmp_path):
    """The container list shrinks from two to one and grows back, applied by shoal and by
    kubectl to twin Deployments: the specs come out the same, with exactly the listed
    containers (a JSON merge patch would lose or keep the wrong ones)."""
    shoal.kubectl("create", "namespace", ns)
    steps = [MAIN + HELPER, MAIN, HELPER + MAIN.replace('"1"', '"2"')]
    for containers in steps:
        for tool, name in (("shoal", "by-shoal"), ("kubectl", "by-kubectl")):
            path = tmp_path / f"{name}.yaml"
            path.write_text(DEPLOY.format(name=name, ns=ns, containers=containers))
            run = shoal.shoal if tool == "shoal" else shoal.kubectl
            run("apply", "-f", str(path))
        specs = {}
        for name in ("by-shoal", "by-kubectl"):
            got = json.loads(shoal.kubectl("get", "deploy", name, "-n", ns, "-o", "json").stdout)
            specs[name] = got["spec"]["template"]["spec"]["containers"]
        assert specs["by-shoal"] == specs["by-kubectl"]
        wanted = [c["name"] for c in yaml.safe_load(
            DEPLOY.format(name="x", ns=ns, containers=containers))["spec"]["template"]["spec"]["containers"]]
        assert [c["name"] for c in specs["by-shoal"]] == wanted
    assert next(c for c in specs["by-shoal"] if c["name"] == "main")["env"] == [{"name": "A", "value": "2"}]
    shoal.kubectl("delete", "namespace", ns, "--wait=false")
