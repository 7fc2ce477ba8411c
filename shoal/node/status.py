"""Pod status from what the worker observed (pure): phase, conditions, container states.

The worker describes each container as a `ContainerView` (its current instance's runtime
state, the previous instance's end, the reason it waits, probe verdicts); this module turns
views into Kubernetes' `containerStatuses` entries, the pod phase (the kubelet's
`getPhase`) and the conditions. `merge_conditions` keeps lastTransitionTime of conditions
whose status did not change, so an unchanged pod produces an identical status and the
worker writes nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any, Mapping, Sequence

from shoal import timestamps
from shoal.api.builtin import podstrategy

Obj = dict[str, Any]


def rfc3339(when: dt.datetime | float | None) -> str | None:
    """metav1.Time of `when`; None stays None (a state not reached)."""
    return None if when is None else timestamps.format_time(when)


@dataclasses.dataclass
class Terminated:
    exit_code: int
    reason: str
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    container_id: str
    message: str = ""
    signal: int | None = None

    def to_state(self) -> Obj:
        state: Obj = {"exitCode": self.exit_code, "reason": self.reason,
                      "startedAt": rfc3339(self.started_at), "finishedAt": rfc3339(self.finished_at),
                      "containerID": f"shoal://{self.container_id}"}
        if self.message:
            state["message"] = self.message
        if self.signal:
            state["signal"] = self.signal
        return {"terminated": state}


def terminated_reason(exit_code: int, oom_killed: bool) -> str:
    if oom_killed:
        return "OOMKilled"
    return "Completed" if exit_code == 0 else "Error"


@dataclasses.dataclass
class ContainerView:
    """What the worker knows of one container of the pod."""

    name: str
    image: str
    image_id: str = ""
    restart_count: int = 0
    container_id: str | None = None
    running_since: dt.datetime | None = None  # current instance running
    terminated: Terminated | None = None  # current instance ended
    last: Terminated | None = None  # the instance before
    waiting_reason: str | None = None  # why no instance runs (overrides terminated)
    waiting_message: str = ""
    ready: bool = False
    started: bool = False
    sidecar: bool = False

    def to_status(self) -> Obj:
        if self.waiting_reason:
            waiting: Obj = {"reason": self.waiting_reason}
            if self.waiting_message:
                waiting["message"] = self.waiting_message
            state: Obj = {"waiting": waiting}
        elif self.running_since is not None:
            state = {"running": {"startedAt": rfc3339(self.running_since)}}
        elif self.terminated is not None:
            state = self.terminated.to_state()
        else:
            state = {"waiting": {"reason": "ContainerCreating"}}
        out: Obj = {
            "name": self.name,
            "state": state,
            "lastState": self.last.to_state() if self.last else {},
            "ready": self.ready,
            "restartCount": self.restart_count,
            "image": self.image,
            "imageID": self.image_id,
            "started": self.started,
        }
        if self.container_id:
            out["containerID"] = f"shoal://{self.container_id}"
        return out


def pod_phase(restart_policy: str, init_views: Sequence[ContainerView], views: Sequence[ContainerView],
              *, initialized: bool, init_failed: bool) -> str:
    """The kubelet's getPhase, with native sidecars (init views with sidecar=True)."""
    if init_failed:
        return "Failed"
    if not initialized:
        return "Pending"
    running = waiting = stopped = succeeded = 0
    for v in views:
        if v.waiting_reason or (v.running_since is None and v.terminated is None):
            if v.last is not None:
                stopped += 1
            else:
                waiting += 1
        elif v.running_since is not None:
            running += 1
        elif v.terminated is not None:
            stopped += 1
            if v.terminated.exit_code == 0:
                succeeded += 1
    if waiting:
        return "Pending"
    if running:
        return "Running"
    if stopped:
        if restart_policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        if restart_policy == "Never":
            return "Failed"
        return "Running"
    return "Pending"


def conditions(*, initialized: bool, containers_ready: bool, pod_scheduled: bool = True,
               terminal: bool = False) -> list[Obj]:
    ready = containers_ready and not terminal
    reason_cr = None if containers_ready else "ContainersNotReady"

    def cond(kind: str, value: bool, reason: str | None = None) -> Obj:
        c: Obj = {"type": kind, "status": "True" if value else "False"}
        if reason and not value:
            c["reason"] = reason
        return c

    return [
        cond("Initialized", initialized, "ContainersNotInitialized"),
        cond("Ready", ready, "PodCompleted" if terminal else reason_cr),
        cond("ContainersReady", containers_ready and not terminal, "PodCompleted" if terminal else reason_cr),
        cond("PodScheduled", pod_scheduled),
    ]


def merge_conditions(new: list[Obj], old: Sequence[Mapping[str, Any]] | None, now: str) -> list[Obj]:
    """lastTransitionTime kept for conditions whose status is unchanged, else `now`."""
    previous = {c.get("type"): c for c in old or []}
    out = []
    for c in new:
        prev = previous.get(c["type"])
        c = dict(c)
        if prev and prev.get("status") == c["status"] and prev.get("lastTransitionTime"):
            c["lastTransitionTime"] = prev["lastTransitionTime"]
        else:
            c["lastTransitionTime"] = now
        out.append(c)
    return out


qos_class = podstrategy.qos_class
"""The pod's QoS class; one home with the API server's (`shoal.api.builtin.podstrategy`)."""
