"""Snapshot versions and the consistency check."""

from __future__ import annotations

from shoal.mesh import snapshot
from shoal.mesh.meshconfig import MeshConfig
from shoal.mesh.source import PODS
from shoal.mesh.translate import Resources, model, protos, translate
from tests.mesh.fixtures import cluster, pod


def build(state, name="client"):
    identity = model.proxy_identity(state.get(PODS, "default", name), state)
    return translate(state, identity, MeshConfig())


def test_translated_snapshot_is_consistent():
    snap = snapshot.Snapshot.build(build(cluster()))
    assert snapshot.consistent(snap) == []
    assert snapshot.eds_names(snap) == set(snap.get(protos.ENDPOINT))
    assert snapshot.rds_names(snap) == {"80", "9090"}


def test_missing_eds_and_rds_are_reported():
    res = build(cluster())
    broken = Resources(clusters=res.clusters, endpoints=res.endpoints[1:],
                       listeners=res.listeners, routes=res.routes[1:])
    problems = snapshot.consistent(snapshot.Snapshot.build(broken))
    assert any("lacks" in p and "outbound|" in p for p in problems)
    assert any("route configuration" in p for p in problems)
    stray = Resources(clusters=(), endpoints=res.endpoints, listeners=(), routes=res.routes)
    problems = snapshot.consistent(snapshot.Snapshot.build(stray))
    assert any("named by no cluster" in p for p in problems)
    assert any("named by no listener" in p for p in problems)


def test_versions_change_only_for_changed_types():
    base = snapshot.Snapshot.build(build(cluster()))
    same = snapshot.Snapshot.build(build(cluster()))
    assert base.versions == same.versions
    # a new endpoint changes EDS only
    more = snapshot.Snapshot.build(build(cluster(pod("web-4", "10.0.0.9", {"app": "web"},
                                                     sa="web", ports=[("http", 8080)]))))
    changed = {t for t in base.versions if base.versions[t] != more.versions[t]}
    assert changed == {protos.ENDPOINT}


async def test_cache_wakes_watchers_only_on_change():
    cache = snapshot.SnapshotCache()
    event = cache.watch("n")
    assert not event.is_set()
    snap = snapshot.Snapshot.build(build(cluster()))
    assert cache.set("n", snap)
    assert event.is_set()
    event.clear()
    assert not cache.set("n", snapshot.Snapshot.build(build(cluster())))
    assert not event.is_set()
    cache.unwatch("n", event)
