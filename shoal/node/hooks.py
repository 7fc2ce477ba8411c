"""PodHooks: the seam through which other layers (the mesh) shape a pod on this node.

The node agent asks its hooks, for each pod:

- `sandbox_iptables(pod) -> str`: iptables-restore input applied inside the pod's netns
  when its sandbox is created, before any container starts (the mesh's traffic capture,
  so no privileged init container is needed). "" for none.
- `holds_start(pod, container) -> bool`: the container must be ready before the
  containers after it in `spec.containers` are started (Istio's
  holdApplicationUntilProxyStarts for the injected `istio-proxy`; native sidecars in
  initContainers get this behaviour from Kubernetes' rules without a hook).

`NoHooks` does nothing. `MeshHooks` applies the mesh's rules to pods the mesh injected
(annotation `sidecar.istio.io/status`), computed by `shoal.mesh.capture` (pure).
A hook raising `ValueError`/`ShoalError` fails the pod's sandbox with the message shown in
the pod status and a FailedCreatePodSandBox event.
"""

from __future__ import annotations

from typing import Any, Mapping, Protocol

Obj = Mapping[str, Any]


class PodHooks(Protocol):
    def sandbox_iptables(self, pod: Obj) -> str: ...

    def holds_start(self, pod: Obj, container: Obj) -> bool: ...


class NoHooks:
    def sandbox_iptables(self, pod: Obj) -> str:
        return ""

    def holds_start(self, pod: Obj, container: Obj) -> bool:
        return False


class MeshHooks:
    """Capture rules and ordered start for pods with the mesh's injected sidecar."""

    def __init__(self, proxy_uid: int = 1337) -> None:
        self.proxy_uid = proxy_uid

    @staticmethod
    def meshed(pod: Obj) -> bool:
        from shoal.mesh.translate.model import STATUS_ANNOTATION

        return STATUS_ANNOTATION in ((pod.get("metadata") or {}).get("annotations") or {})

    def sandbox_iptables(self, pod: Obj) -> str:
        if not self.meshed(pod):
            return ""
        from shoal.mesh import capture

        return capture.render_capture_rules(capture.capture_options_from_pod(dict(pod), self.proxy_uid))

    def holds_start(self, pod: Obj, container: Obj) -> bool:
        from shoal.mesh.translate.model import SIDECAR_CONTAINER

        return self.meshed(pod) and container.get("name") == SIDECAR_CONTAINER
