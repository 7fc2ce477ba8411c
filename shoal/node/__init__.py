"""shoal.node: the node agent (kubelet role) and the local-path provisioner.

The daemon calls::

    handle = await run_node(client, settings)   # runtime, images, pod network, events
    ...
    await handle.stop()          # stops watching; containers keep running (re-adopted)
    await teardown_node(settings)   # `shoal down`: every container, snapshot, sandbox

`run_node` builds `shoal.runtime.Runtime`, `shoal.images.ImageStore`,
`shoal.network.PodNetwork` (and runs its idempotent `setup_host`) and an `EventRecorder`
("kubelet"), starts the `NodeAgent` and the `LocalPathProvisioner`. Pass `network=` to
share the daemon's PodNetwork instance (recommended: one per process), and
`hooks=MeshHooks(xds_server=<shoal.mesh.server.XdsServer>, socket_dir=settings.run_dir /
"xds", cluster_domain=settings.cluster_domain)` so injected pods get capture rules and a
working Envoy sidecar (the default MeshHooks has no xDS server: sidecars never turn ready).

Logs/exec on pods: `shoal.node.access.resolve_container(client, settings, ns, pod,
container=None, previous=False) -> (container_id, log_path)`.

Modules: agent (watches, shared services), worker (per-pod sync), status (pure status),
envvars (pure env), intent (pure runtime intent), volumes (atomic writer, emptyDir,
hostPath, PVC, downwardAPI, projected), probes (incl. probing inside a pod netns),
backoff (CrashLoopBackOff), pulling (imagePullPolicy), provisioner (local-path PVCs),
hooks (PodHooks; MeshHooks: capture rules, ordered start, the Envoy sidecar), podfiles
(resolv.conf, hostname), messages (runtime errors, termination messages), paths (disk
layout and container ids), access (CLI resolver), errors.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import shutil
from typing import Any

from shoal.config import Settings
from shoal.node.agent import NodeAgent
from shoal.node.backoff import BackoffPolicy
from shoal.node.errors import (
    ContainerConfigError,
    ContainerCreateError,
    ContainerNotFound,
    ImagePullError,
    NodeError,
    VolumeError,
)
from shoal.node.hooks import ContainerPlan, MeshHooks, NoHooks, PodHooks
from shoal.node.provisioner import LocalPathProvisioner

log = logging.getLogger(__name__)

__all__ = [
    "BackoffPolicy",
    "ContainerPlan",
    "MeshHooks",
    "NoHooks",
    "PodHooks",
    "ContainerConfigError",
    "ContainerCreateError",
    "ContainerNotFound",
    "ImagePullError",
    "LocalPathProvisioner",
    "NodeAgent",
    "NodeError",
    "NodeHandle",
    "VolumeError",
    "run_node",
    "teardown_node",
]

DEFAULT_CGROUP_PARENT = "shoal"


@dataclasses.dataclass
class NodeHandle:
    agent: NodeAgent
    provisioner: LocalPathProvisioner

    async def stop(self) -> None:
        """Stop the agent and provisioner; leave every container running."""
        await self.provisioner.stop()
        await self.agent.stop()


def build_runtime(settings: Settings, cgroup_parent: str = DEFAULT_CGROUP_PARENT) -> Any:
    from shoal.runtime import Runtime

    return Runtime(settings.containers_dir, cgroup_parent=cgroup_parent)


def build_network(settings: Settings, netns_prefix: str | None = None) -> Any:
    from shoal.network import PodNetwork
    from shoal.store.allocations import Allocations

    return PodNetwork(settings, Allocations(settings.store_path),
                      netns_prefix=netns_prefix or settings.netns_prefix)


async def run_node(
    client: Any,
    settings: Settings,
    *,
    network: Any = None,
    runtime: Any = None,
    images: Any = None,
    cgroup_parent: str = DEFAULT_CGROUP_PARENT,
    backoff: BackoffPolicy = BackoffPolicy(),
    resync_seconds: float = 10.0,
    probe_time_scale: float = 1.0,
    **agent_options: Any,
) -> NodeHandle:
    """Start the node agent and the local-path provisioner for `settings.node_name`."""
    from shoal.controllers.events import EventRecorder
    from shoal.images import ImageStore

    if network is None:
        network = build_network(settings)
        await network.setup_host()
    runtime = runtime or build_runtime(settings, cgroup_parent)
    images = images or ImageStore(settings.images_dir)
    settings.pods_dir.mkdir(parents=True, exist_ok=True)
    settings.volumes_dir.mkdir(parents=True, exist_ok=True)
    recorder = EventRecorder(client, "kubelet", host=settings.node_name)
    if "hooks" not in agent_options:
        agent_options["hooks"] = MeshHooks(socket_dir=settings.socket_dir / "xds", cluster_domain=settings.cluster_domain)
    agent = NodeAgent(client, settings, runtime=runtime, images=images, network=network, recorder=recorder,
                      backoff=backoff, resync_seconds=resync_seconds, probe_time_scale=probe_time_scale,
                      **agent_options)
    provisioner = LocalPathProvisioner(client, settings)
    await provisioner.start()
    await agent.start()
    return NodeHandle(agent, provisioner)


async def teardown_node(settings: Settings, *, network: Any = None, runtime: Any = None,
                        cgroup_parent: str = DEFAULT_CGROUP_PARENT) -> None:
    """Remove every container, snapshot and pod sandbox of this state dir, and unmount the
    pods' memory volumes (used by `shoal down`; the bridge is the network's teardown)."""
    from shoal.images import ImageStore
    from shoal.node import volumes

    runtime = runtime or build_runtime(settings, cgroup_parent)
    try:
        await runtime.cleanup_all()
    except Exception:  # noqa: BLE001 - keep removing the rest
        log.exception("runtime cleanup failed")
    if settings.images_dir.exists():
        await asyncio.to_thread(ImageStore(settings.images_dir).snapshots.cleanup_all)
    if network is None:
        network = build_network(settings)
    for sb in await network.list_sandboxes():
        await network.delete_sandbox(sb.pod_key)
    if settings.pods_dir.is_dir():
        for entry in settings.pods_dir.iterdir():
            await asyncio.to_thread(volumes.teardown_pod_volumes, entry)
        await asyncio.to_thread(shutil.rmtree, settings.pods_dir, True)
