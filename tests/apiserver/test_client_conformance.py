"""One contract, two clients: every check here runs against LocalClient (in-process, over
a temp store) and HttpClient (over a real ApiServer on loopback), so a controller that
works on one works on the other: same results, same typed errors (NotFound,
AlreadyExists, Conflict, Invalid with its field causes, Gone for a compacted watch)."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from typing import Any, Awaitable, Callable

import pytest
from aiohttp import web

from shoal.api import errors
from shoal.apiserver.http import ApiServer
from shoal.apiserver.local import LocalClient, ensure_namespaces
from shoal.apiserver.registry import Registry
from shoal.client import HttpClient
from shoal.store import Store


@dataclasses.dataclass
class Subject:
    client: Any
    compact: Callable[[], Awaitable[int]]
    """Compact the store behind the client down to its newest revision."""


@pytest.fixture(params=["local", "http"])
async def subject(request, tmp_path):
    store = await Store.open(tmp_path / "store.db")
    registry = Registry(store)
    runner = None
    http = None
    try:
        if request.param == "local":
            client: Any = LocalClient(registry)
        else:
            token = secrets.token_hex(16)
            runner = web.AppRunner(ApiServer(registry, token).app)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = runner.addresses[0][1]
            client = http = HttpClient(f"http://127.0.0.1:{port}", token, None)
        await ensure_namespaces(client)
        yield Subject(client, lambda: store.compact(keep=0))
    finally:
        if http is not None:
            await http.aclose()
        if runner is not None:
            await runner.cleanup()
        await store.close()


def configmap(name: str, namespace: str = "default", **data: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace, "labels": {"app": "conf"}},
            "data": dict(data) or {"k": "v"}}


def deployment(name: str, containers: list[dict], replicas: int = 1) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": containers}}}}


async def test_create_get_list(subject):
    c = subject.client
    created = await c.create("configmaps", configmap("a", k="1"))
    assert created["metadata"]["uid"] and created["metadata"]["creationTimestamp"]
    assert await c.get("configmaps", "default", "a") == created
    await c.create("configmaps", {**configmap("b"), "metadata": {"name": "b", "namespace": "default"}})
    items, rev = await c.list("configmaps", "default")
    assert sorted(i["metadata"]["name"] for i in items) == ["a", "b"]
    assert rev >= int(created["metadata"]["resourceVersion"])
    labelled, _ = await c.list("configmaps", "default", label_selector="app=conf")
    assert [i["metadata"]["name"] for i in labelled] == ["a"]
    by_field, _ = await c.list("configmaps", None, field_selector="metadata.name=b")
    assert [i["metadata"]["name"] for i in by_field] == ["b"]


async def test_not_found_and_already_exists(subject):
    c = subject.client
    with pytest.raises(errors.NotFound) as missing:
        await c.get("configmaps", "default", "nope")
    assert missing.value.code == 404 and missing.value.details["name"] == "nope"
    with pytest.raises(errors.NotFound):
        await c.create("configmaps", configmap("x", namespace="no-such-namespace"))
    await c.create("configmaps", configmap("twice"))
    with pytest.raises(errors.AlreadyExists) as dup:
        await c.create("configmaps", configmap("twice"))
    assert dup.value.code == 409 and 'configmaps "twice" already exists' in dup.value.message
    with pytest.raises(errors.NotFound):
        await c.delete("configmaps", "default", "nope")


async def test_update_compares_and_swaps(subject):
    c = subject.client
    first = await c.create("configmaps", configmap("cas", k="1"))
    first["data"] = {"k": "2"}
    second = await c.update("configmaps", first)
    assert second["data"] == {"k": "2"}
    assert int(second["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])
    first["data"] = {"k": "stale"}  # still carries the old resourceVersion
    with pytest.raises(errors.Conflict) as stale:
        await c.update("configmaps", first)
    assert not isinstance(stale.value, errors.AlreadyExists)
    assert "the object has been modified" in stale.value.message
    assert (await c.get("configmaps", "default", "cas"))["data"] == {"k": "2"}
    unconditional = dict(second, data={"k": "3"})
    unconditional["metadata"] = {k: v for k, v in second["metadata"].items()
                                 if k != "resourceVersion"}
    assert (await c.update("configmaps", unconditional))["data"] == {"k": "3"}


async def test_patch_merge_json_and_strategic(subject):
    c = subject.client
    await c.create("configmaps", configmap("p", a="1", b="2"))
    merged = await c.patch("configmaps", "default", "p", {"data": {"b": None, "c": "3"}})
    assert merged["data"] == {"a": "1", "c": "3"}
    jsoned = await c.patch("configmaps", "default", "p",
                           [{"op": "replace", "path": "/data/a", "value": "9"}], "json")
    assert jsoned["data"] == {"a": "9", "c": "3"}
    with pytest.raises(errors.Conflict):
        await c.patch("configmaps", "default", "p",
                      {"metadata": {"resourceVersion": "1"}, "data": {"a": "0"}})

    await c.create("deployments.apps", deployment("web", [
        {"name": "app", "image": "app:1"}, {"name": "side", "image": "side:1"}]))
    patched = await c.patch("deployments.apps", "default", "web", {"spec": {"template": {"spec": {
        "containers": [{"name": "side", "image": "side:2"}]}}}}, "strategic")
    images = {x["name"]: x["image"] for x in patched["spec"]["template"]["spec"]["containers"]}
    assert images == {"app": "app:1", "side": "side:2"}  # merged by name, not replaced
    replaced = await c.patch("deployments.apps", "default", "web", {"spec": {"template": {"spec": {
        "containers": [{"name": "side", "image": "side:3"}]}}}}, "merge")
    assert [x["name"] for x in replaced["spec"]["template"]["spec"]["containers"]] == ["side"]


async def test_delete_then_gone_from_reads(subject):
    c = subject.client
    await c.create("configmaps", configmap("d"))
    deleted = await c.delete("configmaps", "default", "d")
    assert deleted["metadata"]["name"] == "d"
    with pytest.raises(errors.NotFound):
        await c.get("configmaps", "default", "d")
    held = configmap("held")
    held["metadata"]["finalizers"] = ["example.com/hold"]
    await c.create("configmaps", held)
    waiting = await c.delete("configmaps", "default", "held")
    assert waiting["metadata"]["deletionTimestamp"]  # finalizers keep it
    assert (await c.get("configmaps", "default", "held"))["metadata"]["deletionTimestamp"]


async def _events(iterator, count: int) -> list[tuple[str, str]]:
    out = []
    while len(out) < count:
        event = await asyncio.wait_for(iterator.__anext__(), 5)
        out.append((event.type, event.object["metadata"]["name"]))
    return out


async def test_watch_from_now_and_from_a_revision(subject):
    c = subject.client
    a = await c.create("configmaps", configmap("wa"))
    since = int(a["metadata"]["resourceVersion"])
    await c.patch("configmaps", "default", "wa", {"data": {"k": "changed"}})
    await c.create("configmaps", configmap("wb"))
    replay = c.watch("configmaps", "default", resource_version=since)
    try:
        assert await _events(replay, 2) == [("MODIFIED", "wa"), ("ADDED", "wb")]
    finally:
        await replay.aclose()
    live = c.watch("configmaps", "default", label_selector="app=conf")
    try:
        assert sorted(await _events(live, 2)) == [("ADDED", "wa"), ("ADDED", "wb")]
        await c.delete("configmaps", "default", "wb")
        assert await _events(live, 1) == [("DELETED", "wb")]
    finally:
        await live.aclose()


async def test_watch_from_a_compacted_revision_is_gone(subject):
    c = subject.client
    old = await c.create("configmaps", configmap("old"))
    await c.patch("configmaps", "default", "old", {"data": {"k": "new"}})
    await c.create("configmaps", configmap("newer"))
    await subject.compact()
    stream = c.watch("configmaps", "default", resource_version=int(old["metadata"]["resourceVersion"]))
    with pytest.raises(errors.Gone) as gone:
        await asyncio.wait_for(stream.__anext__(), 5)
    assert gone.value.code == 410
    await stream.aclose()


async def test_status_subresource(subject):
    c = subject.client
    created = await c.create("deployments.apps", deployment("st", [{"name": "a", "image": "a:1"}]))
    created["status"] = {"replicas": 7, "observedGeneration": 1}
    via_status = await c.update_status("deployments.apps", created)
    assert via_status["status"]["replicas"] == 7
    assert via_status["metadata"]["generation"] == created["metadata"]["generation"]
    via_status["status"] = {"replicas": 99}
    via_status["spec"]["replicas"] = 3
    via_main = await c.update("deployments.apps", via_status)
    assert via_main["spec"]["replicas"] == 3
    assert via_main["status"]["replicas"] == 7  # the main resource leaves status alone
    assert via_main["metadata"]["generation"] == created["metadata"]["generation"] + 1
    patched = await c.patch("deployments.apps", "default", "st", {"status": {"replicas": 2}},
                            subresource="status")
    assert patched["status"]["replicas"] == 2 and patched["spec"]["replicas"] == 3
    ignored = await c.patch("deployments.apps", "default", "st", {"status": {"replicas": 5}})
    assert ignored["status"]["replicas"] == 2  # status is not written through the main resource


async def test_invalid_carries_every_field_cause(subject):
    c = subject.client
    bad = deployment("bad", [{"name": "a"}], replicas=-1)
    with pytest.raises(errors.Invalid) as invalid:
        await c.create("deployments.apps", bad)
    err = invalid.value
    assert err.code == 422 and err.reason == "Invalid"
    paths = {e.path for e in err.errors}
    assert {"spec.replicas", "spec.template.spec.containers[0].image"} <= paths
    replicas = next(e for e in err.errors if e.path == "spec.replicas")
    assert str(replicas) == "spec.replicas: Invalid value: -1: must be greater than or equal to 0"
    assert 'Deployment.apps "bad" is invalid' in err.message or 'Deployment "bad" is invalid' in err.message
    causes = {cause["field"]: cause["reason"] for cause in err.details["causes"]}
    assert causes["spec.template.spec.containers[0].image"] == "FieldValueRequired"
    with pytest.raises(errors.NotFound):
        await c.get("deployments.apps", "default", "bad")


async def test_bad_requests_are_refused_alike(subject):
    c = subject.client
    with pytest.raises(errors.BadRequest) as unnamed:
        await c.update("configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}})
    assert "metadata.name" in unnamed.value.message
    await c.create("configmaps", configmap("pt"))
    with pytest.raises(errors.BadRequest) as patch_type:
        await c.patch("configmaps", "default", "pt", {"data": {}}, "yaml")
    assert "merge, json, strategic" in patch_type.value.message
    with pytest.raises(errors.BadRequest):
        await c.patch("configmaps", "default", "pt", [{"op": "frobnicate", "path": "/data"}], "json")
    with pytest.raises(errors.NotFound):
        await c.list("no-such-resources")
