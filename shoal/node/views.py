"""Container views and the pod status body from what the worker observed (pure).

`status.py` turns one `ContainerView` into a `containerStatuses` entry and computes phase
and conditions; this module builds the views the worker did not drive itself (waiting
placeholders, a terminal pod's final states) and assembles the whole `status` object,
including the test `unchanged` that keeps an idle pod from writing anything.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from shoal.node import lifecycle, status
from shoal.node.observed import Observed, ObservedPod, instances_of

Obj = dict[str, Any]


def _old_statuses(pod: Mapping[str, Any]) -> list[Obj]:
    st = pod.get("status") or {}
    return list(st.get("containerStatuses") or []) + list(st.get("initContainerStatuses") or [])


def base_view(pod: Mapping[str, Any], c: Obj, insts: list[Observed], sidecar: bool,
              image_id: str | None) -> status.ContainerView:
    """The view every state starts from: image, restart count, the previous instance."""
    if image_id is None:  # adopted: the image resolved when the container was made
        image_id = next((cs.get("imageID", "") for cs in _old_statuses(pod) if cs.get("name") == c["name"]), "")
    view = status.ContainerView(name=c["name"], image=c.get("image", ""), image_id=image_id, sidecar=sidecar)
    if insts:
        view.restart_count = insts[0].index
        if len(insts) > 1 and insts[1].state == "exited":
            view.last = insts[1].terminated()
    return view


def placeholder(pod: Mapping[str, Any], c: Obj, insts: list[Observed], reason: str, image_id: str | None,
                sidecar: bool = False) -> status.ContainerView:
    """A container the worker does not drive now: its end if it ended, else waiting."""
    view = base_view(pod, c, insts, sidecar, image_id)
    if insts and insts[0].state == "exited":
        view.terminated = insts[0].terminated()
    else:
        view.waiting_reason = reason
    return view


def all_containers(pod: Mapping[str, Any]) -> list[Obj]:
    spec = pod["spec"]
    return list(spec.get("initContainers") or []) + list(spec["containers"])


def waiting_views(pod: Mapping[str, Any], observed: ObservedPod, reason: str, message: str,
                  image_ids: Mapping[str, str]) -> list[status.ContainerView]:
    """Every container waiting for the same reason (sandbox or volumes not ready)."""
    views = []
    for c in all_containers(pod):
        v = placeholder(pod, c, instances_of(observed, c), reason, image_ids.get(c["name"]))
        v.waiting_message = message
        views.append(v)
    return views


def terminal_views(pod: Mapping[str, Any], observed: ObservedPod,
                   image_ids: Mapping[str, str]) -> list[status.ContainerView]:
    """A finished pod's containers: their last end, from the runtime or the old status."""
    old = {s["name"]: s for s in (pod.get("status") or {}).get("containerStatuses") or []}
    views = []
    for c in all_containers(pod):
        insts = instances_of(observed, c)
        v = base_view(pod, c, insts, lifecycle.is_sidecar(c), image_ids.get(c["name"]))
        if insts and insts[0].state == "exited":
            v.terminated = insts[0].terminated()
            v.container_id = insts[0].container_id
        elif c["name"] in old and "terminated" in (old[c["name"]].get("state") or {}):
            t = old[c["name"]]["state"]["terminated"]
            v.terminated = status.Terminated(t.get("exitCode", 0), t.get("reason", ""), None, None,
                                             (t.get("containerID") or "").removeprefix("shoal://"))
        else:
            v.waiting_reason = "ContainerCreating"
        views.append(v)
    return views


def pod_status(pod: Mapping[str, Any], views: Sequence[status.ContainerView], *, phase: str, initialized: bool,
               n_init: int, host_ip: str, start_time: str | None, pod_ip: str | None,
               terminal_reason: tuple[str, str] | None, now: str) -> Obj:
    """The pod's whole `status` object."""
    spec = pod["spec"]
    init_views, main_views = list(views[:n_init]), list(views[n_init:])
    terminal = phase in lifecycle.TERMINAL
    containers_ready = bool(main_views) and all(v.ready for v in main_views)
    old = pod.get("status") or {}
    new: Obj = {
        "phase": phase,
        "conditions": status.merge_conditions(
            status.conditions(initialized=initialized or terminal, containers_ready=containers_ready,
                              terminal=terminal),
            old.get("conditions"), now),
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "startTime": start_time,
        "containerStatuses": [v.to_status() for v in main_views],
        "qosClass": status.qos_class(spec),
    }
    if init_views:
        new["initContainerStatuses"] = [v.to_status() for v in init_views]
    if terminal_reason is not None:
        new["reason"], new["message"] = terminal_reason
    elif old.get("reason"):
        new["reason"], new["message"] = old.get("reason"), old.get("message")
    ip = pod_ip or old.get("podIP")
    if ip:
        new["podIP"] = ip
        new["podIPs"] = [{"ip": ip}]
    return new


def unchanged(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """True when writing `new` would change nothing the node owns."""
    comparable = {k: old.get(k) for k in new}
    return comparable == new and not (set(old) - set(new) - {"message", "reason", "nominatedNodeName"})
