"""shoal.node: the node agent (kubelet role) and the local-path provisioner.

The node is handed everything it runs on; it constructs none of the lower layers'
objects. The composition root (`shoal.daemon.start_node`, used by the daemon, the bench
and the tests) builds the runtime, image store, pod network and event recorder and calls::

    handle = await run_node(client, settings, runtime=..., images=..., network=...,
                            recorder=..., hooks=...)
    ...
    await handle.stop()          # stops watching; containers keep running (re-adopted)
    await teardown_node(settings, runtime=..., images=..., network=...)
                                 # `shoal down`: every container, snapshot, sandbox

The seams are protocols (`seams`: ContainerRuntime, ImageSource, PodNetworkPort,
EventSink; `hooks.PodHooks`). The node imports nothing from the layers above it: the
mesh's implementation of the hooks (`shoal.mesh.sidecar.MeshHooks`) is passed in.

Logs/exec on pods: `shoal.node.access.resolve_container(client, settings, ns, pod,
container=None, previous=False) -> (container_id, log_path)`.

Modules: agent (watches, NodeServices for the workers), nodestatus (the Node object,
its heartbeat and Lease), services (the NodeServices
protocol), worker (per-pod sync, executes), lifecycle (pure lifecycle decisions), status
and views (pure status), observed (runtime -> observations), containers (container
operations and their index), instances (probe loops, exit waiters, handlers), stopping
(preStop, grace, stop order, removing a pod), envvars
(pure env), intent (pure runtime intent), volumes (atomic writer, emptyDir, hostPath,
PVC, downwardAPI, projected), probes (incl. probing inside a pod netns), backoff
(CrashLoopBackOff), pulling (imagePullPolicy), provisioner (local-path PVCs), hooks
(PodHooks, ContainerPlan, NoHooks), seams (protocols of the lower layers), podfiles
(resolv.conf, hostname), messages (runtime errors, termination messages), paths (disk
layout and container ids), access (CLI resolver), errors.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import shutil

from shoal.api.client import ApiClient
from shoal.config import Settings
from shoal.node import volumes
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
from shoal.node.hooks import ContainerPlan, NoHooks, PodHooks
from shoal.node.nodestatus import NodeStatusReporter
from shoal.node.provisioner import LocalPathProvisioner
from shoal.node.seams import ContainerRuntime, EventSink, ImageSource, PodNetworkPort
from shoal.runtime import Runtime

log = logging.getLogger(__name__)

__all__ = [
    "BackoffPolicy",
    "ContainerPlan",
    "DEFAULT_CGROUP_PARENT",
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
    "NodeStatusReporter",
    "VolumeError",
    "build_runtime",
    "run_node",
    "teardown_node",
]

DEFAULT_CGROUP_PARENT = "shoal"


@dataclasses.dataclass
class NodeHandle:
    agent: NodeAgent
    provisioner: LocalPathProvisioner
    status: NodeStatusReporter | None = None
    """The Node object's registration, heartbeat and Lease."""

    async def stop(self) -> None:
        """Stop the heartbeat, agent and provisioner; leave every container running."""
        if self.status is not None:
            await self.status.stop()
        await self.provisioner.stop()
        await self.agent.stop()


def build_runtime(settings: Settings, cgroup_parent: str = DEFAULT_CGROUP_PARENT) -> Runtime:
    """The runtime over this state dir's containers, in the node's cgroup parent."""
    return Runtime(settings.containers_dir, cgroup_parent=cgroup_parent)


async def run_node(
    client: ApiClient,
    settings: Settings,
    *,
    runtime: ContainerRuntime,
    images: ImageSource,
    network: PodNetworkPort,
    recorder: EventSink | None,
    hooks: PodHooks | None = None,
    backoff: BackoffPolicy = BackoffPolicy(),
    resync_seconds: float = 10.0,
    probe_time_scale: float = 1.0,
    node_heartbeat_seconds: float = 10.0,
) -> NodeHandle:
    """Start the node agent, the local-path provisioner and the Node's heartbeat
    (`nodestatus`) for `settings.node_name` (the network's host setup is the caller's,
    done once per process)."""
    settings.pods_dir.mkdir(parents=True, exist_ok=True)
    settings.volumes_dir.mkdir(parents=True, exist_ok=True)
    agent = NodeAgent(client, settings, runtime=runtime, images=images, network=network, recorder=recorder,
                      backoff=backoff, resync_seconds=resync_seconds, probe_time_scale=probe_time_scale,
                      hooks=hooks)
    # The Node first, so the scheduler can place pods on it as the agent starts.
    status = NodeStatusReporter(client, settings.node_name, settings.state_dir,
                                internal_ip=network.gateway or "127.0.0.1",
                                pod_cidr=settings.pod_cidr,
                                runtime_binary=getattr(runtime, "runtime_binary", "runc"),
                                recorder=recorder, heartbeat=node_heartbeat_seconds)
    await status.start()
    provisioner = LocalPathProvisioner(client, settings)
    await provisioner.start()
    await agent.start()
    return NodeHandle(agent, provisioner, status)


async def teardown_node(settings: Settings, *, runtime: ContainerRuntime, images: ImageSource | None,
                        network: PodNetworkPort) -> None:
    """Remove every container, snapshot and pod sandbox of this state dir, and unmount the
    pods' memory volumes (used by `shoal down`; the bridge is the network's teardown).
    images: None when the state dir has no image store."""
    try:
        await runtime.cleanup_all()
    except Exception:  # noqa: BLE001 - keep removing the rest
        log.exception("runtime cleanup failed")
    if images is not None:
        await asyncio.to_thread(images.snapshots.cleanup_all)
    for sb in await network.list_sandboxes():
        await network.delete_sandbox(sb.pod_key)
    if settings.pods_dir.is_dir():
        for entry in settings.pods_dir.iterdir():
            await asyncio.to_thread(volumes.teardown_pod_volumes, entry)
        await asyncio.to_thread(shutil.rmtree, settings.pods_dir, True)
