"""Services and Endpoints: defaults (`SetDefaults_Service`, `SetDefaults_EndpointPort`),
validation (`ValidateService`, `ValidateEndpoints`), ClusterIP immutability on update.

The NodePort range and ClusterIP pools are the API server's (it owns the ranges); here a
nodePort is only checked to be a port number. `ServiceStrategy` asks the server's
allocator (the `ServerServices` protocol) for addresses before a write; everything else
is pure; see the package docstring.
"""

from __future__ import annotations

import json
from typing import Any

from shoal.api import errors, names
from shoal.api.builtin import fields as f
from shoal.api.builtin.fields import Errs, as_dict, as_list, set_default
from shoal.api.builtin.pods import PROTOCOLS
from shoal.api.strategy import ServerServices, Strategy

SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")
AFFINITIES = ("None", "ClientIP")
TRAFFIC_POLICIES = ("Cluster", "Local")
DEFAULT_AFFINITY_TIMEOUT = 10800
MAX_AFFINITY_TIMEOUT = 86400


def default_service(obj: dict[str, Any]) -> None:
    spec = f.child_dict(obj, "spec")
    if spec is None:
        return
    set_default(spec, "type", "ClusterIP")
    set_default(spec, "sessionAffinity", "None")
    kind = spec["type"]
    for port in as_list(spec.get("ports")):
        if not isinstance(port, dict):
            continue
        set_default(port, "protocol", "TCP")
        if port.get("targetPort") in (None, 0, "") and port.get("port") is not None:
            port["targetPort"] = port["port"]
    if spec["sessionAffinity"] == "ClientIP":
        config = f.child_dict(spec, "sessionAffinityConfig")
        client_ip = f.child_dict(config, "clientIP") if config is not None else None
        if client_ip is not None:
            set_default(client_ip, "timeoutSeconds", DEFAULT_AFFINITY_TIMEOUT)
    if kind in ("NodePort", "LoadBalancer"):
        set_default(spec, "externalTrafficPolicy", "Cluster")
    if kind != "ExternalName":
        set_default(spec, "internalTrafficPolicy", "Cluster")
    if kind == "LoadBalancer":
        set_default(spec, "allocateLoadBalancerNodePorts", True)


def validate_service(obj: dict[str, Any], old: dict[str, Any] | None) -> Errs:
    spec = as_dict(obj.get("spec"))
    errs: Errs = []
    kind = spec.get("type")
    errs += f.one_of("spec.type", kind, SERVICE_TYPES)
    kind = kind or "ClusterIP"
    cluster_ip = spec.get("clusterIP")
    ports = as_list(spec.get("ports"))

    if kind == "ExternalName":
        external = spec.get("externalName")
        errs += f.required_str("spec.externalName", external)
        errs += f.check_format("spec.externalName", external or None, names.check_dns1123_subdomain)
        if cluster_ip:
            errs.append(errors.forbidden("spec.clusterIP", "may not be set for ExternalName services"))
    elif not ports and cluster_ip != "None":
        errs.append(errors.required("spec.ports"))

    if cluster_ip not in (None, "", "None"):
        errs += f.check_format("spec.clusterIP", cluster_ip, names.check_ip)
    if cluster_ip == "None" and kind in ("NodePort", "LoadBalancer"):
        errs.append(errors.invalid("spec.clusterIP", cluster_ip,
                                   f"may not be set to 'None' for {kind} services"))
    cluster_ips = as_list(spec.get("clusterIPs"))
    if cluster_ips and cluster_ip and cluster_ips[0] != cluster_ip:
        errs.append(errors.invalid("spec.clusterIPs[0]", cluster_ips[0],
                                   "must match `clusterIP` when both are specified"))

    seen_names: set[str] = set()
    seen_ports: set[tuple[Any, Any]] = set()
    seen_node_ports: set[tuple[Any, Any]] = set()
    for i, port in enumerate(ports):
        port = as_dict(port)
        ppath = f"spec.ports[{i}]"
        name = port.get("name")
        if len(ports) > 1 and not name:
            errs.append(errors.required(f"{ppath}.name"))
        if isinstance(name, str) and name:
            errs += f.check_format(f"{ppath}.name", name, names.check_dns1123_label)
            if name in seen_names:
                errs.append(errors.duplicate(f"{ppath}.name", name))
            seen_names.add(name)
        errs += f.port_number(f"{ppath}.port", port.get("port"))
        protocol = port.get("protocol")
        errs += f.one_of(f"{ppath}.protocol", protocol, PROTOCOLS)
        if port.get("targetPort") is not None:
            errs += f.port_or_name(f"{ppath}.targetPort", port.get("targetPort"))
        key = (port.get("port"), protocol or "TCP")
        if key in seen_ports:
            errs.append(errors.duplicate(ppath, json.dumps({"port": key[0], "protocol": key[1]})))
        seen_ports.add(key)
        node_port = port.get("nodePort")
        if node_port:
            if kind in ("ClusterIP", "ExternalName"):
                errs.append(errors.forbidden(f"{ppath}.nodePort",
                                             f"may not be used when `type` is '{kind}'"))
            else:
                errs += f.port_number(f"{ppath}.nodePort", node_port)
                nkey = (node_port, protocol or "TCP")
                if nkey in seen_node_ports:
                    errs.append(errors.duplicate(f"{ppath}.nodePort", node_port))
                seen_node_ports.add(nkey)

    errs += f.labels("spec.selector", spec.get("selector"))
    affinity = spec.get("sessionAffinity")
    errs += f.one_of("spec.sessionAffinity", affinity, AFFINITIES)
    config = spec.get("sessionAffinityConfig")
    if affinity == "ClientIP":
        timeout = as_dict(as_dict(config).get("clientIP")).get("timeoutSeconds")
        if f.is_int(timeout) and not 0 < timeout <= MAX_AFFINITY_TIMEOUT:
            errs.append(errors.invalid(
                "spec.sessionAffinityConfig.clientIP.timeoutSeconds", timeout,
                f"must be greater than 0 and less than {MAX_AFFINITY_TIMEOUT}"))
    elif config:
        errs.append(errors.invalid("spec.sessionAffinityConfig", f._short(config),
                                   f"must not be set when session affinity is {affinity or 'None'}"))
    errs += f.one_of("spec.externalTrafficPolicy", spec.get("externalTrafficPolicy"), TRAFFIC_POLICIES)
    errs += f.one_of("spec.internalTrafficPolicy", spec.get("internalTrafficPolicy"), TRAFFIC_POLICIES)
    for i, ip in enumerate(as_list(spec.get("externalIPs"))):
        errs += f.check_format(f"spec.externalIPs[{i}]", ip, names.check_ip)

    if old is not None:
        old_spec = as_dict(old.get("spec"))
        old_ip = old_spec.get("clusterIP")
        changing_type = "ExternalName" in (kind, old_spec.get("type"))
        if old_ip and cluster_ip and old_ip != cluster_ip and not changing_type:
            errs.append(errors.invalid("spec.clusterIP", cluster_ip, "field is immutable"))
    return errs


def preserve_allocated(new: dict[str, Any], old: dict[str, Any]) -> None:
    """On update, keep what the server allocated when the new object leaves it out
    (Kubernetes does the same): clusterIP(s) and each port's nodePort (matched by port
    and protocol), unless the type no longer uses them."""
    spec, old_spec = f.child_dict(new, "spec"), as_dict(old.get("spec"))
    if spec is None:
        return
    kind = spec.get("type") or "ClusterIP"
    if kind != "ExternalName" and old_spec.get("type") != "ExternalName":
        for key in ("clusterIP", "clusterIPs"):
            if not spec.get(key) and old_spec.get(key):
                spec[key] = f.clone(old_spec[key])
    if kind in ("NodePort", "LoadBalancer"):
        old_ports = {(as_dict(p).get("port"), as_dict(p).get("protocol") or "TCP"): as_dict(p)
                     for p in as_list(old_spec.get("ports"))}
        for port in as_list(spec.get("ports")):
            if isinstance(port, dict) and not port.get("nodePort"):
                prev = old_ports.get((port.get("port"), port.get("protocol") or "TCP"))
                if prev and prev.get("nodePort"):
                    port["nodePort"] = prev["nodePort"]


class ServiceStrategy(Strategy):
    """A new Service has an empty load-balancer status; on update it keeps the addresses
    the server allocated (`preserve_allocated`). Before a write it takes a ClusterIP
    (unless headless or ExternalName) and NodePorts (NodePort/LoadBalancer) from the
    server's allocator, keyed by namespace/name; they are released when the write fails
    or the Service is deleted."""

    def prepare_for_create(self, obj: dict[str, Any], subresources: tuple[str, ...]) -> None:
        obj["status"] = {"loadBalancer": {}}

    def prepare_for_update(self, new: dict[str, Any], old: dict[str, Any]) -> None:
        preserve_allocated(new, old)

    def allocate(self, obj: dict[str, Any], old: dict[str, Any] | None,
                 server: ServerServices) -> dict[str, Any]:
        taken: dict[str, Any] = {}
        allocator = server.services
        if allocator is None:
            return taken
        spec = obj.setdefault("spec", {})
        key = _allocation_key(obj)
        try:
            if spec.get("type") != "ExternalName" and spec.get("clusterIP") != "None":
                if not as_dict(as_dict(old).get("spec")).get("clusterIP"):
                    ip = allocator.allocate_cluster_ip(key, spec.get("clusterIP") or None)
                    spec["clusterIP"] = ip
                    spec["clusterIPs"] = [ip]
                    taken["clusterIP"] = ip
            if spec.get("type") in ("NodePort", "LoadBalancer"):
                old_ports = {(as_dict(p).get("port"), as_dict(p).get("protocol", "TCP")):
                             as_dict(p).get("nodePort")
                             for p in as_list(as_dict(as_dict(old).get("spec")).get("ports"))}
                for i, port in enumerate(as_list(spec.get("ports"))):
                    previous = old_ports.get((port.get("port"), port.get("protocol", "TCP")))
                    wanted = port.get("nodePort") or previous
                    if wanted and wanted == previous:
                        port["nodePort"] = wanted
                        continue
                    try:
                        port["nodePort"] = allocator.allocate_node_port(key, wanted)
                    except errors.StatusError:
                        raise
                    except Exception as exc:  # allocator errors name the problem
                        raise errors.Invalid(
                            "Service", obj["metadata"]["name"],
                            [errors.invalid(f"spec.ports[{i}].nodePort", wanted, str(exc))],
                        ) from None
                    taken.setdefault("nodePorts", []).append(port["nodePort"])
        except errors.StatusError:
            self.release(obj, taken, server)
            raise
        except Exception as exc:
            self.release(obj, taken, server)
            raise errors.Invalid(
                "Service", obj["metadata"]["name"],
                [errors.invalid("spec.clusterIP", spec.get("clusterIP"), str(exc))],
            ) from None
        return taken

    def release(self, obj: dict[str, Any], taken: Any, server: ServerServices) -> None:
        allocator = server.services
        if allocator is None:
            return
        key = _allocation_key(obj)
        if taken is None or "clusterIP" in taken:
            allocator.release_cluster_ip(key)
        if taken is None or taken.get("nodePorts"):
            allocator.release_node_ports(key)


def _allocation_key(obj: dict[str, Any]) -> str:
    return f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"


# -- Endpoints --------------------------------------------------------------------------------

def default_endpoints(obj: dict[str, Any]) -> None:
    for subset in as_list(obj.get("subsets")):
        for port in as_list(as_dict(subset).get("ports")):
            if isinstance(port, dict):
                set_default(port, "protocol", "TCP")


def validate_endpoints(obj: dict[str, Any], old: dict[str, Any] | None) -> Errs:
    errs: Errs = []
    for i, subset in enumerate(as_list(obj.get("subsets"))):
        subset = as_dict(subset)
        spath = f"subsets[{i}]"
        for key in ("addresses", "notReadyAddresses"):
            for j, addr in enumerate(as_list(subset.get(key))):
                addr = as_dict(addr)
                apath = f"{spath}.{key}[{j}]"
                ip = addr.get("ip")
                errs += f.required_str(f"{apath}.ip", ip)
                errs += f.check_format(f"{apath}.ip", ip or None, names.check_endpoint_ip)
                errs += f.check_format(f"{apath}.hostname", addr.get("hostname") or None,
                                       names.check_dns1123_label)
                errs += f.check_format(f"{apath}.nodeName", addr.get("nodeName") or None,
                                       names.check_dns1123_subdomain)
        ports = as_list(subset.get("ports"))
        seen: set[str] = set()
        for j, port in enumerate(ports):
            port = as_dict(port)
            ppath = f"{spath}.ports[{j}]"
            name = port.get("name")
            if len(ports) > 1 and not name:
                errs.append(errors.required(f"{ppath}.name"))
            if isinstance(name, str) and name:
                errs += f.check_format(f"{ppath}.name", name, names.check_dns1123_label)
                if name in seen:
                    errs.append(errors.duplicate(f"{ppath}.name", name))
                seen.add(name)
            errs += f.port_number(f"{ppath}.port", port.get("port"))
            errs += f.one_of(f"{ppath}.protocol", port.get("protocol"), PROTOCOLS)
    return errs
