"""Conformance checks every ClusterSource must pass (run them for each implementation).

`check_source(source, put, delete)`: `put(kind, obj)` and `delete(kind, ns, name)` are
awaitables that change the backing store the way users do (InMemorySource.put, or
ApiClient.create/delete for the store-backed source).
"""

from __future__ import annotations

import asyncio

from shoal.mesh.source import NAMESPACES, PEER_AUTHENTICATIONS, PODS, SERVICES, ClusterSource


async def _next_change(iterator, timeout: float = 5.0):
    return await asyncio.wait_for(iterator.__anext__(), timeout)


async def check_source(source: ClusterSource, put, delete) -> None:
    changes = source.changes()  # subscribed from here on
    await put(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "conf"}})
    await put(SERVICES, {"apiVersion": "v1", "kind": "Service",
                         "metadata": {"name": "svc", "namespace": "conf"},
                         "spec": {"selector": {"app": "x"}, "ports": [{"port": 80}]}})
    await put(PEER_AUTHENTICATIONS, {
        "apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
        "metadata": {"name": "default", "namespace": "conf"}, "spec": {"mtls": {"mode": "STRICT"}}})
    seen = set()
    while len(seen) < 3:
        change = await _next_change(changes)
        seen.add((change.kind, change.namespace, change.name))
    assert {(SERVICES, "conf", "svc"), (NAMESPACES, None, "conf"),
            (PEER_AUTHENTICATIONS, "conf", "default")} <= seen
    state = await source.snapshot()
    assert state.get(SERVICES, "conf", "svc")["spec"]["ports"][0]["port"] == 80
    assert state.get(NAMESPACES, None, "conf") is not None
    assert [p["metadata"]["name"] for p in state.list(PEER_AUTHENTICATIONS, "conf")] == ["default"]
    assert state.list(PODS, "conf") == []
    revision = state.revision

    await delete(SERVICES, "conf", "svc")
    change = await _next_change(changes)
    assert (change.kind, change.namespace, change.name) == (SERVICES, "conf", "svc")
    later = await source.snapshot()
    assert later.get(SERVICES, "conf", "svc") is None
    assert later.revision > revision
    # the earlier snapshot is a value: it did not change under us
    assert state.get(SERVICES, "conf", "svc") is not None
    await changes.aclose()
