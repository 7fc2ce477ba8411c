"""Values the runtime reports: `ContainerStatus`, `LogLine`, `Stats`."""

from __future__ import annotations

import dataclasses
import datetime as dt

CREATED = "created"
RUNNING = "running"
EXITED = "exited"
UNKNOWN = "unknown"


@dataclasses.dataclass(frozen=True)
class ContainerStatus:
    id: str
    state: str
    """created | running | exited | unknown"""
    name: str | None = None
    pid: int | None = None
    exit_code: int | None = None
    created_at: dt.datetime | None = None
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    oom_killed: bool = False
    reason: str | None = None
    """Kubernetes-style: Completed, Error, OOMKilled (exited); why unknown otherwise."""
    image: str | None = None
    command: tuple[str, ...] = ()
    labels: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def running(self) -> bool:
        return self.state == RUNNING


@dataclasses.dataclass(frozen=True)
class LogLine:
    time: dt.datetime
    stream: str
    """stdout | stderr"""
    text: str
