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

from shoal.api import errors, selectors

Obj = Mapping[str, Any]
Cells = list[Any]

_NAME_DOC = ("Name must be unique within a namespace. Is required when creating "
             "resources, although some resources may allow a client to request the "
             "generation of an appropriate name automatically.")
_AGE_DOC = ("CreationTimestamp is a timestamp representing the server time when this "
            "object was created.")


def _column(name: str, description: str = "", *, type: str = "string", format: str = "",
            priority: int = 0) -> dict[str, Any]:
    return {"name": name, "type": type, "format": format, "description": description,
            "priority": priority}


NAME = _column("Name", _NAME_DOC, format="name")
AGE = _column("Age", _AGE_DOC)


def _wide(name: str, description: str, *, type: str = "string") -> dict[str, Any]:
    return _column(name, description, type=type, priority=1)


# ----------------------------------------------------------------------- time helpers


def human_duration(seconds: float) -> str:
    """k8s.io/apimachinery/pkg/util/duration.HumanDuration."""
    whole = int(seconds)  # truncates toward zero, like Go's int(d.Seconds())
    if whole < -1:
        return "<invalid>"
    if whole < 0:
        return "0s"
    if whole < 60 * 2:
        return f"{whole}s"
    minutes = whole // 60
    if minutes < 10:
        rest = whole % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = whole // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y" if days == 0 else f"{years}y{days}d"
    return f"{hours // 24 // 365}y"


def parse_time(value: Any) -> dt.datetime | None:
    """An RFC 3339 (micro)timestamp as an aware datetime; None when absent or invalid."""
    if not value or not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def since(value: Any, now: dt.datetime) -> str:
    """translateTimestampSince: '<unknown>' for a missing timestamp."""
    moment = parse_time(value)
    if moment is None:
        return "<unknown>"
    return human_duration((now - moment).total_seconds())


# ----------------------------------------------------------------------- small readers


def _get(obj: Any, *keys: str, default: Any = None) -> Any:
    for key in keys:
        if not isinstance(obj, Mapping):
            return default
        obj = obj.get(key)
    return default if obj is None else obj


def _name(obj: Obj) -> str:
    return _get(obj, "metadata", "name", default="")


def _age(obj: Obj, now: dt.datetime) -> str:
    return since(_get(obj, "metadata", "creationTimestamp"), now)


def _container_cells(containers: Iterable[Mapping]) -> tuple[str, str]:
    containers = list(containers)
    return (",".join(c.get("name", "") for c in containers),
            ",".join(c.get("image", "") for c in containers))


def _selector_text(spec: Any) -> str:
    try:
        return str(selectors.selector_from_spec(spec)) if spec is not None else ""
    except errors.StatusError:  # a stored bad selector prints as kubectl does; no failure
        return "<invalid>"


# ----------------------------------------------------------------------------- Pod

_POD_COLUMNS = [
    NAME,
    _column("Ready", "The aggregate readiness state of this pod for accepting traffic."),
    _column("Status", "The aggregate status of the containers in this pod."),
    _column("Restarts", "The number of times the containers in this pod have been restarted "
                        "and when the last container in this pod has restarted."),
    AGE,
    _wide("IP", "IP address allocated to the pod. Routable at least within the cluster."),
    _wide("Node", "NodeName indicates in which node this pod is scheduled."),
    _wide("Nominated Node", "nominatedNodeName is set only when this pod preempts other pods "
                            "on the node."),
    _wide("Readiness Gates", "If specified, all readiness gates will be evaluated for pod "
                             "readiness."),
]

_POD_SUCCEEDED = [{"type": "Completed", "status": "True", "reason": "Succeeded",
                   "message": "The pod has completed successfully."}]
_POD_FAILED = [{"type": "Completed", "status": "True", "reason": "Failed",
                "message": "The pod failed."}]


def pod_status(pod: Obj, now: dt.datetime | None = None) -> tuple[str, str, str]:
    """(READY, STATUS, RESTARTS) exactly as kubectl computes them (printPod)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    spec, status = _get(pod, "spec", default={}), _get(pod, "status", default={})
    init_specs = {c.get("name"): c for c in spec.get("initContainers") or []}
    restartable = {n for n, c in init_specs.items() if c.get("restartPolicy") == "Always"}
    total = len(spec.get("containers") or []) + len(restartable)
    ready = 0
    restarts = 0
    sidecar_restarts = 0
    last_restart: dt.datetime | None = None
    last_sidecar_restart: dt.datetime | None = None
    phase = status.get("phase") or ""
    reason = status.get("reason") or phase
    conditions = status.get("conditions") or []
    for condition in conditions:
        if condition.get("type") == "PodScheduled" and condition.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    initializing = False
    init_statuses = status.get("initContainerStatuses") or []
    for index, container in enumerate(init_statuses):
        count = int(container.get("restartCount") or 0)
        restarts += count
        finished = parse_time(_get(container, "lastState", "terminated", "finishedAt"))
        last_restart = _later(last_restart, finished)
        is_sidecar = container.get("name") in restartable
        if is_sidecar:
            sidecar_restarts += count
            last_sidecar_restart = _later(last_sidecar_restart, finished)
        state = container.get("state") or {}
        terminated, waiting = state.get("terminated"), state.get("waiting")
        if terminated is not None and int(terminated.get("exitCode") or 0) == 0:
            continue
        if is_sidecar and container.get("started"):
            if container.get("ready"):
                ready += 1
            continue
        if terminated is not None:
            if terminated.get("reason"):
                reason = "Init:" + terminated["reason"]
            elif terminated.get("signal"):
                reason = f"Init:Signal:{terminated['signal']}"
            else:
                reason = f"Init:ExitCode:{terminated.get('exitCode') or 0}"
        elif waiting is not None and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{index}/{len(spec.get('initContainers') or [])}"
        initializing = True
        break

    if not initializing or _condition_true(conditions, "Initialized"):
        restarts, last_restart = sidecar_restarts, last_sidecar_restart
        has_running = False
        for container in reversed(status.get("containerStatuses") or []):
            restarts += int(container.get("restartCount") or 0)
            last_restart = _later(
                last_restart, parse_time(_get(container, "lastState", "terminated", "finishedAt")))
            state = container.get("state") or {}
            waiting, terminated = state.get("waiting"), state.get("terminated")
            if waiting is not None and waiting.get("reason"):
                reason = waiting["reason"]
            elif terminated is not None and terminated.get("reason"):
                reason = terminated["reason"]
            elif terminated is not None:
                if terminated.get("signal"):
                    reason = f"Signal:{terminated['signal']}"
                else:
                    reason = f"ExitCode:{terminated.get('exitCode') or 0}"
            elif container.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            reason = "Running" if _condition_true(conditions, "Ready") else "NotReady"

    deleting = _get(pod, "metadata", "deletionTimestamp") is not None
    if deleting and status.get("reason") == "NodeLost":
        reason = "Unknown"
    elif deleting and phase not in ("Succeeded", "Failed"):
        reason = "Terminating"

    restarts_text = str(restarts)
    if restarts and last_restart is not None:
        restarts_text = f"{restarts} ({human_duration((now - last_restart).total_seconds())} ago)"
    return f"{ready}/{total}", reason, restarts_text


def _later(a: dt.datetime | None, b: dt.datetime | None) -> dt.datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def _condition_true(conditions: Iterable[Mapping], type_: str) -> bool:
    return any(c.get("type") == type_ and c.get("status") == "True" for c in conditions)


def _pod_row(pod: Obj, now: dt.datetime) -> tuple[Cells, Cells]:
    ready, reason, restarts = pod_status(pod, now)
    spec, status = _get(pod, "spec", default={}), _get(pod, "status", default={})
    pod_ips = status.get("podIPs") or []
    ip = (pod_ips[0].get("ip") if pod_ips else status.get("podIP")) or "<none>"
    gates = spec.get("readinessGates") or []
    gates_text = "<none>"
    if gates:
        conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
        true_count = sum(1 for g in gates if conditions.get(g.get("conditionType")) == "True")
        gates_text = f"{true_count}/{len(gates)}"
    return ([_name(pod), ready, reason, restarts, _age(pod, now)],
            [ip, spec.get("nodeName") or "<none>", status.get("nominatedNodeName") or "<none>",
             gates_text])


def _pod_conditions(pod: Obj) -> list[dict] | None:
    phase = _get(pod, "status", "phase")
    if phase == "Succeeded":
        return _POD_SUCCEEDED
    if phase == "Failed":
        return _POD_FAILED
    return None


# ----------------------------------------------------------------- apps: Deployment, RS

_TEMPLATE_COLUMNS = [
    _wide("Containers", "Names of each container in the template."),
    _wide("Images", "Images referenced by each container in the template."),
    _wide("Selector", "Label selector for pods. Existing ReplicaSets whose pods are selected "
                      "by this will be the ones affected by this deployment."),
]

_DEPLOYMENT_COLUMNS = [
    NAME,
    _column("Ready", "Number of the pod with ready state"),
    _column("Up-to-date", "Total number of non-terminated pods targeted by this deployment "
                          "that have the desired template spec.", type="integer"),
    _column("Available", "Total number of available pods (ready for at least minReadySeconds) "
                         "targeted by this deployment.", type="integer"),
    AGE,
    *_TEMPLATE_COLUMNS,
]


def _template_cells(obj: Obj) -> Cells:
    names, images = _container_cells(_get(obj, "spec", "template", "spec", "containers", default=[]))
    return [names, images, _selector_text(_get(obj, "spec", "selector"))]


def _replicas(obj: Obj) -> int:
    value = _get(obj, "spec", "replicas")
    return 1 if value is None else int(value)


def _deployment_row(obj: Obj, now: dt.datetime) -> tuple[Cells, Cells]:
    status = _get(obj, "status", default={})
    return ([_name(obj), f"{int(status.get('readyReplicas') or 0)}/{_replicas(obj)}",
             int(status.get("updatedReplicas") or 0), int(status.get("availableReplicas") or 0),
             _age(obj, now)], _template_cells(obj))


_REPLICASET_COLUMNS = [
    NAME,
    _column("Desired", "Replicas is the number of desired replicas.", type="integer"),
    _column("Current", "Replicas is the most recently observed number of replicas.",
            type="integer"),
    _column("Ready", "The number of ready replicas for this replica set.", type="integer"),
    AGE,
    *_TEMPLATE_COLUMNS,
]


def _replicaset_row(obj: Obj, now: dt.datetime) -> tuple[Cells, Cells]:
    status = _get(obj, "status", default={})
    return ([_name(obj), _replicas(obj), int(status.get("replicas") or 0),
             int(status.get("readyReplicas") or 0), _age(obj, now)], _template_cells(obj))


# ----------------------------------------------------------------- Service, Endpoints

_SERVICE_COLUMNS = [
    NAME,
    _column("Type", "type determines how the Service is exposed."),
    _column("Cluster-IP", "clusterIP is the IP address of the service."),
    _column("External-IP", "externalIPs is a list of IP addresses for which nodes in the "
                           "cluster will also accept traffic for this service."),
    _column("Port(s)", "The list of ports that are exposed by this service."),
    AGE,
    _wide("Selector", "Route service traffic to pods with label keys and values matching "
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
    spec = _get(svc, "spec", default={})
    kind = spec.get("type") or "ClusterIP"
    external = list(spec.get("externalIPs") or [])
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external) if external else "<none>"
    if kind == "LoadBalancer":
        ingress = _get(svc, "status", "loadBalancer", "ingress", default=[])
        lb = [i.get("ip") or i.get("hostname") for i in ingress if i.get("ip") or i.get("hostname")]
        if lb or external:
            return ",".join(lb + external)
        return "<pending>"
    if kind == "ExternalName":
        return spec.get("externalName") or ""
    return "<unknown>"


def _service_row(svc: Obj, now: dt.datetime) -> tuple[Cells, Cells]:
    spec = _get(svc, "spec", default={})
    cluster_ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    return ([_name(svc), spec.get("type") or "ClusterIP", cluster_ips[0] if cluster_ips else "<none>",
             _service_external_ip(svc), service_ports(spec.get("ports") or []) or "<none>",
             _age(svc, now)], [selectors.format_labels(spec.get("selector"))])


_ENDPOINTS_COLUMNS = [
    NAME,
    _column("Endpoints", "The set of all endpoints is the union of all subsets."),
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
    return [_name(obj), format_endpoints(obj), _age(obj, now)], []


# ------------------------------------------------------- Namespace, ConfigMap, Secret, SA

_NAMESPACE_COLUMNS = [
    NAME,
    _column("Status", "The status of the namespace"),
    AGE,
]
_CONFIGMAP_COLUMNS = [NAME, _column("Data", "Number of data in configmap", type="integer"), AGE]
_SECRET_COLUMNS = [
    NAME,
    _column("Type", "The type of secret"),
    _column("Data", "Number of data in secret", type="integer"),
    AGE,
]
_SERVICEACCOUNT_COLUMNS = [
    NAME,
    _column("Secrets", "Secrets is a list of the secrets in the same namespace that pods "
                       "running using this ServiceAccount are allowed to use.", type="integer"),
    AGE,
]


def _namespace_row(obj: Obj, now: dt.datetime) -> tuple[Cells, Cells]:
    return [_name(obj), _get(obj, "status", "phase", default=""), _age(obj, now)], []


def _configmap_row(obj: Obj, now: dt.datetime) -> tuple[Cells, Cells]:
    count = len(obj.get("data") or {}) + len(obj.get("binaryData") or {})
    return [_name(obj), count, _age(obj, now)], []


def _secret_row(obj: Obj, now: dt.datetime) -> tuple[Cells, Cells]:
    return [_name(obj), obj.get("type") or "Opaque", len(obj.get("data") or {}), _age(obj, now)], []


def _serviceaccount_row(obj: Obj, now: dt.datetime) -> tuple[Cells, Cells]:
    return [_name(obj), len(obj.get("secrets") or []), _age(obj, now)], []


# ----------------------------------------------------------------------------- Event

_EVENT_COLUMNS = [
    _column("Last Seen", "The time at which the most recent occurrence of this event was "
                         "recorded."),
    _column("Type", "Type of this event (Normal, Warning), new types could be added in the "
                    "future"),
    _column("Reason", "This should be a short, machine understandable string that gives the "
                      "reason for the transition into the object's current status."),
    _column("Object", "The object that this event is about."),
    _wide("Subobject", "If referring to a piece of an object instead of an entire object, "
                       "this string should contain a valid JSON/Go field access statement."),
    _wide("Source", "The component reporting this event."),
    _column("Message", "A human-readable description of the status of this operation."),
    _wide("First Seen", "The time at which the event was first recorded."),
    _wide("Count", "The number of times this event has occurred.", type="integer"),
    {**NAME, "priority": 1},
]


def _event_row(obj: Obj, now: dt.datetime) -> tuple[Cells, Cells]:
    first = since(obj.get("firstTimestamp"), now) if obj.get("firstTimestamp") \
        else since(obj.get("eventTime"), now)
    last = since(obj.get("lastTimestamp"), now) if obj.get("lastTimestamp") else first
    count = int(obj.get("count") or 0)
    series = obj.get("series")
    if series:
        last = since(series.get("lastObservedTime"), now)
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
            [involved.get("fieldPath") or "", source_text, first, count, _name(obj)])


# ----------------------------------------------------------------------------- PVC

_PVC_COLUMNS = [
    NAME,
    _column("Status", "phase represents the current phase of PersistentVolumeClaim."),
    _column("Volume", "volumeName is the binding reference to the PersistentVolume backing "
                      "this claim."),
    _column("Capacity", "capacity represents the actual resources of the underlying volume."),
    _column("Access Modes", "accessModes contains the actual access modes the volume backing "
                            "the PVC has."),
    _column("StorageClass", "StorageClass of the pvc"),
    AGE,
    _wide("VolumeMode", "volumeMode defines what type of volume is required by the claim."),
]

_ACCESS_MODES = [("ReadWriteOnce", "RWO"), ("ReadOnlyMany", "ROX"), ("ReadWriteMany", "RWX"),
                 ("ReadWriteOncePod", "RWOP")]


def _pvc_row(obj: Obj, now: dt.datetime) -> tuple[Cells, Cells]:
    spec, status = _get(obj, "spec", default={}), _get(obj, "status", default={})
    phase = "Terminating" if _get(obj, "metadata", "deletionTimestamp") else status.get("phase") or ""
    capacity = modes = ""
    if spec.get("volumeName"):
        granted = status.get("accessModes") or []
        modes = ",".join(short for mode, short in _ACCESS_MODES if mode in granted)
        capacity = str(_get(status, "capacity", "storage", default=""))
    storage_class = spec.get("storageClassName") or _get(
        obj, "metadata", "annotations", "volume.beta.kubernetes.io/storage-class", default="")
    return ([_name(obj), phase, spec.get("volumeName") or "", capacity, modes, storage_class,
             _age(obj, now)], [spec.get("volumeMode") or "<unset>"])


# ----------------------------------------------------------------------------- table

_Printer = Callable[[Obj, dt.datetime], tuple[Cells, Cells]]


def _default_row(obj: Obj, now: dt.datetime) -> tuple[Cells, Cells]:
    return [_name(obj), _age(obj, now)], []


_PRINTERS: dict[str, tuple[list[dict[str, Any]], _Printer]] = {
    "Pod": (_POD_COLUMNS, _pod_row),
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
        cells = _interleave(base, extra, wide_positions) if wide else base
        row: dict[str, Any] = {"cells": cells}
        if kind == "Pod":
            conditions = _pod_conditions(obj)
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
        cells = row.get("cells") or []
        texts = [_cell_text(cells[i]) if i < len(cells) else "" for i in shown]
        if show_namespace:
            texts.insert(0, _get(row, "object", "metadata", "namespace", default=""))
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
