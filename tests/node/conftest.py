"""Fixtures for node agent end-to-end tests: one shoal node per test module.

Each module gets its own state dir, bridge `shoaln<hex>`, pod CIDR (a /24 in
10.241.0.0/16), service CIDR (a /24 in 10.242.0.0/16), chain prefix `SHOALN<hex>`, netns
prefix `shoal-nn-<hex>-` and cgroup parent `shoal-test-node-<hex>`; a busybox image
bootstrapped into its image store; the agent built by the daemon's own builders
(`shoal.daemon.build_network`, `start_node`) and driven through LocalClient. The finalizer
stops the agent, runs `teardown_node` and the network teardown, and fails if anything
is left: netns, links, mounts under the state dir, cgroups, processes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import subprocess
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

import pytest
import pytest_asyncio

from shoal.config import Settings



@dataclasses.dataclass
class Node:
    settings: Settings
    client: Any
    handle: Any
    network: Any
    runtime: Any
    images: Any
    cgroup_parent: str
    netns_prefix: str

    @property
    def agent(self) -> Any:
        return self.handle.agent

    async def restart_agent(self, **kwargs: Any) -> None:
        from shoal.daemon import start_node

        await self.handle.stop()
        self.handle = await start_node(self.client, self.settings, network=self.network, runtime=self.runtime,
                                       images=self.images, **AGENT_OPTIONS, **kwargs)

    async def create_pod(self, pod: dict) -> dict:
        pod.setdefault("apiVersion", "v1")
        pod.setdefault("kind", "Pod")
        pod["metadata"].setdefault("namespace", "default")
        pod["spec"].setdefault("nodeName", self.settings.node_name)
        return await self.client.create("pods", pod)

    async def pod(self, name: str, namespace: str = "default") -> dict:
        return await self.client.get("pods", namespace, name)

    async def wait_pod(self, name: str, predicate: Callable[[dict], bool], timeout: float = 20,
                       namespace: str = "default") -> dict:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                last = await self.pod(name, namespace)
            except Exception:  # noqa: BLE001 - not created yet / gone
                last = None
            if last is not None and predicate(last):
                return last
            await asyncio.sleep(0.1)
        raise AssertionError(f"pod {name} never satisfied the condition; last status: {(last or {}).get('status')}")

    async def wait_gone(self, name: str, timeout: float = 30, namespace: str = "default") -> None:
        from shoal.api import errors

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                await self.pod(name, namespace)
            except errors.NotFound:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"pod {name} still exists after {timeout}s")

    async def events(self, name: str, namespace: str = "default") -> list[dict]:
        items, _ = await self.client.list("events", namespace)
        return [e for e in items if e["involvedObject"].get("name") == name]


AGENT_OPTIONS = {
    "backoff": None,  # filled below (import cost kept out of collection)
    "resync_seconds": 1.0,
}


def _agent_options() -> dict:
    from shoal.node import BackoffPolicy

    AGENT_OPTIONS["backoff"] = BackoffPolicy(base=0.5, cap=2.0, reset=10.0)
    return AGENT_OPTIONS


def make_settings(state_dir: Path) -> Settings:
    tag = secrets.token_hex(3)
    third = secrets.randbelow(256)
    return Settings(
        state_dir=state_dir,
        pod_cidr=f"10.241.{third}.0/24",
        service_cidr=f"10.242.{third}.0/24",
        bridge=f"shoaln{tag[:4]}",
        chain_prefix=f"SHOALN{tag}",
        dns_port=0,
    )


def leftovers(node_settings: Settings, netns_prefix: str, cgroup_parent: str) -> list[str]:
    found: list[str] = []
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    found += [f"netns {line.split()[0]}" for line in netns.splitlines() if line.startswith(netns_prefix)]
    if Path(f"/sys/class/net/{node_settings.bridge}").exists():
        found.append(f"bridge {node_settings.bridge}")
    mounts = Path("/proc/mounts").read_text()
    found += [f"mount {line.split()[1]}" for line in mounts.splitlines()
              if line.split()[1].startswith(str(node_settings.state_dir))]
    for controller in Path("/sys/fs/cgroup").iterdir():
        if (controller / cgroup_parent).exists():
            # an empty parent left by the runtime is removed here; one with children is a leak
            children = [p for p in (controller / cgroup_parent).iterdir() if p.is_dir()]
            if children:
                found.append(f"cgroup {controller / cgroup_parent}: {[c.name for c in children]}")
            else:
                try:
                    (controller / cgroup_parent).rmdir()
                except OSError:
                    found.append(f"cgroup {controller / cgroup_parent}")
    procs = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    found += [f"process {p}" for p in procs.splitlines() if str(node_settings.state_dir) in p]
    return found


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def node(tmp_path_factory: pytest.TempPathFactory):
    from shoal.apiserver.local import LocalClient
    from shoal.images import ImageStore
    from shoal.daemon import build_network, start_node
    from shoal.node import build_runtime, teardown_node

    settings = make_settings(tmp_path_factory.mktemp("node") / "state")
    settings.state_dir.mkdir(parents=True)
    netns_prefix = f"shoal-nn-{secrets.token_hex(2)}-"
    cgroup_parent = f"shoal-test-node-{secrets.token_hex(3)}"
    images = ImageStore(settings.images_dir)
    await asyncio.to_thread(images.bootstrap_busybox, "busybox")
    network = build_network(settings, netns_prefix=netns_prefix)
    runtime = build_runtime(settings, cgroup_parent)
    async with LocalClient.open(settings.store_path) as client:
        n = Node(settings, client, None, network, runtime, images, cgroup_parent, netns_prefix)
        try:
            await network.setup_host()
            n.handle = await start_node(client, settings, network=network, runtime=runtime, images=images,
                                        **_agent_options())
            yield n
        finally:
            if n.handle is not None:
                await n.handle.stop()
            await teardown_node(settings, network=network, runtime=runtime, images=images)
            await network.teardown()
    left = leftovers(settings, netns_prefix, cgroup_parent)
    assert not left, f"left behind: {left}"


def busybox_pod(name: str, command: list[str], **spec: Any) -> dict:
    container = {"name": spec.pop("container_name", "main"), "image": "busybox", "command": command,
                 "imagePullPolicy": "IfNotPresent"}
    container.update(spec.pop("container", {}))
    return {"metadata": {"name": name}, "spec": {"containers": [container],
                                                 "terminationGracePeriodSeconds": 2, **spec}}


def container_status(pod: dict, name: str = "main") -> dict:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if cs["name"] == name:
            return cs
    return {}


def init_status(pod: dict, name: str) -> dict:
    for cs in (pod.get("status") or {}).get("initContainerStatuses") or []:
        if cs["name"] == name:
            return cs
    return {}


def is_ready(pod: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in (pod.get("status") or {}).get("conditions") or [])


def waiting_reason(pod: dict, name: str = "main") -> str | None:
    return (container_status(pod, name).get("state") or {}).get("waiting", {}).get("reason")


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 15, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what} not reached within {timeout}s")


__all__ = ["Node", "busybox_pod", "container_status", "eventually", "init_status", "is_ready", "waiting_reason"]
