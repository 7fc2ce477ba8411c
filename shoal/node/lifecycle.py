"""Pod lifecycle decisions (pure): what the kubelet decides, without doing any of it.

The pod worker (shoal.node.worker) observes the runtime and executes; every rule it
follows is a function here, unit-tested without runc (tests/node/test_lifecycle.py):

- restart policy: `should_restart` (Always / OnFailure / Never, init containers, native
  sidecars, containers killed because their spec changed);
- the CrashLoopBackOff gate: `run_times` gives the backoff table its inputs,
  `crashloop_message` / `backoff_event` the kubelet's wording;
- init-container order: `skips_init` (a pod that was initialized does not run completed
  init containers again) and `blocks_init` (the first unfinished one holds the rest);
- readiness: `is_ready`, `sidecar_done`, `holds_next` (a container the hooks want ready
  before the next one starts);
- the pod's end: `deadline_left` (activeDeadlineSeconds), `completion` (a Never/OnFailure
  pod whose regular containers ended stops its sidecars, then turns terminal);
- where handlers and probes connect: `handler_target`.

Nothing here awaits, reads a clock it is not given, or touches the disk.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from typing import Any, Mapping

from shoal import timestamps
from shoal.node import messages

Obj = Mapping[str, Any]
TERMINAL = ("Succeeded", "Failed")
DEFAULT_GRACE_SECONDS = 30.0


def field_path(pod: Obj, c: Obj) -> str:
    """The Event fieldPath of a container: `spec.containers{name}` or `spec.initContainers{name}`."""
    for key in ("initContainers", "containers"):
        if any(x.get("name") == c["name"] for x in pod["spec"].get(key) or []):
            return f"spec.{key}{{{c['name']}}}"
    return f"spec.containers{{{c['name']}}}"


def is_sidecar(c: Obj) -> bool:
    """A native sidecar: an init container with `restartPolicy: Always`."""
    return c.get("restartPolicy") == "Always"


def termination_grace(pod: Obj) -> float:
    return float(pod["spec"].get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS))


def deletion_grace(pod: Obj) -> float:
    """Grace of a deletion: the deletion's own, else the pod spec's."""
    grace = pod["metadata"].get("deletionGracePeriodSeconds")
    return float(grace) if grace is not None else termination_grace(pod)


def probe_grace(probe: Obj | None) -> float | None:
    """A liveness/startup probe's own terminationGracePeriodSeconds, if it sets one."""
    value = (probe or {}).get("terminationGracePeriodSeconds")
    return float(value) if value is not None else None


# -- restarts ------------------------------------------------------------------------------


def should_restart(*, policy: str, exit_code: int, init: bool, sidecar: bool, completing: bool,
                   spec_changed: bool) -> bool:
    """Whether an exited container runs again (the kubelet's restart rules).

    policy: the pod's restartPolicy; init: a classic init container; sidecar: a native
    sidecar (restarts until the pod completes); spec_changed: the node killed it because
    its definition changed (always restarted, with no backoff)."""
    if spec_changed:
        return True
    if init:
        return exit_code != 0 and policy != "Never"
    if sidecar:
        return not completing
    return policy == "Always" or (policy == "OnFailure" and exit_code != 0)


def run_times(started_at: dt.datetime | float | None, finished_at: dt.datetime | float | None,
              now: float) -> tuple[float, float]:
    """(finished at, ran for) in epoch seconds, the backoff table's inputs; a missing
    time counts as `now`."""
    def seconds(value: dt.datetime | float | None) -> float:
        if value is None:
            return now
        if isinstance(value, (int, float)):
            return float(value)
        return value.timestamp()

    finished = seconds(finished_at)
    return finished, finished - seconds(started_at)


def crashloop_message(delay: float, container: str, pod: Obj) -> str:
    meta = pod["metadata"]
    return (f"back-off {messages.fmt_delay(delay)} restarting failed container={container} "
            f"pod={meta['name']}_{meta['namespace']}({meta['uid']})")


def backoff_event(container: str, pod: Obj) -> str:
    meta = pod["metadata"]
    return f"Back-off restarting failed container {container} in pod {meta['name']}_{meta['namespace']}({meta['uid']})"


# -- init containers and readiness ----------------------------------------------------------


def was_initialized(pod: Obj, initialized_once: bool) -> bool:
    """Once initialized a pod stays so (as in Kubernetes): this worker saw it, or the
    status says so (a restarted daemon)."""
    return initialized_once or any(
        c.get("type") == "Initialized" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or [])


def skips_init(c: Obj, initialized: bool) -> bool:
    """A completed classic init container is not run again once the pod was initialized."""
    return initialized and not is_sidecar(c)


def blocks_init(done: bool, initialized: bool) -> bool:
    """An init container that is not done holds the ones after it (and the regular
    containers), unless the pod was initialized before (a restarting sidecar then does
    not hold the regular containers back)."""
    return not done and not initialized


def is_ready(started: bool, ready: bool) -> bool:
    return ready and started


def sidecar_done(started: bool, ready: bool, has_readiness: bool) -> bool:
    """A native sidecar lets the next container start once it started and, if it has a
    readiness probe, is ready."""
    return started and (ready or not has_readiness)


def holds_next(ready: bool, hook_holds: bool) -> bool:
    """The containers after this one wait (PodHooks.holds_start) until it is ready."""
    return hook_holds and not ready


# -- the pod's end ----------------------------------------------------------------------------


def deadline_left(start_time: str | None, active_deadline: float | None, now: float) -> float:
    """Seconds until activeDeadlineSeconds runs out (inf without a deadline)."""
    if not active_deadline or not start_time:
        return float("inf")
    return timestamps.parse_time(start_time).timestamp() + float(active_deadline) - now


class Completion(enum.Enum):
    RUNNING = "running"  # nothing to do
    STOP_SIDECARS = "stop-sidecars"  # regular containers ended: stop the sidecars first
    TERMINAL = "terminal"  # the phase is final


def completion(*, restart_policy: str, phase: str, initialized: bool, completing: bool) -> Completion:
    """A Never/OnFailure pod whose regular containers all finished: first its sidecars
    are stopped (then it is observed again), then its phase is final."""
    if initialized and restart_policy != "Always" and phase in TERMINAL:
        return Completion.TERMINAL if completing else Completion.STOP_SIDECARS
    return Completion.RUNNING


@dataclasses.dataclass(frozen=True)
class HandlerTarget:
    """Where httpGet/tcpSocket probes and lifecycle handlers connect."""

    host: str
    netns: str | None = None  # run inside this netns (against 127.0.0.1)


def handler_target(sandbox: Any, *, probe_in_netns: bool, pod_ip: str | None) -> HandlerTarget:
    """The pod IP from the host, or 127.0.0.1 inside the pod netns for pods the hooks
    say so (meshed pods, whose inbound traffic the sidecar captures)."""
    if sandbox is not None and probe_in_netns and str(sandbox.netns_path).startswith("/"):
        return HandlerTarget("127.0.0.1", sandbox.netns_path)
    return HandlerTarget(getattr(sandbox, "ip", None) or pod_ip or "127.0.0.1")
