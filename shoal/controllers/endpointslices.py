"""The EndpointSlice controller: discovery.k8s.io/v1 EndpointSlices beside each Service's
Endpoints, as Kubernetes' endpointslice controller publishes them.

`build_slices(service, pods)` is pure:

- a pod counts when it has an IP and is not finished (the Endpoints rules, but a pod
  being deleted stays, marked terminating, as Kubernetes' slices do);
- each endpoint is {addresses: [ip], conditions: {ready, serving, terminating},
  targetRef, nodeName, hostname (headless Service, pod subdomain = the Service)}:
  serving = the pod is Ready, terminating = it is being deleted, ready = serving and not
  terminating (every pod is ready with spec.publishNotReadyAddresses);
- ports are the Service's ports resolved per pod (named targetPorts by the pod's
  container ports, `endpoints.find_port`); pods with the same resolved ports share
  slices, at most `MAX_ENDPOINTS_PER_SLICE` (Kubernetes' default 100) each;
- labels: the Service's own labels, `kubernetes.io/service-name`,
  `endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io`, and
  `service.kubernetes.io/headless` for a headless Service; the Service is the
  controlling owner (so deleting it collects its slices);
- names are `<service>-<5 characters>` as Kubernetes' generateName gives, but derived
  from the port set and the slice's index, so the same state always gives the same slices.

The reconcile lists the slices this controller manages for the Service (by the two
labels), creates, updates (only when different) and deletes to match. Services without
a selector and ExternalName Services get none (their slices are the user's).

Concurrency: reconciles are serialised per Service by the engine.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any, Iterable, Mapping

from shoal.api import errors as api_errors
from shoal.api.client import Obj
from shoal.controllers import endpoints as ep, engine, pods as podutil
from shoal.controllers.engine import Change, Controller, Manager, Request, Result
from shoal.controllers.events import EventRecorder

SERVICES = "services"
PODS = "pods"
SLICES = "endpointslices.discovery.k8s.io"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY = "endpointslice-controller.k8s.io"
MAX_ENDPOINTS_PER_SLICE = 100


def should_include(pod: Mapping[str, Any]) -> bool:
    """Like the Endpoints rule, but terminating pods stay (with terminating=true)."""
    if not (pod.get("status") or {}).get("podIP"):
        return False
    policy = (pod.get("spec") or {}).get("restartPolicy") or "Always"
    phase = podutil.phase(pod)
    if policy == "Never":
        return phase not in ("Failed", "Succeeded")
    if policy == "OnFailure":
        return phase != "Succeeded"
    return True


def _endpoint(service: Mapping[str, Any], pod: Mapping[str, Any]) -> Obj:
    meta = podutil.meta(pod)
    spec = pod.get("spec") or {}
    publish = bool((service.get("spec") or {}).get("publishNotReadyAddresses"))
    terminating = podutil.is_deleting(pod)
    serving = podutil.is_ready(pod)
    endpoint: Obj = {
        "addresses": [pod["status"]["podIP"]],
        # ready is never true for a terminating pod unless publishNotReadyAddresses (Kubernetes' rule)
        "conditions": {"ready": publish or (serving and not terminating), "serving": serving,
                       "terminating": terminating},
        "targetRef": {"kind": "Pod", "namespace": meta.get("namespace"), "name": meta.get("name"),
                      "uid": meta.get("uid")},
    }
    if spec.get("nodeName"):
        endpoint["nodeName"] = spec["nodeName"]
    if ((service.get("spec") or {}).get("clusterIP") == "None" and spec.get("hostname")
            and spec.get("subdomain") == podutil.meta(service).get("name")):
        endpoint["hostname"] = spec["hostname"]
    return endpoint


def _slice_port(service_port: Mapping[str, Any], number: int) -> Obj:
    port: Obj = {"name": service_port.get("name") or "", "port": number,
                 "protocol": service_port.get("protocol") or "TCP"}
    if service_port.get("appProtocol"):
        port["appProtocol"] = service_port["appProtocol"]
    return port


def slice_labels(service: Mapping[str, Any]) -> dict[str, str]:
    labels = dict(podutil.meta(service).get("labels") or {})
    labels[SERVICE_NAME_LABEL] = podutil.meta(service)["name"]
    labels[MANAGED_BY_LABEL] = MANAGED_BY
    if (service.get("spec") or {}).get("clusterIP") == "None":
        labels[ep.HEADLESS_LABEL] = ""
    return labels


def slice_name(service_name: str, port_key: tuple, index: int) -> str:
    digest = hashlib.sha256(repr((port_key, index)).encode()).digest()
    suffix = base64.b32encode(digest).decode().lower()[:5]
    return f"{service_name[:57]}-{suffix}"


def build_slices(service: Mapping[str, Any], pods: Iterable[Mapping[str, Any]]) -> list[Obj]:
    """The EndpointSlices (without metadata beyond name and labels) for a Service from
    its selected pods, ordered by name."""
    meta = podutil.meta(service)
    service_ports = (service.get("spec") or {}).get("ports") or []
    groups: dict[tuple, list[Obj]] = {}
    for pod in pods:
        if not should_include(pod):
            continue
        ports = []
        for service_port in service_ports:
            number = ep.find_port(pod, service_port)
            if number is not None:
                ports.append(_slice_port(service_port, number))
        if service_ports and not ports:
            continue
        key = tuple(sorted((p["name"], p["port"], p["protocol"]) for p in ports))
        groups.setdefault(key, []).append(_endpoint(service, pod))
    slices = []
    for key in sorted(groups):
        endpoints = sorted(groups[key], key=lambda e: (e["addresses"][0], e["targetRef"]["name"]))
        ports = [{"name": n, "port": p, "protocol": proto} for n, p, proto in key]
        by_name = {(p.get("name") or "", p.get("protocol") or "TCP"): p for p in service_ports}
        for port in ports:
            app = (by_name.get((port["name"], port["protocol"])) or {}).get("appProtocol")
            if app:
                port["appProtocol"] = app
        for index in range(0, len(endpoints), MAX_ENDPOINTS_PER_SLICE):
            slices.append({
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": slice_name(meta["name"], key, index // MAX_ENDPOINTS_PER_SLICE),
                             "namespace": meta.get("namespace"), "labels": slice_labels(service)},
                "addressType": "IPv4",
                "endpoints": endpoints[index:index + MAX_ENDPOINTS_PER_SLICE],
                "ports": ports,
            })
    if not slices:
        # Kubernetes keeps one empty slice for a Service that selects nothing (a
        # "placeholder"), so clients can tell "no endpoints" from "not processed".
        slices.append({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": slice_name(meta["name"], (), 0), "namespace": meta.get("namespace"),
                         "labels": slice_labels(service)},
            "addressType": "IPv4", "endpoints": [], "ports": [],
        })
    return sorted(slices, key=lambda s: s["metadata"]["name"])


class EndpointSliceController:
    """Reconciles a Service's EndpointSlices; build its engine `Controller` with `controller()`."""

    def __init__(self, manager: Manager, recorder: EventRecorder, *, workers: int = 2) -> None:
        self.writer = manager.writer
        self.recorder = recorder
        self.workers = workers
        self.services = manager.lister(SERVICES)
        self.slices = manager.lister(SLICES)
        self.pods = manager.lister(PODS)

    def controller(self) -> Controller:
        return Controller("endpointslices", self.reconcile, [
            (SERVICES, engine.map_own),
            (SLICES, _map_slice),
            (PODS, self._map_pod),
        ], workers=self.workers)

    def _map_pod(self, change: Change) -> Iterable[Request]:
        ns = podutil.meta(change.object).get("namespace")
        keys = set()
        for service in self.services.list(ns):
            for pod in (change.old, change.object):
                if pod is not None and ep.selects(service, engine.labels_of(pod)):
                    keys.add(engine.object_key(service))
        return keys

    def _managed(self, namespace: str | None, name: str) -> dict[str, Obj]:
        found = self.slices.list(namespace, {SERVICE_NAME_LABEL: name, MANAGED_BY_LABEL: MANAGED_BY})
        return {podutil.meta(s)["name"]: s for s in found}

    async def reconcile(self, request: Request) -> Result | None:
        service = self.services.get(request.namespace, request.name)
        current = self._managed(request.namespace, request.name)
        wanted: dict[str, Obj] = {}
        selector = ep.service_selector(service) if service is not None else None
        if (service is not None and not podutil.is_deleting(service) and selector is not None
                and (service.get("spec") or {}).get("type") != "ExternalName"):
            pods = self.pods.list(request.namespace, selector)
            for item in build_slices(service, pods):
                item["metadata"]["ownerReferences"] = [podutil.owner_reference(
                    {"apiVersion": "v1", "kind": "Service", "metadata": podutil.meta(service)})]
                wanted[item["metadata"]["name"]] = item
        try:
            for name, body in wanted.items():
                existing = current.get(name)
                if existing is None:
                    await self.writer.create(SLICES, body)
                elif _differs(existing, body):
                    updated = engine.clone(existing)
                    for field in ("addressType", "endpoints", "ports"):
                        updated[field] = body[field]
                    updated["metadata"]["labels"] = body["metadata"]["labels"]
                    updated["metadata"]["ownerReferences"] = body["metadata"]["ownerReferences"]
                    await self.writer.update(SLICES, updated)
            for name, existing in current.items():
                if name not in wanted and not podutil.is_deleting(existing):
                    try:
                        await self.writer.delete(SLICES, request.namespace, name)
                    except api_errors.NotFound:
                        pass
        except api_errors.Conflict:
            raise
        except Exception as exc:
            if service is not None:
                await self.recorder.warning(
                    service, "FailedToUpdateEndpointSlices",
                    f"Error updating Endpoint Slices for Service {request.namespace}/{request.name}: {exc}")
            raise
        return None


def _differs(existing: Mapping[str, Any], body: Mapping[str, Any]) -> bool:
    if any((existing.get(k) or []) != (body.get(k) or []) for k in ("endpoints", "ports")):
        return True
    meta, new = podutil.meta(existing), body["metadata"]
    return (existing.get("addressType") != body["addressType"] or (meta.get("labels") or {}) != new["labels"]
            or (meta.get("ownerReferences") or []) != new["ownerReferences"])


def _map_slice(change: Change) -> Iterable[Request]:
    keys = set()
    for obj in (change.old, change.object):
        labels = engine.labels_of(obj) if obj is not None else {}
        if labels.get(MANAGED_BY_LABEL) == MANAGED_BY and labels.get(SERVICE_NAME_LABEL):
            keys.add(Request(podutil.meta(obj).get("namespace") or None, labels[SERVICE_NAME_LABEL]))
    return keys
