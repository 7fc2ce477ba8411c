"""The Endpoints controller: one Endpoints object per Service with a selector.

`build_subsets(service, pods)` is pure (Kubernetes' endpoints controller + RepackSubsets):

- a pod is included when it has a pod IP, is not being deleted and is not finished
  (restartPolicy Never: not Succeeded/Failed; OnFailure: not Succeeded);
- ready pods (or every pod with spec.publishNotReadyAddresses) go to `addresses`, the
  rest to `notReadyAddresses`, each as {ip, nodeName, targetRef}; a headless Service's
  address also carries the pod's hostname when the pod's subdomain names the Service;
- every Service port becomes an endpoint port: targetPort by number, or by NAME from the
  pod's container ports (same protocol); a pod without the named port is left out of
  that port; absent targetPort means the Service port;
- addresses with the same port set share one subset; everything is sorted, so the same
  cluster state always gives the same object.

The reconcile writes only when the subsets or labels differ from the stored Endpoints, so
an unchanged result writes nothing. A Service without a selector (or with an empty one)
is left alone: its Endpoints are the user's. A deleted Service's Endpoints are deleted.
Write failures are recorded as a `FailedToUpdateEndpoint` Warning on the Service and
retried by the engine. A Service selecting nothing gets `subsets: []`.

Concurrency: reconciles are serialised per Service by the engine.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable, Mapping

from shoal.api import errors as api_errors
from shoal.api.client import Obj
from shoal.controllers import engine, pods as podutil
from shoal.controllers.engine import Change, Controller, Manager, Request, Result
from shoal.controllers.events import EventRecorder

log = logging.getLogger(__name__)

SERVICES = "services"
ENDPOINTS = "endpoints"
PODS = "pods"
HEADLESS_LABEL = "service.kubernetes.io/headless"


def service_selector(service: Mapping[str, Any]) -> dict[str, str] | None:
    """The Service's selector map; None when it has none (then it selects nothing and
    its Endpoints are not managed), as Kubernetes treats nil and empty selectors."""
    selector = (service.get("spec") or {}).get("selector")
    return dict(selector) if selector else None


def selects(service: Mapping[str, Any], labels: Mapping[str, str] | None) -> bool:
    selector = service_selector(service)
    if selector is None:
        return False
    labels = labels or {}
    return all(labels.get(k) == v for k, v in selector.items())


def should_include(pod: Mapping[str, Any]) -> bool:
    if not (pod.get("status") or {}).get("podIP"):
        return False
    if podutil.is_deleting(pod):
        return False
    policy = (pod.get("spec") or {}).get("restartPolicy") or "Always"
    phase = podutil.phase(pod)
    if policy == "Never":
        return phase not in ("Failed", "Succeeded")
    if policy == "OnFailure":
        return phase != "Succeeded"
    return True


def find_port(pod: Mapping[str, Any], service_port: Mapping[str, Any]) -> int | None:
    """The pod port a Service port targets (Kubernetes' podutil.FindPort)."""
    target = service_port.get("targetPort")
    if target is None or target == "":
        return int(service_port["port"])
    if isinstance(target, int):
        return target
    if str(target).isdigit():
        return int(target)
    protocol = service_port.get("protocol") or "TCP"
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == target and (port.get("protocol") or "TCP") == protocol:
                return int(port["containerPort"])
    return None


def _address(service: Mapping[str, Any], pod: Mapping[str, Any]) -> Obj:
    meta = podutil.meta(pod)
    spec = pod.get("spec") or {}
    address: Obj = {
        "ip": pod["status"]["podIP"],
        "targetRef": {"kind": "Pod", "namespace": meta.get("namespace"),
                      "name": meta.get("name"), "uid": meta.get("uid")},
    }
    if spec.get("nodeName"):
        address["nodeName"] = spec["nodeName"]
    svc_spec = service.get("spec") or {}
    if (svc_spec.get("clusterIP") == "None" and spec.get("hostname")
            and spec.get("subdomain") == podutil.meta(service).get("name")):
        address["hostname"] = spec["hostname"]
    return address


def _endpoint_port(service_port: Mapping[str, Any], number: int) -> Obj:
    port: Obj = {"port": number, "protocol": service_port.get("protocol") or "TCP"}
    if service_port.get("name"):
        port["name"] = service_port["name"]
    if service_port.get("appProtocol"):
        port["appProtocol"] = service_port["appProtocol"]
    return port


def _port_key(port: Mapping[str, Any]) -> tuple:
    return (port.get("name") or "", port["port"], port.get("protocol") or "TCP")


def build_subsets(service: Mapping[str, Any], pods: Iterable[Mapping[str, Any]]) -> list[Obj]:
    """The Endpoints subsets for a Service from candidate pods (already selected)."""
    spec = service.get("spec") or {}
    service_ports = spec.get("ports") or []
    publish_not_ready = bool(spec.get("publishNotReadyAddresses"))
    headless = spec.get("clusterIP") == "None"
    groups: dict[tuple, dict[str, Any]] = {}
    for pod in pods:
        if not should_include(pod):
            continue
        ports = []
        for service_port in service_ports:
            number = find_port(pod, service_port)
            if number is None:
                log.debug("service %s: pod %s has no port %r", podutil.meta(service).get("name"),
                          podutil.meta(pod).get("name"), service_port.get("targetPort"))
                continue
            ports.append(_endpoint_port(service_port, number))
        if service_ports and not ports:
            continue
        if not service_ports and not headless:
            continue
        key = tuple(sorted(_port_key(p) for p in ports))
        group = groups.setdefault(key, {"ports": sorted(ports, key=_port_key),
                                        "addresses": [], "notReadyAddresses": []})
        ready = publish_not_ready or podutil.is_ready(pod)
        group["addresses" if ready else "notReadyAddresses"].append(_address(service, pod))
    subsets = []
    for key in sorted(groups):
        group = groups[key]
        subset: Obj = {}
        for field in ("addresses", "notReadyAddresses"):
            if group[field]:
                subset[field] = sorted(group[field], key=lambda a: (a["ip"], a["targetRef"]["name"]))
        if group["ports"]:
            subset["ports"] = group["ports"]
        subsets.append(subset)
    return subsets


def endpoints_labels(service: Mapping[str, Any]) -> dict[str, str]:
    labels = dict(podutil.meta(service).get("labels") or {})
    if (service.get("spec") or {}).get("clusterIP") == "None":
        labels[HEADLESS_LABEL] = ""
    return labels


class EndpointsController:
    """Reconciles Endpoints per Service; build its engine `Controller` with `controller()`."""

    def __init__(self, manager: Manager, recorder: EventRecorder, *, workers: int = 2) -> None:
        self.manager = manager
        self.writer = manager.writer
        self.recorder = recorder
        self.workers = workers
        self.services = manager.lister(SERVICES)
        self.endpoints = manager.lister(ENDPOINTS)
        self.pods = manager.lister(PODS)

    def controller(self) -> Controller:
        return Controller("endpoints", self.reconcile, [
            (SERVICES, engine.map_own),
            (ENDPOINTS, engine.map_own),
            (PODS, self._map_pod),
        ], workers=self.workers)

    def _map_pod(self, change: Change) -> Iterable[Request]:
        ns = podutil.meta(change.object).get("namespace")
        keys = set()
        for service in self.services.list(ns):
            for pod in (change.old, change.object):
                if pod is not None and selects(service, engine.labels_of(pod)):
                    keys.add(engine.object_key(service))
        return keys

    async def reconcile(self, request: Request) -> Result | None:
        service = self.services.get(request.namespace, request.name)
        current = self.endpoints.get(request.namespace, request.name)
        if service is None or podutil.is_deleting(service):
            if current is not None and not podutil.is_deleting(current) and service is None:
                try:
                    await self.writer.delete(ENDPOINTS, request.namespace, request.name)
                except api_errors.NotFound:
                    pass
            return None
        selector = service_selector(service)
        if selector is None or (service.get("spec") or {}).get("type") == "ExternalName":
            return None
        pods = self.pods.list(request.namespace, selector)
        subsets = build_subsets(service, pods)
        labels = endpoints_labels(service)
        if (current is not None and (current.get("subsets") or []) == subsets
                and (podutil.meta(current).get("labels") or {}) == labels):
            return None
        try:
            if current is None:
                await self.writer.create(ENDPOINTS, {
                    "apiVersion": "v1", "kind": "Endpoints",
                    "metadata": {"name": request.name, "namespace": request.namespace,
                                 "labels": labels},
                    "subsets": subsets,
                })
            else:
                body = engine.clone(current)
                body["subsets"] = subsets
                body["metadata"]["labels"] = labels
                await self.writer.update(ENDPOINTS, body)
        except api_errors.Conflict:
            raise
        except Exception as exc:
            await self.recorder.warning(
                service, "FailedToUpdateEndpoint",
                f"Failed to update endpoint {request.namespace}/{request.name}: {exc}")
            raise
        return None
