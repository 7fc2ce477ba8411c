"""The status writer over the real API (in-process LocalClient, real store, ApiSource):
Istio-style validationMessages appear, clear when fixed, and nothing is rewritten when
nothing changed."""

from __future__ import annotations

import asyncio

import pytest

from shoal.api import kinds as api_kinds
from shoal.apiserver.local import LocalClient
from shoal.mesh import kinds
from shoal.mesh.apisource import ApiSource
from shoal.mesh.source import DESTINATION_RULES, VIRTUAL_SERVICES
from shoal.mesh.status import StatusWriter


@pytest.fixture
def registry():
    saved = dict(api_kinds._registry)
    kinds.register_kinds()
    try:
        yield
    finally:
        api_kinds._registry.clear()
        api_kinds._registry.update(saved)
        api_kinds._reindex()


def _pod(name, version):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default",
                         "labels": {"app": "reviews", "version": version}},
            "spec": {"containers": [{"name": "app", "image": "busybox"}]}}


VS = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
      "metadata": {"name": "reviews", "namespace": "default"},
      "spec": {"hosts": ["reviews"], "http": [{"route": [
          {"destination": {"host": "reviews", "subset": "v1"}, "weight": 50},
          {"destination": {"host": "reviews", "subset": "v2"}, "weight": 50}]}]}}
DR = {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
      "metadata": {"name": "reviews", "namespace": "default"},
      "spec": {"host": "reviews", "subsets": [{"name": "v1", "labels": {"version": "v1"}},
                                              {"name": "v3", "labels": {"version": "v3"}}]}}


async def _eventually(fetch, check, timeout=5.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        obj = await fetch()
        if check(obj):
            return obj
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"status never settled: {obj.get('status')}")
        await asyncio.sleep(0.05)


def _codes(obj):
    return [m["type"]["code"] for m in (obj.get("status") or {}).get("validationMessages", [])]


async def test_status_carries_analysis_clears_when_fixed_and_does_not_loop(registry, tmp_path):
    async with LocalClient.open(tmp_path / "store.db") as client:
        await client.create("services", {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "reviews", "namespace": "default"},
            "spec": {"selector": {"app": "reviews"}, "ports": [{"name": "http", "port": 9080}]}})
        for name, version in (("reviews-v1", "v1"), ("reviews-v2", "v2")):
            await client.create("pods", _pod(name, version))
        await client.create("endpoints", {  # no endpoints controller runs here
            "apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": "reviews", "namespace": "default"},
            "subsets": [{"addresses": [
                {"ip": f"10.1.0.{i}", "targetRef": {"kind": "Pod", "name": name}}
                for i, name in enumerate(("reviews-v1", "reviews-v2"), 1)],
                "ports": [{"name": "http", "port": 9080}]}]})
        created = await client.create(VIRTUAL_SERVICES, VS)  # accepted: v2 is missing
        await client.create(DESTINATION_RULES, DR)
        source = ApiSource(client, retry_seconds=0.1)
        await source.start()
        writer = StatusWriter(source, client, debounce_seconds=0.02)
        await writer.start()
        try:
            vs = await _eventually(lambda: client.get(VIRTUAL_SERVICES, "default", "reviews"),
                                   lambda o: "conditions" in (o.get("status") or {}))
            assert vs["status"]["validationMessages"] == [{
                "type": {"code": "IST0101", "name": "ReferencedResourceNotFound"},
                "level": "ERROR",
                "documentationUrl":
                    "https://istio.io/latest/docs/reference/config/analysis/ist0101/"}]
            assert vs["status"]["observedGeneration"] == created["metadata"]["generation"]
            (condition,) = vs["status"]["conditions"]
            assert condition["type"] == "Reconciled" and condition["status"] == "True"
            dr = await _eventually(lambda: client.get(DESTINATION_RULES, "default", "reviews"),
                                   lambda o: "conditions" in (o.get("status") or {}))
            assert _codes(dr) == ["IST0173"]  # subset v3 selects no pod

            # settled: no write while nothing changes (the writer's own updates are no-ops)
            writes, version = writer.writes, vs["metadata"]["resourceVersion"]
            await asyncio.sleep(0.5)
            again = await client.get(VIRTUAL_SERVICES, "default", "reviews")
            assert writer.writes == writes and again["metadata"]["resourceVersion"] == version

            # fix the rule: both messages clear
            dr["spec"]["subsets"][1] = {"name": "v2", "labels": {"version": "v2"}}
            await client.update(DESTINATION_RULES, dr)
            vs = await _eventually(lambda: client.get(VIRTUAL_SERVICES, "default", "reviews"),
                                   lambda o: not _codes(o))
            assert vs["status"]["conditions"][0]["message"] == "0 errors, 0 warnings"
            await _eventually(lambda: client.get(DESTINATION_RULES, "default", "reviews"),
                              lambda o: not _codes(o))
        finally:
            await writer.stop()
            await source.stop()
