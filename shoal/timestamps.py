"""Kubernetes timestamps: one home for formatting and parsing RFC 3339 times.

Kubernetes writes `metav1.Time` as RFC 3339 in UTC with second precision
(`2026-12-04T13:06:23Z`) and `metav1.MicroTime` with microseconds
(`2026-12-04T13:06:23.123456Z`); CRI logs and some clients send nanoseconds or an
offset. Every layer (images, runtime, node, controllers, api, cli) formats and parses
through these functions, so the same instant is written one way everywhere.
"""

from __future__ import annotations

import datetime as dt
import time

UTC = dt.timezone.utc


def _as_datetime(when: dt.datetime | float | None) -> dt.datetime:
    if when is None:
        return dt.datetime.now(UTC)
    if isinstance(when, dt.datetime):
        return when if when.tzinfo else when.replace(tzinfo=UTC)
    return dt.datetime.fromtimestamp(when, UTC)


def format_time(when: dt.datetime | float | None = None) -> str:
    """metav1.Time: `YYYY-MM-DDTHH:MM:SSZ` in UTC, seconds truncated. `when` is an
    aware (or UTC-naive) datetime, seconds since the epoch, or None for now."""
    value = _as_datetime(when)
    if not isinstance(when, dt.datetime) and when is not None:
        value = dt.datetime.fromtimestamp(int(when), UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_micro_time(when: dt.datetime | float | None = None) -> str:
    """metav1.MicroTime: `YYYY-MM-DDTHH:MM:SS.ffffffZ` in UTC."""
    return _as_datetime(when).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now() -> str:
    """The current time as metav1.Time."""
    return format_time(time.time())


def parse_time(text: str) -> dt.datetime:
    """An RFC 3339 timestamp (`Z` or an offset, any fraction up to nanoseconds) as an
    aware datetime in UTC; a naive one is taken as UTC. Raises ValueError when it is
    not a timestamp."""
    if not isinstance(text, str) or len(text) < 19:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    value = text.strip()
    if value[-1] in "Zz":
        value = value[:-1] + "+00:00"
    head, zone = value[:19], value[19:]
    fraction = ""
    if zone.startswith("."):
        digits = len(zone) - len(zone[1:].lstrip("0123456789"))
        fraction, zone = zone[1:digits], zone[digits:]
        fraction = "." + fraction[:6].ljust(6, "0") if fraction else ""
    parsed = dt.datetime.fromisoformat(head.replace("t", "T") + fraction + zone)
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def parse_time_or_none(text: object) -> dt.datetime | None:
    """`parse_time`, but None for None, '' or anything that is not a timestamp."""
    if not text or not isinstance(text, str):
        return None
    try:
        return parse_time(text)
    except ValueError:
        return None


def epoch_seconds(text: str | None) -> float | None:
    """Seconds since the epoch of a timestamp; None for None or ''."""
    return parse_time(text).timestamp() if text else None
