"""The cells of server-side tables: column definitions, kubectl's time rendering
(`human_duration`, `since`) and tolerant readers of stored objects (a missing or
wrongly typed field reads as a default, never an exception). Used by `shoal.api.printers`
and `shoal.api.podprint`. Pure; safe from any thread.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Iterable, Mapping

from shoal import timestamps
from shoal.api import errors, selectors

Obj = Mapping[str, Any]
Cells = list[Any]

_NAME_DOC = ("Name must be unique within a namespace. Is required when creating "
             "resources, although some resources may allow a client to request the "
             "generation of an appropriate name automatically.")
_AGE_DOC = ("CreationTimestamp is a timestamp representing the server time when this "
            "object was created.")


def column(name: str, description: str = "", *, type: str = "string", format: str = "",
            priority: int = 0) -> dict[str, Any]:
    return {"name": name, "type": type, "format": format, "description": description,
            "priority": priority}


NAME = column("Name", _NAME_DOC, format="name")
AGE = column("Age", _AGE_DOC)


def wide(name: str, description: str, *, type: str = "string") -> dict[str, Any]:
    return column(name, description, type=type, priority=1)


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


parse_time = timestamps.parse_time_or_none
"""An RFC 3339 (micro)timestamp as an aware datetime; None when absent or invalid."""


def since(value: Any, now: dt.datetime) -> str:
    """translateTimestampSince: '<unknown>' for a missing timestamp."""
    moment = parse_time(value)
    if moment is None:
        return "<unknown>"
    return human_duration((now - moment).total_seconds())


# ----------------------------------------------------------------------- small readers


def get(obj: Any, *keys: str, default: Any = None) -> Any:
    for key in keys:
        if not isinstance(obj, Mapping):
            return default
        obj = obj.get(key)
    return default if obj is None else obj


def name_of(obj: Obj) -> str:
    return get(obj, "metadata", "name", default="")


def age(obj: Obj, now: dt.datetime) -> str:
    return since(get(obj, "metadata", "creationTimestamp"), now)


def container_cells(containers: Iterable[Mapping]) -> tuple[str, str]:
    containers = list(containers)
    return (",".join(c.get("name", "") for c in containers),
            ",".join(c.get("image", "") for c in containers))


def selector_text(spec: Any) -> str:
    try:
        return str(selectors.selector_from_spec(spec)) if spec is not None else ""
    except errors.StatusError:  # a stored bad selector prints as kubectl does; no failure
        return "<invalid>"
