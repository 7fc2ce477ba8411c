"""`shoal demo` end to end against a private instance (own state dir, ranges, chains).

One run of the whole story, as a user meets it: the first `shoal demo -o json` starts
the daemon, bootstraps the Debian base (the slow part, once), builds the images, deploys
the bookstore in the mesh and measures it; the second run reuses everything; `demo
--down` and `shoal down` leave nothing behind. Under ~3 minutes on this machine.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from shoal.network import names
from tests.daemon_harness import ShoalInstance

TRUST = "spiffe://cluster.local/ns/bookstore/sa/"
EDGES = {  # (caller workload, service): (caller service account, server service account)
    ("loadgen", "frontend"): ("loadgen", "frontend"),
    ("frontend", "catalog"): ("frontend", "catalog"),
    ("frontend", "reviews"): ("frontend", "reviews"),
    ("reviews-v1", "ratings"): ("reviews", "ratings"),
    ("reviews-v2", "ratings"): ("reviews", "ratings"),
}


@pytest.fixture
def instance():
    # A short state dir: gRPC's unix sockets under <state>/run/xds/<pod uid>/ must fit in
    # sun_path (108 bytes), which pytest's tmp_path names do not.
    root = Path(tempfile.mkdtemp(prefix="shoal-demo-", dir="/tmp"))
    inst = ShoalInstance(root / "state")
    n = secrets.randbelow(250) + 1
    tag = secrets.token_hex(2)
    inst.env.update({
        "SHOAL_BRIDGE": f"shoald{tag}",
        "SHOAL_POD_CIDR": f"10.245.{n}.0/24",
        "SHOAL_SERVICE_CIDR": f"10.246.{n}.0/24",
        "SHOAL_CHAIN_PREFIX": f"SHOALD{tag.upper()}",
        "SHOAL_NODE_PORT_RANGE": f"{32200 + 2 * n}-{32201 + 2 * n}",
    })
    try:
        yield inst
    finally:
        inst.stop()
        if not os.environ.get("SHOAL_TEST_KEEP"):
            shutil.rmtree(root, ignore_errors=True)


def demo_json(inst: ShoalInstance, timeout: float) -> dict:
    result = inst.shoal("demo", "-o", "json", check=False, timeout=timeout)
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"shoal demo -o json exited {result.returncode} without a JSON "
                             f"report\nstdout: {result.stdout[-2000:]}\nstderr: {result.stderr[-3000:]}")
    flags = {k: v for k, v in report.items() if k.startswith("all_")}
    assert result.returncode == 0, (f"shoal demo exited {result.returncode}: {flags}\n"
                                    f"edges: {json.dumps(report.get('edges'))[:4000]}\n"
                                    f"pods: {json.dumps(report.get('pods'))[:2000]}")
    return report


def assert_story(report: dict) -> None:
    pods = report["pods"]
    assert {p["workload"] for p in pods} == {"frontend", "catalog", "reviews-v1", "reviews-v2",
                                             "ratings", "loadgen"}
    assert all(p["ready"] and p["phase"] == "Running" for p in pods), pods
    assert all(p["sidecar"] for p in pods), "every pod has a sidecar"
    assert report["all_ready"] and report["all_meshed"] and report["all_mtls"] and report["all_succeeded"]
    edges = {(e["caller"], e["service"]): e for e in report["edges"]}
    assert set(edges) == set(EDGES), sorted(edges)
    for key, (caller_sa, server_sa) in EDGES.items():
        edge = edges[key]
        assert edge["requests"] > 0 and edge["success_rate"] == 100.0, edge
        assert edge["p50_ms"] is not None and edge["p99_ms"] >= edge["p50_ms"], edge
        assert edge["mtls"] is True, edge
        assert edge["caller_identity"] == TRUST + caller_sa, edge
        assert edge["server_identities"] == [TRUST + server_sa], edge
        evidence = edge["evidence"]
        assert evidence["pinned_server_ids"] == [TRUST + server_sa]
        assert evidence["client_tls_handshakes"] >= evidence["client_connections"] > 0
        assert evidence["server_tls_handshakes"] > 0
    traffic = report["traffic"]
    assert set(traffic["codes"]) == {"200"}, traffic["codes"]
    assert {a["reviews_version"] for a in traffic["answers"]} == {"v1", "v2"}
    # requests counted by the caller's sidecar match what the client saw end to end
    assert edges[("loadgen", "frontend")]["requests"] == traffic["requests"]
    # the canary: a VirtualService shifts reviews 90/10 then 50/50, counted by the sidecars
    ninety, half = report["canary"]
    assert ninety["weights"] == {"v1": 90, "v2": 10} and half["weights"] == {"v1": 50, "v2": 50}
    assert ninety["requests"]["v2"] > 0 and 75 <= ninety["share"]["v1"] <= 98, ninety
    assert 30 <= half["share"]["v1"] <= 70, half
    assert sum(half["requests"].values()) > 50, half


def leftovers(inst: ShoalInstance, netns: list[str]) -> list[str]:
    found = []
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    found += [f"netns {line.split()[0]}" for line in listed.splitlines() if line.split()[0] in netns]
    if Path(f"/sys/class/net/{inst.env['SHOAL_BRIDGE']}").exists():
        found.append(f"bridge {inst.env['SHOAL_BRIDGE']}")
    found += [f"mount {line.split()[1]}" for line in Path("/proc/mounts").read_text().splitlines()
              if line.split()[1].startswith(str(inst.state_dir))]
    procs = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    found += [f"process {p}" for p in procs.splitlines() if str(inst.state_dir) in p]
    for table in ("nat", "filter"):
        rules = subprocess.run(["iptables-save", "-t", table], capture_output=True, text=True).stdout
        found += [f"iptables {table} {line}" for line in rules.splitlines()
                  if inst.env["SHOAL_CHAIN_PREFIX"] in line]
    return found


def test_demo_tells_the_whole_story_then_leaves_nothing(instance: ShoalInstance):
    first = demo_json(instance, timeout=420)
    assert first["started_daemon"] is True
    assert_story(first)

    started = time.monotonic()
    second = demo_json(instance, timeout=180)
    seconds = time.monotonic() - started
    assert second["started_daemon"] is False and second["base_image"]["bootstrapped"] is False
    assert all(i["layers_built"] == 0 and i["cache_hits"] >= 1 for i in second["images"]), second["images"]
    assert all(a["result"] == "unchanged" for a in second["applied"]), second["applied"]
    assert [p["name"] for p in second["pods"]] == [p["name"] for p in first["pods"]], "nothing restarted"
    assert_story(second)
    assert seconds < 90, f"second run took {seconds:.1f}s"  # (~20 s of it is the canary's traffic)

    down = instance.shoal("demo", "--down", timeout=180)
    assert "gone" in down.stdout
    pods = instance.shoal("get", "pods", "-n", "bookstore").stdout + instance.shoal("get", "pods", "-n", "bookstore").stderr
    assert "No resources found" in pods, pods
    bridge = instance.env["SHOAL_BRIDGE"]  # the daemon names each pod's netns from these
    netns = [names.netns_name(f"{bridge}-", bridge, f"bookstore/{p['name']}") for p in second["pods"]]
    assert not [x for x in leftovers(instance, netns) if x.startswith("netns")]

    instance.shoal("down", timeout=180)
    assert not leftovers(instance, netns)
