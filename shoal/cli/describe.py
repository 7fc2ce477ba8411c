"""`shoal describe` text, in kubectl's layout: aligned `Key:  value` lines, nested
sections indented by two spaces, and the object's Events last."""

from __future__ import annotations

from typing import Any

from shoal.api.kinds import ResourceType

Obj = dict[str, Any]


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def kv(self, key: str, value: Any, indent: int = 0) -> None:
        pad = " " * indent
        text = "<none>" if value in (None, "", [], {}) else str(value)
        self.lines.append(f"{pad}{key + ':':<{max(20 - indent, len(key) + 2)}}{text}")

    def line(self, text: str, indent: int = 0) -> None:
        self.lines.append(" " * indent + text)

    def mapping(self, key: str, data: dict[str, Any] | None, indent: int = 0) -> None:
        items = sorted((data or {}).items())
        if not items:
            self.kv(key, None, indent)
            return
        first, *rest = items
        self.kv(key, f"{first[0]}={first[1]}", indent)
        for k, v in rest:
            self.line(f"{'':<{max(20 - indent, len(key) + 2)}}{k}={v}", indent)


def _state_text(state: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
    for name in ("running", "waiting", "terminated"):
        if state and name in state:
            return name.capitalize(), state[name] or {}
    return "Waiting", {}


def _describe_pod(w: _Writer, pod: Obj) -> None:
    spec, status = pod.get("spec", {}), pod.get("status", {})
    w.kv("Service Account", spec.get("serviceAccountName"))
    w.kv("Node", spec.get("nodeName"))
    w.kv("Start Time", status.get("startTime"))
    w.kv("Status", "Terminating" if pod["metadata"].get("deletionTimestamp") else status.get("phase"))
    w.kv("IP", status.get("podIP"))
    statuses = {c.get("name"): c for c in status.get("containerStatuses", []) or []}
    for section, key in (("Init Containers", "initContainers"), ("Containers", "containers")):
        containers = spec.get(key) or []
        if not containers:
            continue
        w.line(f"{section}:")
        if key == "initContainers":
            statuses_here = {c.get("name"): c for c in status.get("initContainerStatuses", []) or []}
        else:
            statuses_here = statuses
        for c in containers:
            cs = statuses_here.get(c["name"], {})
            w.line(f"{c['name']}:", 2)
            w.kv("Container ID", cs.get("containerID"), 4)
            w.kv("Image", c.get("image"), 4)
            ports = ", ".join(f"{p.get('containerPort')}/{p.get('protocol', 'TCP')}"
                              for p in c.get("ports") or [])
            w.kv("Port", ports, 4)
            if c.get("command"):
                w.kv("Command", " ".join(c["command"]), 4)
            if c.get("args"):
                w.kv("Args", " ".join(c["args"]), 4)
            state, detail = _state_text(cs.get("state"))
            w.kv("State", state, 4)
            for k in ("reason", "message", "exitCode", "startedAt", "finishedAt"):
                if k in detail:
                    w.kv(k[0].upper() + k[1:], detail[k], 6)
            if cs.get("lastState"):
                last, ldetail = _state_text(cs["lastState"])
                w.kv("Last State", last, 4)
                for k in ("reason", "exitCode", "startedAt", "finishedAt"):
                    if k in ldetail:
                        w.kv(k[0].upper() + k[1:], ldetail[k], 6)
            w.kv("Ready", cs.get("ready", False), 4)
            w.kv("Restart Count", cs.get("restartCount", 0), 4)
            res = c.get("resources") or {}
            for kind in ("limits", "requests"):
                if res.get(kind):
                    w.line(f"{kind.capitalize()}:", 4)
                    for rk, rv in res[kind].items():
                        w.kv(rk, rv, 6)
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                if c.get(probe):
                    w.kv(probe.replace("Probe", "").capitalize(), _probe_text(c[probe]), 4)
            env = c.get("env") or []
            if env:
                w.line("Environment:", 4)
                for e in env:
                    value = e.get("value")
                    if value is None and e.get("valueFrom"):
                        value = f"<set from {next(iter(e['valueFrom']))}>"
                    w.kv(e["name"], value, 6)
    conditions = status.get("conditions") or []
    if conditions:
        w.line("Conditions:")
        w.line(f"{'Type':<20}{'Status'}", 2)
        for cond in conditions:
            w.line(f"{cond.get('type', ''):<20}{cond.get('status', '')}", 2)
    volumes = spec.get("volumes") or []
    if volumes:
        w.line("Volumes:")
        for v in volumes:
            vtype = next((k for k in v if k != "name"), "")
            w.line(f"{v['name']}:", 2)
            w.kv("Type", vtype, 4)
    w.kv("QoS Class", status.get("qosClass"))


def _probe_text(probe: dict[str, Any]) -> str:
    if "httpGet" in probe:
        h = probe["httpGet"]
        how = f"http-get {h.get('scheme', 'HTTP').lower()}://:{h.get('port')}{h.get('path', '/')}"
    elif "tcpSocket" in probe:
        how = f"tcp-socket :{probe['tcpSocket'].get('port')}"
    elif "exec" in probe:
        how = "exec [" + " ".join(probe["exec"].get("command", [])) + "]"
    elif "grpc" in probe:
        how = f"grpc <pod>:{probe['grpc'].get('port')}"
    else:
        how = "unknown"
    return (f"{how} delay={probe.get('initialDelaySeconds', 0)}s "
            f"timeout={probe.get('timeoutSeconds', 1)}s period={probe.get('periodSeconds', 10)}s "
            f"#success={probe.get('successThreshold', 1)} #failure={probe.get('failureThreshold', 3)}")


def _describe_workload(w: _Writer, obj: Obj) -> None:
    spec, status = obj.get("spec", {}), obj.get("status", {})
    sel = (spec.get("selector") or {}).get("matchLabels") or {}
    w.kv("Selector", ",".join(f"{k}={v}" for k, v in sorted(sel.items())))
    w.kv("Replicas", f"{spec.get('replicas', 0)} desired | {status.get('updatedReplicas', 0)} updated | "
         f"{status.get('replicas', 0)} total | {status.get('availableReplicas', 0)} available | "
         f"{status.get('unavailableReplicas', 0)} unavailable")
    strategy = spec.get("strategy") or {}
    if strategy:
        w.kv("StrategyType", strategy.get("type"))
        ru = strategy.get("rollingUpdate") or {}
        if ru:
            w.kv("RollingUpdateStrategy",
                 f"{ru.get('maxUnavailable')} max unavailable, {ru.get('maxSurge')} max surge")
    template = spec.get("template") or {}
    w.line("Pod Template:")
    w.mapping("Labels", (template.get("metadata") or {}).get("labels"), 2)
    for c in (template.get("spec") or {}).get("containers") or []:
        w.line(f"{c.get('name')}:", 2)
        w.kv("Image", c.get("image"), 4)
    conditions = status.get("conditions") or []
    if conditions:
        w.line("Conditions:")
        w.line(f"{'Type':<16}{'Status':<8}Reason", 2)
        for cond in conditions:
            w.line(f"{cond.get('type', ''):<16}{cond.get('status', ''):<8}{cond.get('reason', '')}", 2)


def _describe_service(w: _Writer, svc: Obj) -> None:
    spec = svc.get("spec", {})
    sel = spec.get("selector") or {}
    w.kv("Selector", ",".join(f"{k}={v}" for k, v in sorted(sel.items())))
    w.kv("Type", spec.get("type"))
    w.kv("IP", spec.get("clusterIP"))
    for p in spec.get("ports") or []:
        w.kv("Port", f"{p.get('name', '<unset>')}  {p.get('port')}/{p.get('protocol', 'TCP')}")
        w.kv("TargetPort", f"{p.get('targetPort')}/{p.get('protocol', 'TCP')}")
        if p.get("nodePort"):
            w.kv("NodePort", f"{p.get('name', '<unset>')}  {p['nodePort']}/{p.get('protocol', 'TCP')}")


def describe_object(rt: ResourceType, obj: Obj, events: list[Obj]) -> str:
    w = _Writer()
    meta = obj.get("metadata", {})
    w.kv("Name", meta.get("name"))
    if rt.namespaced:
        w.kv("Namespace", meta.get("namespace"))
    w.mapping("Labels", meta.get("labels"))
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                   if k != "kubectl.kubernetes.io/last-applied-configuration"}
    w.mapping("Annotations", annotations)
    w.kv("CreationTimestamp", meta.get("creationTimestamp"))
    if meta.get("deletionTimestamp"):
        w.kv("DeletionTimestamp", meta["deletionTimestamp"])
    owners = meta.get("ownerReferences") or []
    if owners:
        w.kv("Controlled By", f"{owners[0].get('kind')}/{owners[0].get('name')}")
    if rt.kind == "Pod":
        _describe_pod(w, obj)
    elif rt.kind in ("Deployment", "ReplicaSet"):
        _describe_workload(w, obj)
    elif rt.kind == "Service":
        _describe_service(w, obj)
    elif rt.kind in ("ConfigMap", "Secret"):
        w.line("Data")
        w.line("====")
        for k, v in sorted((obj.get("data") or {}).items()):
            shown = f"{len(v)} bytes" if rt.kind == "Secret" else v
            w.line(f"{k}:")
            w.line(str(shown))
    elif "status" in obj:
        w.kv("Status", obj["status"].get("phase"))
    events = sorted(events, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
    if events:
        w.line("Events:")
        w.line(f"{'Type':<9}{'Reason':<20}{'Count':<7}{'From':<22}Message", 2)
        w.line(f"{'----':<9}{'------':<20}{'-----':<7}{'----':<22}-------", 2)
        for e in events:
            source = (e.get("source") or {}).get("component") or e.get("reportingComponent") or ""
            w.line(f"{e.get('type', ''):<9}{e.get('reason', ''):<20}{e.get('count', 1)!s:<7}"
                   f"{source:<22}{e.get('message', '')}", 2)
    else:
        w.kv("Events", None)
    return "\n".join(w.lines)
