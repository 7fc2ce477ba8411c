"""The Node through kubectl against a real daemon: `get nodes -o wide`, `describe node`,
a pod too big for the node left Pending the Kubernetes way, a DaemonSet's one pod, and
a StatefulSet with a bad selector refused."""

from __future__ import annotations

import json
import os

import pytest

from tests.daemon_harness import ShoalInstance, wait_for

pytestmark = pytest.mark.slow

DAEMONSET = """
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, namespace: default}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {name: agent, image: busybox, imagePullPolicy: IfNotPresent, command: ["sleep", "3600"]}
"""


def greedy_pod(cpus: int) -> str:
    return f"""
apiVersion: v1
kind: Pod
metadata: {{name: greedy, namespace: default}}
spec:
  containers:
  - name: c
    image: busybox
    imagePullPolicy: IfNotPresent
    command: ["sleep", "3600"]
    resources: {{requests: {{cpu: "{cpus}"}}}}
"""


@pytest.fixture(scope="module")
def shoal(tmp_path_factory):
    instance = ShoalInstance(tmp_path_factory.mktemp("nodes"))
    instance.shoal("image", "bootstrap", "busybox", "--busybox")
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()


def _node(shoal: ShoalInstance) -> dict:
    return json.loads(shoal.kubectl("get", "node", "shoal", "-o", "json").stdout)


def test_get_nodes_wide_shows_this_machine_ready(shoal):
    def ready():
        out = shoal.kubectl("get", "nodes", "-o", "wide").stdout
        return out if " Ready " in out else None

    out = wait_for(ready, 30, what="node Ready")
    header, row = out.strip().splitlines()
    assert header.split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP",
                              "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"]
    assert row.split()[:3] == ["shoal", "Ready", "control-plane"]
    assert os.uname().release in row and "runc://" in row
    node = _node(shoal)
    assert node["status"]["capacity"]["cpu"] == str(os.cpu_count())
    assert node["status"]["allocatable"]["pods"] == "110"
    kinds = {c["type"]: c["status"] for c in node["status"]["conditions"]}
    assert kinds == {"Ready": "True", "MemoryPressure": "False", "DiskPressure": "False",
                     "PIDPressure": "False"}
    lease = json.loads(shoal.kubectl("get", "lease", "-n", "kube-node-lease", "shoal",
                                     "-o", "json").stdout)
    assert lease["spec"]["holderIdentity"] == "shoal"

    described = shoal.kubectl("describe", "node", "shoal").stdout
    for text in ("Roles:              control-plane", "Capacity:", "Allocatable:", "NodeReady",
                 "KubeletReady", "Container Runtime Version:  runc://", "Allocated resources:"):
        assert text in described, (text, described)


def test_pod_asking_more_cpu_than_allocatable_stays_pending(shoal):
    too_many = os.cpu_count() + 1
    shoal.kubectl("apply", "-f", "-", input=greedy_pod(too_many))

    def unschedulable():
        pod = json.loads(shoal.kubectl("get", "pod", "greedy", "-o", "json").stdout)
        conds = [c for c in pod["status"].get("conditions") or [] if c["type"] == "PodScheduled"]
        return pod if conds and conds[0].get("reason") == "Unschedulable" else None

    pod = wait_for(unschedulable, 30, what="greedy unschedulable")
    assert pod["status"]["phase"] == "Pending" and not pod["spec"].get("nodeName")
    events = shoal.kubectl("get", "events", "--field-selector",
                           "involvedObject.name=greedy,reason=FailedScheduling").stdout
    assert "0/1 nodes are available: 1 Insufficient cpu." in events
    shoal.kubectl("delete", "pod", "greedy", "--wait=false")


def test_daemonset_runs_its_one_pod(shoal):
    shoal.kubectl("apply", "-f", "-", input=DAEMONSET)

    def ready():
        out = shoal.kubectl("get", "ds", "agent").stdout.strip().splitlines()
        return out if len(out) == 2 and out[1].split()[1:6] == ["1"] * 5 else None

    header, row = wait_for(ready, 60, what="daemonset ready")
    assert header.split() == ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE",
                              "NODE", "SELECTOR", "AGE"]
    assert row.split()[6] == "<none>"
    pods = json.loads(shoal.kubectl("get", "pods", "-l", "app=agent", "-o", "json").stdout)
    (pod,) = pods["items"]
    assert pod["spec"]["nodeName"] == "shoal" and pod["status"]["phase"] == "Running"

    # a rolling update through kubectl's strategic merge patch, one revision more
    shoal.kubectl("set", "image", "ds/agent", "agent=busybox:latest")
    out = shoal.kubectl("rollout", "status", "ds/agent", "--timeout=60s", timeout=70).stdout
    assert 'daemon set "agent" successfully rolled out' in out

    def replaced():
        items = json.loads(shoal.kubectl("get", "pods", "-l", "app=agent", "-o", "json").stdout)
        live = [p for p in items["items"] if not p["metadata"].get("deletionTimestamp")]
        return live if [p["spec"]["containers"][0]["image"] for p in live] == ["busybox:latest"] \
            else None

    (new,) = wait_for(replaced, 30, what="the updated daemon pod")
    assert new["metadata"]["name"] != pod["metadata"]["name"]
    revisions = shoal.kubectl("get", "controllerrevisions", "-o", "name").stdout.split()
    assert len(revisions) == 2
    # the "all" category (from discovery) takes in daemon sets and their pods
    everything = shoal.kubectl("get", "all", "-o", "name").stdout.split()
    assert "daemonset.apps/agent" in everything and f"pod/{new['metadata']['name']}" in everything


def test_statefulset_with_selector_not_matching_template_is_refused(shoal):
    bad = """
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: bad, namespace: default}
spec:
  serviceName: bad
  selector: {matchLabels: {app: bad}}
  template:
    metadata: {labels: {app: other}}
    spec:
      containers: [{name: c, image: busybox}]
"""
    result = shoal.kubectl("apply", "-f", "-", input=bad, check=False)
    assert result.returncode != 0
    assert 'The StatefulSet "bad" is invalid: spec.template.metadata.labels: Invalid value' \
        in result.stderr
    assert "`selector` does not match template `labels`" in result.stderr
