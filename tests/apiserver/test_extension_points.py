"""The API server's extension points, over real HTTP on loopback: a subresource handler
(`add_subresource`, the place for pods/log, pods/exec, ...), a group/version with its
own handler (`add_api_group`, the place for metrics.k8s.io), both in discovery; a
subresource nobody serves is a 404 Status; namespaces/finalize writes spec.finalizers."""

from __future__ import annotations

import secrets

import httpx
import pytest
from aiohttp import web

from shoal.apiserver.http import ApiServer, Target
from shoal.apiserver.local import LocalClient, ensure_namespaces
from shoal.apiserver.registry import Registry
from shoal.store import Store


class EchoMetrics:
    group, version = "metrics.example.com", "v1beta1"

    def resources(self):
        return [{"name": "echoes", "singularName": "", "namespaced": False, "kind": "Echo",
                 "verbs": ["get", "list"]}]

    async def handle(self, request: web.Request, path: str) -> web.StreamResponse:
        return web.json_response({"kind": "Echo", "path": path})


async def pod_greeting(request: web.Request, target: Target) -> web.StreamResponse:
    if request.method != "GET":
        return web.Response(status=405)
    return web.Response(text=f"hello from {target.namespace}/{target.name}\n")


@pytest.fixture
async def api(tmp_path):
    store = await Store.open(tmp_path / "store.db")
    registry = Registry(store)
    await ensure_namespaces(LocalClient(registry))
    token = secrets.token_hex(16)
    server = ApiServer(registry, token)
    server.add_subresource("pods", "greeting", pod_greeting)
    server.add_api_group(EchoMetrics())
    runner = web.AppRunner(server.app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}",
                                 headers={"Authorization": f"Bearer {token}"}) as client:
        yield client
    await runner.cleanup()
    await store.close()


POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
       "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


async def test_added_subresource_is_served_and_discovered(api):
    assert (await api.post("/api/v1/namespaces/default/pods", json=POD)).status_code == 201
    got = await api.get("/api/v1/namespaces/default/pods/p/greeting")
    assert got.status_code == 200 and got.text == "hello from default/p\n"
    resources = {r["name"]: r for r in (await api.get("/api/v1")).json()["resources"]}
    assert resources["pods/greeting"]["verbs"] == ["get"]
    unserved = await api.get("/api/v1/namespaces/default/pods/p/log")
    assert unserved.status_code == 404 and unserved.json()["reason"] == "NotFound"
    assert "pods/log" not in resources


async def test_added_api_group_is_served_and_discovered(api):
    groups = {g["name"] for g in (await api.get("/apis")).json()["groups"]}
    assert "metrics.example.com" in groups
    listing = (await api.get("/apis/metrics.example.com/v1beta1")).json()
    assert [r["name"] for r in listing["resources"]] == ["echoes"]
    echoed = await api.get("/apis/metrics.example.com/v1beta1/echoes/x")
    assert echoed.json() == {"kind": "Echo", "path": "echoes/x"}


async def test_namespace_finalize_writes_spec_finalizers_only(api):
    await api.post("/api/v1/namespaces", json={"apiVersion": "v1", "kind": "Namespace",
                                               "metadata": {"name": "fin", "labels": {"a": "b"}}})
    deleting = (await api.delete("/api/v1/namespaces/fin")).json()
    assert deleting["status"]["phase"] == "Terminating"
    assert deleting["spec"]["finalizers"] == ["kubernetes"]  # waits to be emptied
    deleting["spec"]["finalizers"] = ["kubernetes", "example.com/also"]
    deleting["metadata"]["labels"] = {"changed": "yes"}
    more = await api.put("/api/v1/namespaces/fin/finalize", json=deleting)
    assert more.status_code == 200, more.text
    assert more.json()["spec"]["finalizers"] == ["kubernetes", "example.com/also"]
    assert more.json()["metadata"]["labels"]["a"] == "b"  # finalize leaves metadata alone
    deleting["spec"]["finalizers"] = []
    deleting["metadata"]["resourceVersion"] = more.json()["metadata"]["resourceVersion"]
    done = await api.put("/api/v1/namespaces/fin/finalize", json=deleting)
    assert done.status_code == 200, done.text
    assert (await api.get("/api/v1/namespaces/fin")).status_code == 404  # nothing holds it
