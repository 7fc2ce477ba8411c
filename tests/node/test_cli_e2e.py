"""`shoal scale|rollout|top` and the pod resolver for `shoal logs/exec`, against a real
daemon (tests/daemon_harness.py) with this package's network ranges."""

from __future__ import annotations

import json
import secrets
import time

import pytest
from click.testing import CliRunner

from shoal.cli import workloads
from shoal.cli.main import cli
from tests.daemon_harness import ShoalInstance

MANIFEST = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: busybox
        imagePullPolicy: IfNotPresent
        command: ["sh", "-c", "echo hello from $HOSTNAME; exec httpd -f -p 8080"]
        readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
"""


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    inst = ShoalInstance(tmp_path_factory.mktemp("node-cli") / "state")
    tag, third = secrets.token_hex(2), secrets.randbelow(256)
    inst.env.update({"SHOAL_BRIDGE": f"shoaln{tag}", "SHOAL_POD_CIDR": f"10.241.{third}.0/24",
                     "SHOAL_SERVICE_CIDR": f"10.242.{third}.0/24", "SHOAL_CHAIN_PREFIX": f"SHOALN{tag.upper()}"})
    try:
        inst.shoal("image", "bootstrap", "busybox", "--busybox")
        inst.start()
        yield inst
    finally:
        inst.stop()
    # `shoal down` (teardown_node + the network's teardown) left nothing of this instance
    import subprocess
    from pathlib import Path

    left = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
            if line.split()[1].startswith(str(inst.state_dir))]
    if Path(f"/sys/class/net/{inst.env['SHOAL_BRIDGE']}").exists():
        left.append(inst.env["SHOAL_BRIDGE"])
    procs = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    left += [p for p in procs.splitlines() if str(inst.state_dir) in p]
    assert not left, f"left behind after shoal down: {left}"


def shoal(daemon, *args: str):
    assert all(cli.commands.get(c.name) is c for c in workloads.COMMANDS)  # registered by shoal.cli.main
    result = CliRunner().invoke(cli, list(args), env=daemon.env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_scale_rollout_top_and_pod_logs(daemon):
    daemon.shoal("apply", "-f", "-", input=MANIFEST)
    assert 'deployment "web" successfully rolled out' in shoal(daemon, "rollout", "status", "deployment/web",
                                                                "--timeout", "60")
    assert shoal(daemon, "scale", "deployment/web", "--replicas", "3") == "deployment.apps/web scaled\n"
    shoal(daemon, "rollout", "status", "deployment/web", "--timeout", "60")
    pods = daemon.shoal("get", "pods", "-o", "name").stdout.split()
    assert len(pods) == 3

    top = shoal(daemon, "top", "pods").splitlines()
    assert top[0].split() == ["NAME", "CPU(cores)", "MEMORY(bytes)"] and len(top) == 4

    assert shoal(daemon, "rollout", "restart", "deployment/web") == "deployment.apps/web restarted\n"
    shoal(daemon, "rollout", "status", "deployment/web", "--timeout", "60")
    history = shoal(daemon, "rollout", "history", "deployment/web").splitlines()
    assert history[1].split() == ["REVISION", "CHANGE-CAUSE"] and [h.split()[0] for h in history[2:]] == ["1", "2"]
    assert shoal(daemon, "rollout", "undo", "deployment/web") == "deployment.apps/web rolled back\n"
    shoal(daemon, "rollout", "status", "deployment/web", "--timeout", "60")

    # `shoal logs POD` / `shoal exec POD` find the pod's container through the node
    # agent's resolve_container (wired by shoal/cli/pods.py)
    items = json.loads(daemon.shoal("get", "pods", "-o", "json").stdout)["items"]
    pod = next(p["metadata"]["name"] for p in items
               if not p["metadata"].get("deletionTimestamp") and p["status"].get("phase") == "Running")
    deadline = time.monotonic() + 10
    while f"hello from {pod}" not in (out := daemon.shoal("logs", pod).stdout) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert f"hello from {pod}" in out
    assert daemon.shoal("exec", pod, "--", "hostname").stdout.strip() == pod
    failed = daemon.shoal("logs", "-p", pod, check=False)
    assert failed.returncode != 0 and "previous terminated container" in failed.stderr


def test_daemon_killed_and_restarted_restarts_no_pod(daemon):
    import os
    import signal

    daemon.shoal("apply", "-f", "-", input=MANIFEST)
    shoal(daemon, "rollout", "status", "deployment/web", "--timeout", "60")

    def pods() -> dict:
        items = json.loads(daemon.shoal("get", "pods", "-o", "json").stdout)["items"]
        return {p["metadata"]["name"]: [(c["containerID"], c["restartCount"], c["ready"])
                                        for c in p["status"]["containerStatuses"]]
                for p in items if not p["metadata"].get("deletionTimestamp")}

    before = pods()
    os.kill(daemon.pid, signal.SIGKILL)
    time.sleep(0.5)
    daemon.start()
    time.sleep(3)  # let the new agent sync every pod
    assert pods() == before
