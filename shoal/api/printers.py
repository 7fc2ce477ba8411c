"""Server-side table printing: `meta.k8s.io/v1` Tables and their kubectl-style text.

Pure functions of (kind, objects, now); no I/O, no shared state.

`table()` builds what the Kubernetes API server returns for
``Accept: application/json;as=Table;v=v1;g=meta.k8s.io``: one column definition per
column (title-case names, kubectl upper-cases them) and one row per object, each cell
computed as `k8s.io/kubernetes/pkg/printers/internalversion` does (Pod STATUS with
CrashLoopBackOff / Init:1/2 / Completed / Terminating ..., RESTARTS with "(5m ago)",
Service PORT(S) "80:30080/TCP", Endpoints "a:80,b:80 + 1 more...", AGE as
`duration.HumanDuration`). Columns with priority 1 are the ``-o wide`` ones; as in
Kubernetes' generator they are left out with ``wide=False``; the default (``wide=True``)
is what the API server sends (Kubernetes always does) and kubectl hides them unless
``-o wide``.
Kinds without a printer get NAME and AGE.

`render_text()` prints a Table as kubectl does: upper-case headers, left-aligned columns
separated by at least 3 spaces (Go's tabwriter with minwidth 6, padding 3), priority-1
columns only when wide, NAMESPACE first when asked, cells cut at the first newline
("...").
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Callable, Iterable, Mapping

from shoal.api import batchprint, podprint, selectors, setprint
from shoal.api import networkprint
from shoal.api import printcells as cells

Obj = Mapping[str, Any]
Cells = list[Any]

NAME, AGE = cells.NAME, cells.AGE
human_duration = cells.human_duration
pod_status = podprint.pod_status

# ----------------------------------------------------------------- apps: Deployment, RS

_TEMPLATE_COLUMNS = [
    cells.wide("Containers", "Names of each container in the template."),
    cells.wide("Images", "Images referenced by each container in the template."),
    cells.wide("Selector", "Label selector for pods. Existing ReplicaSets whose pods are selected "
                      "by this will be the ones affected by this deployment."),
]

_DEPLOYMENT_COLUMNS = [
    NAME,
    cells.column("Ready", "Number of the pod with ready state"),
    cells.column("Up-to-date", "Total number of non-terminated pods targeted by this deployment "
                          "that have the desired template spec.", type="integer"),
    cells.column("Available", "Total number of available pods (ready for at least minReadySeconds) "
                         "targeted by this deployment.", type="integer"),
    AGE,
    *_TEMPLATE_COLUMNS,
]


def _template_cells(obj: Obj) -> Cells:
    names, images = cells.container_cells(cells.get(obj, "spec", "template", "spec", "containers", default=[]))
    return [names, images, cells.selector_text(cells.get(obj, "spec", "selector"))]


def _replicas(obj: Obj) -> int:
    value = cells.get(obj, "spec", "replicas")
    return 1 if value is None else int(value)


def _deployment_row(obj: Obj, now: dt.datetime) -> tuple[Cells, Cells]:
    status = cells.get(obj, "status", default={})
    return ([cells.name_of(obj), f"{int(status.get('readyReplicas') or 0)}/{_replicas(obj)}",
             int(status.get("updatedReplicas") or 0), int(status.get("availableReplicas") or 0),
             cells.age(obj, now)], _template_cells(obj))


_REPLICASET_COLUMNS = [
    NAME,
    cells.column("Desired", "Replicas is the number of desired replicas.", type="integer"),
    cells.column("Current", "Replicas is the most recently observed number of replicas.",
            type="integer"),
    cells.column("Ready", "The number of ready replicas for this replica set.", type="integer"),
    AGE,
    *_TEMPLATE_COLUMNS,
]


def _replicaset_row(obj: Obj, now: dt.datetime) -> tuple[Cells, Cells]:
    status = cells.get(obj, "status", default={})
    return ([cells.name_of(obj), _replicas(obj), int(status.get("replicas") or 0),
             int(status.get("readyReplicas") or 0), cells.age(obj, now)], _template_cells(obj))


# ----------------------------------------------------------------- Service, Endpoints

_SERVICE_COLUMNS = [
    NAME,
    cells.column("Type", "type determines how the Service is exposed."),
    cells.column("Cluster-IP", "clusterIP is the IP address of the service."),
    cells.column("External-IP", "externalIPs is a list of IP addresses for which nodes in the "
                           "cluster will also accept traffic for this service."),
    cells.column("Port(s)", "The list of ports that are exposed by this service."),
    AGE,
    cells.wide("Selector", "Route service traffic to pods with label keys and values matching "
                      "this selector."),
]


def service_ports(ports: Iterable[Mapping]) -> str:
    """makePortString: '80/TCP,443:30443/TCP'."""
    pieces = []
    for port in ports:
        protocol = port.get("protocol") or "TCP"
        if port.get("nodePort"):
            pieces.append(f"{port.get('port')}:{port['nodePort']}/{protocol}")
        else:
            pieces.append(f"{port.get('port')}/{protocol}")
    return ",".join(pieces)


def _service_external_ip(svc: Obj) -> str:
    spec = cells.get(svc, "spec", default={})
    kind = spec.get("type") or "ClusterIP"
    external = list(spec.get("externalIPs") or [])
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external) if external else "<none>"
    if kind == "LoadBalancer":
        ingress = cells.get(svc, "status", "loadBalancer", "ingress", default=[])
        lb = [i.get("ip") or i.get("hostname") for i in ingress if i.get("ip") or i.get("hostname")]
        if lb or external:
            return ",".join(lb + external)
        return "<pending>"
    if kind == "ExternalName":
        return spec.get("externalName") or ""
    return "<unknown>"


def _service_row(svc: Obj, now: dt.datetime) -> tuple[Cells, Cells]:
    spec = cells.get(svc, "spec", default={})
    cluster_ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    return ([cells.name_of(svc), spec.get("type") or "ClusterIP", cluster_ips[0] if cluster_ips else "<none>",
             _service_external_ip(svc), service_ports(spec.get("ports") or []) or "<none>",
             cells.age(svc, now)], [selectors.format_labels(spec.get("selector"))])


_ENDPOINTS_COLUMNS = [
    NAME,
    cells.column("Endpoints", "The set of all endpoints is the union of all subsets."),
    AGE,
]


def format_endpoints(endpoints: Obj, limit: int = 3) -> str:
    """formatEndpoints: the first three 'ip:port', then ' + N more...'."""
    subsets = endpoints.get("subsets") or []
    if not subsets:
        return "<none>"
    shown: list[str] = []
    count = 0
    more = False
    for subset in subsets:
        addresses = subset.get("addresses") or []
        ports = subset.get("ports") or []
        if not ports:
            count += len(addresses)
            for address in addresses:
                if len(shown) == limit:
                    more = True
                    break
                shown.append(address.get("ip", ""))
            continue
        for port in ports:
            count += len(addresses)
            for address in addresses:
                if len(shown) == limit:
                    more = True
                    break
                ip = address.get("ip", "")
                host = f"[{ip}]" if ":" in ip else ip
                shown.append(f"{host}:{port.get('port')}")
    text = ",".join(shown)
    return f"{text} + {count - limit} more..." if more else text


def _endpoints_row(obj: Obj, now: dt.datetime) -> tuple[Cells, Cells]:
    return [cells.name_of(obj), format_endpoints(obj), cells.age(obj, now)], []


# ------------------------------------------------------- Namespace, ConfigMap, Secret, SA

_NAMESPACE_COLUMNS = [
    NAME,
    cells.column("Status", "The status of the namespace"),
    AGE,
]
_CONFIGMAP_COLUMNS = [NAME, cells.column("Data", "Number of data in configmap", type="integer"), AGE]
_SECRET_COLUMNS = [
    NAME,
    cells.column("Type", "The type of secret"),
    cells.column("Data", "Number of data in secret", type="integer"),
    AGE,
]
_SERVICEACCOUNT_COLUMNS = [
    NAME,
    cells.column("Secrets", "Secrets is a list of the secrets in the same namespace that pods "
                       "running using this ServiceAccount are allowed to use.", type="integer"),
    AGE,
]


def _namespace_row(obj: Obj, now: dt.datetime) -> tuple[Cells, Cells]:
    return [cells.name_of(obj), cells.get(obj, "status", "phase", default=""), cells.age(obj, now)], []


def _configmap_row(obj: Obj, now: dt.datetime) -> tuple[Cells, Cells]:
    count = len(obj.get("data") or {}) + len(obj.get("binaryData") or {})
    return [cells.name_of(obj), count, cells.age(obj, now)], []


def _secret_row(obj: Obj, now: dt.datetime) -> tuple[Cells, Cells]:
    return [cells.name_of(obj), obj.get("type") or "Opaque", len(obj.get("data") or {}), cells.age(obj, now)], []


def _serviceaccount_row(obj: Obj, now: dt.datetime) -> tuple[Cells, Cells]:
    return [cells.name_of(obj), len(obj.get("secrets") or []), cells.age(obj, now)], []


# ----------------------------------------------------------------------------- Event

_EVENT_COLUMNS = [
    cells.column("Last Seen", "The time at which the most recent occurrence of this event was "
                         "recorded."),
    cells.column("Type", "Type of this event (Normal, Warning), new types could be added in the "
                    "future"),
    cells.column("Reason", "This should be a short, machine understandable string that gives the "
                      "reason for the transition into the object's current status."),
    cells.column("Object", "The object that this event is about."),
    cells.wide("Subobject", "If referring to a piece of an object instead of an entire object, "
                       "this string should contain a valid JSON/Go field access statement."),
    cells.wide("Source", "The component reporting this event."),
    cells.column("Message", "A human-readable description of the status of this operation."),
    cells.wide("First Seen", "The time at which the event was first recorded."),
    cells.wide("Count", "The number of times this event has occurred.", type="integer"),
    {**NAME, "priority": 1},
]


def _event_row(obj: Obj, now: dt.datetime) -> tuple[Cells, Cells]:
    first = cells.since(obj.get("firstTimestamp"), now) if obj.get("firstTimestamp") \
        else cells.since(obj.get("eventTime"), now)
    last = cells.since(obj.get("lastTimestamp"), now) if obj.get("lastTimestamp") else first
    count = int(obj.get("count") or 0)
    series = obj.get("series")
    if series:
        last = cells.since(series.get("lastObservedTime"), now)
        count = int(series.get("count") or 0)
    elif count == 0:
        count = 1
    involved = obj.get("involvedObject") or {}
    kind = (involved.get("kind") or "").lower()
    target = f"{kind}/{involved['name']}" if involved.get("name") else kind
    source = obj.get("source") or {}
    component = source.get("component") or obj.get("reportingComponent") or ""
    host = source.get("host") or obj.get("reportingInstance") or ""
    source_text = f"{component}, {host}" if host else component
    message = (obj.get("message") or "").strip()
    # Columns interleave: LAST SEEN TYPE REASON OBJECT [SUBOBJECT SOURCE] MESSAGE [...].
    return ([last, obj.get("type") or "", obj.get("reason") or "", target, message],
            [involved.get("fieldPath") or "", source_text, first, count, cells.name_of(obj)])


# ----------------------------------------------------------------------------- PVC

_PVC_COLUMNS = [
    NAME,
    cells.column("Status", "phase represents the current phase of PersistentVolumeClaim."),
    cells.column("Volume", "volumeName is the binding reference to the PersistentVolume backing "
                      "this claim."),
    cells.column("Capacity", "capacity represents the actual resources of the underlying volume."),
    cells.column("Access Modes", "accessModes contains the actual access modes the volume backing "
                            "the PVC has."),
    cells.column("StorageClass", "StorageClass of the pvc"),
    AGE,
    cells.wide("VolumeMode", "volumeMode defines what type of volume is required by the claim."),
]

_ACCESS_MODES = [("ReadWriteOnce", "RWO"), ("ReadOnlyMany", "ROX"), ("ReadWriteMany", "RWX"),
                 ("ReadWriteOncePod", "RWOP")]


def _pvc_row(obj: Obj, now: dt.datetime) -> tuple[Cells, Cells]:
    spec, status = cells.get(obj, "spec", default={}), cells.get(obj, "status", default={})
    phase = "Terminating" if cells.get(obj, "metadata", "deletionTimestamp") else status.get("phase") or ""
    capacity = modes = ""
    if spec.get("volumeName"):
        granted = status.get("accessModes") or []
        modes = ",".join(short for mode, short in _ACCESS_MODES if mode in granted)
        capacity = str(cells.get(status, "capacity", "storage", default=""))
    storage_class = spec.get("storageClassName") or cells.get(
        obj, "metadata", "annotations", "volume.beta.kubernetes.io/storage-class", default="")
    return ([cells.name_of(obj), phase, spec.get("volumeName") or "", capacity, modes, storage_class,
             cells.age(obj, now)], [spec.get("volumeMode") or "<unset>"])


# ----------------------------------------------------------------------------- table

_Printer = Callable[[Obj, dt.datetime], tuple[Cells, Cells]]


def _default_row(obj: Obj, now: dt.datetime) -> tuple[Cells, Cells]:
    return [cells.name_of(obj), cells.age(obj, now)], []


_PRINTERS: dict[str, tuple[list[dict[str, Any]], _Printer]] = {
    "Pod": (podprint.COLUMNS, podprint.row),
    "Deployment": (_DEPLOYMENT_COLUMNS, _deployment_row),
    "ReplicaSet": (_REPLICASET_COLUMNS, _replicaset_row),
    "Service": (_SERVICE_COLUMNS, _service_row),
    "Endpoints": (_ENDPOINTS_COLUMNS, _endpoints_row),
    "Namespace": (_NAMESPACE_COLUMNS, _namespace_row),
    "ConfigMap": (_CONFIGMAP_COLUMNS, _configmap_row),
    "Secret": (_SECRET_COLUMNS, _secret_row),
    "ServiceAccount": (_SERVICEACCOUNT_COLUMNS, _serviceaccount_row),
    "Event": (_EVENT_COLUMNS, _event_row),
    "PersistentVolumeClaim": (_PVC_COLUMNS, _pvc_row),
    "Job": (batchprint.JOB_COLUMNS, batchprint.job_row),
    "CronJob": (batchprint.CRONJOB_COLUMNS, batchprint.cronjob_row),
    **setprint.PRINTERS,
    **networkprint.PRINTERS,
}
_DEFAULT = ([NAME, AGE], _default_row)


def register(kind: str, column_definitions: list[dict[str, Any]], row: _Printer) -> None:
    """Print `kind` (a kind registered later: Istio's) with these column definitions and
    `row(obj, now) -> (cells, wide cells)`. Call at start-up, before serving."""
    _PRINTERS[kind] = (list(column_definitions), row)


def columns(kind: str, *, wide: bool = False) -> list[dict[str, Any]]:
    """The column definitions of `kind` (priority-1 columns only when wide)."""
    definitions, _ = _PRINTERS.get(kind, _DEFAULT)
    return [dict(c) for c in definitions if wide or not c["priority"]]


def table(kind: str, objects: list[dict], *, wide: bool = True, now: dt.datetime | None = None,
          include_object: str = "Metadata", resource_version: str | None = None) -> dict:
    """A meta.k8s.io/v1 Table of `objects` (all of kind `kind`).

    wide: include the priority-1 columns. The default (True) is what an API server must
    send, as Kubernetes does: clients (kubectl, `render_text`) hide those columns unless
    asked for ``-o wide``. False leaves them out of the Table altogether.
    include_object: the request's ``includeObject``: "Metadata" (default, a
    PartialObjectMetadata per row, which kubectl needs for NAMESPACE and sorting),
    "Object" (the whole object) or "None".
    resource_version: the list's resourceVersion, copied to the Table's metadata."""
    now = now or dt.datetime.now(dt.timezone.utc)
    definitions, printer = _PRINTERS.get(kind, _DEFAULT)
    wide_positions = [i for i, c in enumerate(definitions) if c["priority"]]
    rows = []
    for obj in objects:
        base, extra = printer(obj, now)
        row: dict[str, Any] = {
            "cells": _interleave(base, extra, wide_positions) if wide else base}
        if kind == "Pod":
            conditions = podprint.conditions_of(obj)
            if conditions:
                row["conditions"] = [dict(c) for c in conditions]
        if include_object == "Object":
            row["object"] = obj
        elif include_object == "Metadata":
            row["object"] = _partial_metadata(obj)
        rows.append(row)
    metadata = {"resourceVersion": resource_version} if resource_version else {}
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata,
            "columnDefinitions": columns(kind, wide=wide), "rows": rows}


def _interleave(base: Cells, extra: Cells, wide_positions: list[int]) -> Cells:
    """Put the wide cells at their column positions among the base cells."""
    cells: Cells = []
    base_iter, extra_iter = iter(base), iter(extra)
    for position in range(len(base) + len(extra)):
        cells.append(next(extra_iter) if position in wide_positions else next(base_iter))
    return cells


def _partial_metadata(obj: Obj) -> dict[str, Any]:
    metadata = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": metadata}


# ----------------------------------------------------------------------------- text


def render_text(table: dict, *, wide: bool = False, show_namespace: bool = False,
                no_headers: bool = False) -> str:
    """kubectl's plain-text rendering of a Table; "" when it has no rows (the caller says
    "No resources found")."""
    rows = table.get("rows") or []
    if not rows:
        return ""
    definitions = table.get("columnDefinitions") or []
    shown = [i for i, c in enumerate(definitions) if wide or not c.get("priority")]
    lines: list[list[str]] = []
    if not no_headers:
        header = [str(definitions[i].get("name", "")).upper() for i in shown]
        lines.append((["NAMESPACE"] if show_namespace else []) + header)
    for row in rows:
        values = row.get("cells") or []
        texts = [_cell_text(values[i]) if i < len(values) else "" for i in shown]
        if show_namespace:
            texts.insert(0, cells.get(row, "object", "metadata", "namespace", default=""))
        lines.append(texts)
    return _align(lines)


def _cell_text(cell: Any) -> str:
    if cell is None:
        return ""
    if isinstance(cell, bool):
        return "true" if cell else "false"
    if isinstance(cell, str):
        for index, ch in enumerate(cell):
            if ch in "\n\r\f":
                return cell[:index] + "..."
        return cell
    return str(cell)


def _align(lines: list[list[str]], padding: int = 3, min_width: int = 6) -> str:
    """Go's text/tabwriter as kubectl configures it: every cell but the last of a line is
    padded to its column's width (widest cell + padding, at least min_width)."""
    count = max(len(line) for line in lines)
    widths = []
    for column in range(count - 1):
        widest = max((len(line[column]) for line in lines if column < len(line) - 1), default=0)
        widths.append(max(widest + padding, min_width))
    out = []
    for line in lines:
        padded = [cell.ljust(widths[i]) for i, cell in enumerate(line[:-1])]
        out.append("".join(padded) + (line[-1] if line else ""))
    return "\n".join(out) + "\n"
