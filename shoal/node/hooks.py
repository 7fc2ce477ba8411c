"""PodHooks: the seam through which higher layers (the mesh) shape a pod on this node.

The node agent asks its hooks, for each pod:

- `sandbox_iptables(pod) -> str`: iptables-restore input applied inside the pod's netns
  when its sandbox is created, before any container starts (the mesh's traffic capture,
  so no privileged init container is needed). "" for none.
- `holds_start(pod, container) -> bool`: the container must be ready before the
  containers after it in `spec.containers` are started (Istio's
  holdApplicationUntilProxyStarts for the injected `istio-proxy`; native sidecars in
  initContainers get this behaviour from Kubernetes' rules without a hook).
- `probe_in_netns(pod) -> bool`: run httpGet/tcpSocket probes from inside the pod netns
  against 127.0.0.1 instead of from the host against the pod IP.
- `plan_container(pod, container, sandbox, pod_root) -> ContainerPlan | None`: run this
  container from a prepared root (not an image), e.g. the mesh's Envoy sidecar.
- `release_pod(pod, pod_root)`: the pod is gone; free what the plans made.

The node knows only this protocol and `NoHooks` (does nothing). The mesh's
implementation is `shoal.mesh.sidecar.MeshHooks`; the daemon (the composition root)
passes it in. A hook raising `ValueError`/`ShoalError` fails the pod's sandbox with the
message shown in the pod status and a FailedCreatePodSandBox event.

Concurrency: hooks are called from the pod workers' tasks on the daemon's event loop;
`plan_container` and `release_pod` may await (files, socket binds) and must not block.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping, Protocol

from shoal.node.intent import MountSpec

Obj = Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class ContainerPlan:
    """How to run a container without an image: its root, command and extra mounts."""

    rootfs: Path
    command: list[str]
    mounts: list[MountSpec]
    image_config: dict
    image_id: str = ""


class PodHooks(Protocol):
    """How higher layers shape the pods of this node (see the module docstring)."""

    def sandbox_iptables(self, pod: Obj) -> str: ...

    def holds_start(self, pod: Obj, container: Obj) -> bool: ...

    def probe_in_netns(self, pod: Obj) -> bool: ...

    async def plan_container(self, pod: Obj, container: Obj, sandbox: Any, pod_root: Path) -> ContainerPlan | None: ...

    async def release_pod(self, pod: Obj, pod_root: Path) -> None: ...


class NoHooks:
    """Pods run exactly as their spec says."""

    def sandbox_iptables(self, pod: Obj) -> str:
        return ""

    def holds_start(self, pod: Obj, container: Obj) -> bool:
        return False

    def probe_in_netns(self, pod: Obj) -> bool:
        return False

    async def plan_container(self, pod: Obj, container: Obj, sandbox: Any, pod_root: Path) -> ContainerPlan | None:
        return None

    async def release_pod(self, pod: Obj, pod_root: Path) -> None:
        return None
