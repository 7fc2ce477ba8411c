"""shoal.mesh: the service mesh control plane and sidecar data-plane pieces.

    source      ClusterSource protocol (the only way the mesh reads cluster state)
    translate/  pure: cluster state + proxy identity -> Envoy resources
    snapshot    per-proxy versioned snapshots, consistency check, cache
    control     change loop: debounce, per-proxy snapshots, SVID issue and rotation
    server      ADS (+SDS) gRPC server on Unix sockets, per-proxy status
    ca          SPIFFE CA (ECDSA P-256)
    bootstrap   sidecar Envoy bootstrap and command line (pure)
    capture     iptables capture rules for a pod netns (pure render + apply)
    sidecar     MeshHooks: the node's PodHooks for meshed pods (capture, ordered start,
                the Envoy sidecar run from a prepared root)
    inject      sidecar injection admission (pure)
    proxyconfig config_dump -> tables (`shoal mesh proxy-config`)
    report      `shoal mesh status` rows and `shoal mesh check` findings (pure)
    kinds       API seams: PeerAuthentication kinds, sidecar-injection admission step

Wiring (daemon): `ca = MeshCA.load_or_create(settings.pki_dir / "mesh")`,
`control = MeshControl(source, ca, MeshConfig.from_settings(settings))`,
`await control.start()`, `server = XdsServer(control)`,
`await server.start(settings.run_dir / "xds.sock")`; `server.status()` for
`shoal mesh status`; `MeshHooks(xds_server=server, socket_dir=...)` is handed to the
node agent (shoal.node imports nothing from the mesh). Node agent, per meshed pod: `capture.apply_capture(netns,
capture.render_capture_rules(capture.capture_options_from_pod(pod)))` when the sandbox
is created; then the sidecar runs `bootstrap.envoy_command(path)` as UID 1337 with
`bootstrap.build_bootstrap(proxy_identity(pod), socket)` written to `path`; app
containers start once GET :15021/healthz/ready answers 200; for Jobs, POST
127.0.0.1:15000/quitquitquit in the pod netns when the app containers have exited.
API server: `kinds.register_kinds()` at start-up (PeerAuthentication, validated with
field paths) and `kinds.injection_step()` appended to the admission chain's mutating
steps.
"""

from shoal.mesh.ca import MeshCA, Svid
from shoal.mesh.control import MeshControl
from shoal.mesh.errors import (
    CaError, CaptureError, InjectionError, MeshError, SnapshotError, TranslateError,
)
from shoal.mesh.meshconfig import ALLOW_ANY, REGISTRY_ONLY, MeshConfig
from shoal.mesh.server import ProxyStatus, XdsServer
from shoal.mesh.source import ClusterChange, ClusterSource, ClusterState, InMemorySource

__all__ = [
    "ALLOW_ANY", "REGISTRY_ONLY", "CaError", "CaptureError", "ClusterChange",
    "ClusterSource", "ClusterState", "InMemorySource", "InjectionError", "MeshCA",
    "MeshConfig", "MeshControl", "MeshError", "ProxyStatus", "SnapshotError", "Svid",
    "TranslateError", "XdsServer",
]
