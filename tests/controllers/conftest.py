"""Fixtures: a real API (LocalClient over a SQLite store in tmp_path) with every
controller running, and a test kubelet that writes pod status like the node agent will.

Nothing here mocks the API: objects go through defaulting, validation and the store,
and controllers see them through real watches.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable

import pytest

from shoal import timestamps
from shoal.api import errors as api_errors
from shoal.config import Settings
from shoal.controllers import ControllerOptions, build_manager, pods as podutil
from shoal.controllers.namespace import ensure_namespaces

NODE = "shoal-test-node"
FAST = ControllerOptions(retry_base=0.005, retry_cap=0.5, namespace_poll=0.1,
                         informer_retry=0.1)


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 10.0,
                     interval: float = 0.02, message: str = "") -> Any:
    """Await check() until it returns a truthy value; fail after timeout with the last
    value seen."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = await check()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s {message}: last value {last!r}")
        await asyncio.sleep(interval)


class KubeletStandIn:
    """Plays the node agent: writes pod status and completes graceful deletions."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._ip = 10
        self._task: asyncio.Task[None] | None = None
        self.finish_deletions = True

    async def pods(self, namespace: str = "default", selector: str | None = None) -> list[dict]:
        items, _ = await self.client.list("pods", namespace, label_selector=selector)
        return items

    async def run(self, pod: dict, *, ready: bool = True) -> dict | None:
        """Mark a pod Running (ready or not), with an IP and container statuses. A pod the
        controllers deleted meanwhile is skipped (None), as a kubelet would."""
        for _ in range(10):
            try:
                current = await self.client.get("pods", pod["metadata"]["namespace"],
                                                pod["metadata"]["name"])
            except api_errors.NotFound:
                return None
            status = current.setdefault("status", {})
            if not status.get("podIP"):
                self._ip += 1
                status["podIP"] = f"10.99.0.{self._ip}"
                status["podIPs"] = [{"ip": status["podIP"]}]
            now = timestamps.format_time(time.time())
            old_ready = podutil.condition(current, "Ready")
            keep = old_ready is not None and old_ready.get("status") == ("True" if ready else "False")
            status["phase"] = "Running"
            status["conditions"] = [
                {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                {"type": "Ready", "status": "True" if ready else "False",
                 "lastTransitionTime": old_ready["lastTransitionTime"] if keep else now},
                {"type": "ContainersReady", "status": "True" if ready else "False",
                 "lastTransitionTime": now},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
            ]
            status["containerStatuses"] = [
                {"name": c["name"], "image": c["image"], "imageID": "", "ready": ready,
                 "restartCount": 0, "started": True,
                 "state": {"running": {"startedAt": now}}}
                for c in current["spec"]["containers"]]
            try:
                return await self.client.update_status("pods", current)
            except api_errors.Conflict:
                continue
            except api_errors.NotFound:
                return None
        raise AssertionError("could not write pod status")

    async def run_all(self, namespace: str = "default", selector: str | None = None,
                      ready: bool = True) -> list[dict]:
        ran = [await self.run(p, ready=ready) for p in await self.pods(namespace, selector)
               if not podutil.is_deleting(p)]
        return [p for p in ran if p is not None]

    async def _finisher(self) -> None:
        while True:
            if self.finish_deletions:
                items, _ = await self.client.list("pods")
                for pod in items:
                    if podutil.is_deleting(pod):
                        try:
                            await self.client.delete("pods", pod["metadata"]["namespace"],
                                                     pod["metadata"]["name"],
                                                     grace_period_seconds=0)
                        except api_errors.NotFound:
                            pass
            await asyncio.sleep(0.05)

    def start(self) -> None:
        self._task = asyncio.create_task(self._finisher())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


@pytest.fixture
async def api(tmp_path):
    from shoal.apiserver.local import LocalClient

    async with LocalClient.open(tmp_path / "store.db") as client:
        yield client


@pytest.fixture
async def cluster(api, tmp_path):
    """(client, manager, kubelet) with every controller running."""
    settings = Settings(state_dir=tmp_path, node_name=NODE)
    await ensure_namespaces(api)
    manager = build_manager(api, settings, FAST)
    kubelet = KubeletStandIn(api)
    await manager.start()
    kubelet.start()
    try:
        yield api, manager, kubelet
    finally:
        await kubelet.stop()
        await manager.stop()


def deployment(name: str = "web", replicas: int = 3, image: str = "web:v1", **spec: Any) -> dict:
    body = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image,
                                         "ports": [{"name": "http", "containerPort": 8080}]}]},
            },
        },
    }
    body["spec"].update(spec)
    return body


async def patch(client: Any, resource: str, namespace: str | None, name: str, body: Any,
                patch_type: str = "merge") -> dict:
    """A patch as kubectl sends it; retried on Conflict, which the API server should do
    itself for patches without a resourceVersion (reported to the API owner)."""
    for _ in range(20):
        try:
            return await client.patch(resource, namespace, name, body, patch_type)
        except api_errors.Conflict:
            await asyncio.sleep(0.01)
    raise AssertionError(f"patch of {resource} {namespace}/{name} kept conflicting")
