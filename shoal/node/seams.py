"""The node's seams to the layers below it and beside it, as `Protocol`s.

The node agent is handed its runtime, image store, pod network and event recorder by the
composition root (`shoal.daemon`); it knows them only through these protocols, so a test
may pass fakes and nothing in `shoal.node` constructs them:

- `ContainerRuntime`: `shoal.runtime.Runtime` (create/start/stop/delete, status, exec, wait).
- `ImageSource`: `shoal.images.ImageStore` (resolve/pull for the puller, `snapshots` for
  container roots).
- `PodNetworkPort`: `shoal.network.PodNetwork` (pod sandboxes, /etc/hosts, resolv.conf).
- `EventSink`: `shoal.controllers.events.EventRecorder` (Events about a pod).

Concurrency: every method is called from the daemon's event loop; the implementations
run their blocking work in threads.
"""

from __future__ import annotations

from typing import Any, Mapping, Protocol, Sequence

from shoal.runtime import ContainerIntent, ContainerStatus, Snapshots


class Sandbox(Protocol):
    """A pod's network sandbox (`shoal.network.Sandbox`, `podfiles.HostSandbox`)."""

    @property
    def ip(self) -> str: ...

    @property
    def netns_path(self) -> str: ...


class ContainerRuntime(Protocol):
    async def create(self, intent: ContainerIntent, image_config: Mapping[str, Any] | None = None) -> str: ...

    async def start(self, cid: str) -> None: ...

    async def status(self, cid: str) -> ContainerStatus: ...

    async def list(self) -> list[ContainerStatus]: ...

    async def stop(self, cid: str, grace_seconds: float = 10.0) -> ContainerStatus: ...

    async def delete(self, cid: str, force: bool = False) -> None: ...

    async def wait(self, cid: str, timeout: float | None = None) -> ContainerStatus: ...

    async def exec(self, cid: str, args: Sequence[str], *,
                   timeout: float | None = None) -> tuple[int, bytes, bytes]: ...

    async def cleanup_all(self) -> None: ...


class SnapshotStore(Snapshots, Protocol):
    def cleanup_all(self) -> None: ...


class ImageSource(Protocol):
    """What the node reads of the image store: resolving and pulling (`ImagePuller`) and
    per-container snapshots."""

    @property
    def snapshots(self) -> SnapshotStore: ...

    def resolve(self, reference: Any) -> Any: ...


class PodNetworkPort(Protocol):
    @property
    def gateway(self) -> str: ...

    async def create_sandbox(self, pod_key: str, *, hostname: str, **options: Any) -> Sandbox: ...

    async def get_sandbox(self, pod_key: str) -> Sandbox | None: ...

    async def delete_sandbox(self, pod_key: str) -> None: ...

    async def list_sandboxes(self) -> Sequence[Any]: ...

    def resolv_conf(self, namespace: str) -> str: ...

    def hosts_file(self, pod_name: str, ip: str) -> str: ...


class EventSink(Protocol):
    async def event(self, obj: Mapping[str, Any], type_: str, reason: str, message: str, *,
                    field_path: str | None = None) -> Any: ...


__all__ = ["ContainerRuntime", "EventSink", "ImageSource", "PodNetworkPort", "Sandbox", "SnapshotStore"]
