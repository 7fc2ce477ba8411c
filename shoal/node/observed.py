"""What runs of one pod, read back from the runtime (the kubelet's PLEG relist).

`observe(containers, pod, root)` returns the pod's runtime containers by container name
part, newest instance (highest restart index) first; exited current and previous
instances carry their termination message. The disk is the truth: a restarted daemon
rebuilds the whole picture from here and adopts running containers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any, Mapping, Protocol

from shoal.node import messages, paths, status
from shoal.runtime import ContainerStatus

Obj = Mapping[str, Any]


@dataclasses.dataclass
class Observed:
    """One runtime container of this pod."""

    index: int
    container_id: str
    state: str  # created | running | exited | unknown
    exit_code: int | None
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    oom_killed: bool
    reason: str
    labels: dict
    message: str = ""  # termination message (read by `observe` for exited instances)

    def terminated(self) -> status.Terminated:
        code = self.exit_code if self.exit_code is not None else 137
        return status.Terminated(
            exit_code=code,
            reason=status.terminated_reason(code, self.oom_killed),
            started_at=self.started_at,
            finished_at=self.finished_at,
            container_id=self.container_id,
            message=self.message,
        )


ObservedPod = dict[str, list[Observed]]


class ContainerLister(Protocol):
    async def of_pod(self, pod_uid: str) -> list[ContainerStatus]: ...


async def observe(containers: ContainerLister, pod: Obj, root: Path) -> ObservedPod:
    """Runtime containers of `pod` by container name part, newest instance first."""
    uid = pod["metadata"]["uid"]
    out: ObservedPod = {}
    for st in await containers.of_pod(uid):
        key = paths.parse_container_id(st.id)
        if key is None or key.pod_uid != paths.uid_part(uid):
            continue
        out.setdefault(key.container, []).append(Observed(
            index=key.restart_count, container_id=st.id, state=st.state, exit_code=st.exit_code,
            started_at=st.started_at, finished_at=st.finished_at, oom_killed=bool(st.oom_killed),
            reason=st.reason or "", labels=dict(st.labels or {}),
        ))
    specs = {paths.name_part(c["name"]): c for c in list(pod["spec"].get("initContainers") or [])
             + list(pod["spec"].get("containers") or [])}
    for part, lst in out.items():
        lst.sort(key=lambda o: o.index, reverse=True)
        c = specs.get(part)
        for o in lst[:2]:
            if o.state == "exited" and c is not None:
                o.message = await asyncio.to_thread(
                    messages.termination_message, paths.termination_message_path(root, c["name"], o.index),
                    paths.log_path(root, c["name"], o.index),
                    policy=c.get("terminationMessagePolicy", "File"), exit_code=o.exit_code)
    return out


def instances_of(observed: ObservedPod, c: Obj) -> list[Observed]:
    return observed.get(paths.name_part(c["name"]), [])


def running_id(observed: ObservedPod, c: Obj) -> str | None:
    """The id of the container's current instance when it runs."""
    insts = instances_of(observed, c)
    return insts[0].container_id if insts and insts[0].state == "running" else None
