"""Kubernetes Service + Endpoints objects -> `ServiceView` (pure).

The daemon watches core/v1 Services and Endpoints (plain dicts in Kubernetes shape) and
turns each pair into the view the proxy and DNS consume:

    views = [service_view(svc, endpoints_by_key.get(key)) for key, svc in services.items()]
    directory.replace_all(views)
    await proxy.sync(views)

Endpoints already carry resolved numbers: the endpoints controller resolves a named
`targetPort` against each pod's container ports, so `subsets[].ports[].port` is the
number to DNAT to, keyed by the service port's name. `notReadyAddresses` become
`ready=False` endpoints. A NodePort is kept only for type NodePort or LoadBalancer.
A Service with `clusterIP: None` is headless; one without a clusterIP yet (not
allocated) is skipped by the proxy, like headless, until it has one. An ExternalName
Service carries its `externalName` (trailing dot dropped) and no address or endpoints.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shoal.network.model import EndpointView, ServicePort, ServiceView

_NODE_PORT_TYPES = ("NodePort", "LoadBalancer")


def service_view(service: Mapping[str, Any], endpoints: Mapping[str, Any] | None = None) -> ServiceView:
    meta = service.get("metadata", {})
    spec = service.get("spec", {})
    cluster_ip = spec.get("clusterIP") or None
    if cluster_ip == "None":
        cluster_ip = None
    external_name = None
    if spec.get("type") == "ExternalName":
        cluster_ip, external_name = None, (spec.get("externalName") or "").rstrip(".") or None
    with_node_ports = spec.get("type", "ClusterIP") in _NODE_PORT_TYPES
    ports = tuple(
        ServicePort(
            port=int(p["port"]),
            protocol=p.get("protocol", "TCP"),
            name=p.get("name", "") or "",
            node_port=int(p["nodePort"]) if with_node_ports and p.get("nodePort") else None,
        )
        for p in spec.get("ports", ()) or ()
    )
    found: list[EndpointView] = []
    for subset in (endpoints or {}).get("subsets", ()) or ():
        target_ports = {p.get("name", "") or "": int(p["port"]) for p in subset.get("ports", ()) or ()}
        for key, ready in (("addresses", True), ("notReadyAddresses", False)):
            for address in subset.get(key, ()) or ():
                ref = address.get("targetRef") or {}
                found.append(EndpointView(
                    ip=address["ip"],
                    target_ports=dict(target_ports),
                    ready=ready,
                    hostname=address.get("hostname", "") or "",
                    pod_name=ref.get("name", "") if ref.get("kind", "Pod") == "Pod" else "",
                ))
    return ServiceView(
        namespace=meta.get("namespace", "default"),
        name=meta["name"],
        cluster_ip=cluster_ip,
        ports=ports,
        endpoints=tuple(found) if external_name is None else (),
        external_name=external_name,
    )
