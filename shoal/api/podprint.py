"""Pod rows of server-side tables: kubectl's STATUS reasoning (`pod_status`: Init:1/2,
CrashLoopBackOff, Completed, Terminating, ...), READY, RESTARTS with "(5m ago)", and the
wide columns. Follows `k8s.io/kubernetes/pkg/printers/internalversion`'s printPod.
Pure; safe from any thread.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Iterable, Mapping

from shoal.api import printcells as cells

Obj = Mapping[str, Any]
Cells = list[Any]

# ----------------------------------------------------------------------------- Pod

COLUMNS = [
    cells.NAME,
    cells.column("Ready", "The aggregate readiness state of this pod for accepting traffic."),
    cells.column("Status", "The aggregate status of the containers in this pod."),
    cells.column("Restarts", "The number of times the containers in this pod have been restarted "
                        "and when the last container in this pod has restarted."),
    cells.AGE,
    cells.wide("IP", "IP address allocated to the pod. Routable at least within the cluster."),
    cells.wide("Node", "NodeName indicates in which node this pod is scheduled."),
    cells.wide("Nominated Node", "nominatedNodeName is set only when this pod preempts other pods "
                            "on the node."),
    cells.wide("Readiness Gates", "If specified, all readiness gates will be evaluated for pod "
                             "readiness."),
]

_POD_SUCCEEDED = [{"type": "Completed", "status": "True", "reason": "Succeeded",
                   "message": "The pod has completed successfully."}]
_POD_FAILED = [{"type": "Completed", "status": "True", "reason": "Failed",
                "message": "The pod failed."}]


def pod_status(pod: Obj, now: dt.datetime | None = None) -> tuple[str, str, str]:
    """(READY, STATUS, RESTARTS) exactly as kubectl computes them (printPod)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    spec, status = cells.get(pod, "spec", default={}), cells.get(pod, "status", default={})
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
        finished = cells.parse_time(cells.get(container, "lastState", "terminated", "finishedAt"))
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
                last_restart, cells.parse_time(cells.get(container, "lastState", "terminated", "finishedAt")))
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

    deleting = cells.get(pod, "metadata", "deletionTimestamp") is not None
    if deleting and status.get("reason") == "NodeLost":
        reason = "Unknown"
    elif deleting and phase not in ("Succeeded", "Failed"):
        reason = "Terminating"

    restarts_text = str(restarts)
    if restarts and last_restart is not None:
        restarts_text = f"{restarts} ({cells.human_duration((now - last_restart).total_seconds())} ago)"
    return f"{ready}/{total}", reason, restarts_text


def _later(a: dt.datetime | None, b: dt.datetime | None) -> dt.datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def _condition_true(conditions: Iterable[Mapping], type_: str) -> bool:
    return any(c.get("type") == type_ and c.get("status") == "True" for c in conditions)


def row(pod: Obj, now: dt.datetime) -> tuple[Cells, Cells]:
    ready, reason, restarts = pod_status(pod, now)
    spec, status = cells.get(pod, "spec", default={}), cells.get(pod, "status", default={})
    pod_ips = status.get("podIPs") or []
    ip = (pod_ips[0].get("ip") if pod_ips else status.get("podIP")) or "<none>"
    gates = spec.get("readinessGates") or []
    gates_text = "<none>"
    if gates:
        conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
        true_count = sum(1 for g in gates if conditions.get(g.get("conditionType")) == "True")
        gates_text = f"{true_count}/{len(gates)}"
    return ([cells.name_of(pod), ready, reason, restarts, cells.age(pod, now)],
            [ip, spec.get("nodeName") or "<none>", status.get("nominatedNodeName") or "<none>",
             gates_text])


def conditions_of(pod: Obj) -> list[dict] | None:
    phase = cells.get(pod, "status", "phase")
    if phase == "Succeeded":
        return _POD_SUCCEEDED
    if phase == "Failed":
        return _POD_FAILED
    return None
