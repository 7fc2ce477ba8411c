"""CronJob schedules: the grammar Kubernetes accepts, and the times a schedule fires.

Kubernetes parses `spec.schedule` with robfig/cron's standard parser: exactly five fields
(minute hour day-of-month month day-of-week), each a comma list of `*`, `?`, a value or
a range `a-b`, optionally stepped (`*/5`, `1-30/2`, `7/10`); month and day-of-week also
take names (JAN..DEC, SUN..SAT, any case); the descriptors `@yearly`/`@annually`,
`@monthly`, `@weekly`, `@daily`/`@midnight`, `@hourly` and `@every <duration>`; and an
optional `TZ=Zone ` or `CRON_TZ=Zone ` prefix. `parse` checks that grammar itself (so
croniter's extensions — seconds fields, `L`, `W`, `#` — are refused as Kubernetes refuses
them) and words its errors as robfig does ("expected exactly 5 fields, found 1: [bad]").
The times are computed by croniter (a maintained parser; the `croniter` package), in the
schedule's time zone, so daylight-saving changes follow the zone's rules.

Pure: no I/O besides reading the system time-zone database; safe from any thread.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import zoneinfo

from croniter import croniter

_DESCRIPTORS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_FIELDS = (("minute", 0, 59, {}), ("hour", 0, 23, {}), ("day of month", 1, 31, {}),
           ("month", 1, 12, {m: i + 1 for i, m in enumerate(
               "jan feb mar apr may jun jul aug sep oct nov dec".split())}),
           ("day of week", 0, 6, {d: i for i, d in enumerate(
               "sun mon tue wed thu fri sat".split())}))
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class ScheduleError(ValueError):
    """The schedule is not valid; the message is robfig/cron's wording."""


@dataclasses.dataclass(frozen=True)
class Schedule:
    """A parsed schedule: a cron expression or a fixed interval, and its own time zone
    (from a TZ=/CRON_TZ= prefix) if it names one."""

    expression: str | None
    """Five cron fields as croniter reads them (None for `@every`)."""
    every: float | None = None
    """Seconds between runs of an `@every` schedule (whole seconds, at least 1)."""
    zone: str | None = None
    """The zone named by a TZ= or CRON_TZ= prefix."""

    def next_after(self, after: dt.datetime, zone: dt.tzinfo | None = None) -> dt.datetime:
        """The first time strictly after `after` (aware) the schedule fires, evaluated in
        the prefix's zone, else `zone`, else UTC."""
        local = after.astimezone(self._zone(zone))
        if self.every is not None:
            # robfig's ConstantDelaySchedule: after + delay, rounded down to the second
            step = dt.timedelta(seconds=self.every)
            return (local + step - dt.timedelta(microseconds=local.microsecond))
        return croniter(self.expression, local).get_next(dt.datetime)

    def last_at_or_before(self, moment: dt.datetime,
                          zone: dt.tzinfo | None = None) -> dt.datetime | None:
        """The latest firing time <= `moment` (None for `@every`, which has no fixed
        grid: callers step forward with `next_after`)."""
        if self.every is not None:
            return None
        local = moment.astimezone(self._zone(zone))
        probe = local + dt.timedelta(microseconds=1)
        return croniter(self.expression, probe).get_prev(dt.datetime)

    def _zone(self, zone: dt.tzinfo | None) -> dt.tzinfo:
        if self.zone:
            return load_zone(self.zone)
        return zone or dt.timezone.utc


def has_zone_prefix(schedule: str) -> bool:
    return schedule.startswith(("TZ=", "CRON_TZ="))


def parse(schedule: str) -> Schedule:
    """Parse a CronJob schedule; raises ScheduleError with robfig's wording."""
    text = schedule.strip()
    zone = None
    if has_zone_prefix(text):
        prefix, _, text = text.partition(" ")
        zone = prefix.split("=", 1)[1]
        try:
            load_zone(zone)
        except ScheduleError as exc:
            raise ScheduleError(f"provided bad location {zone}: {exc}") from None
        text = text.strip()
    if text.startswith("@"):
        if text.startswith("@every "):
            seconds = parse_go_duration(text[len("@every "):].strip())
            return Schedule(None, every=max(1.0, float(int(seconds))), zone=zone)
        if text not in _DESCRIPTORS:
            raise ScheduleError(f"unrecognized descriptor: {text}")
        return Schedule(_DESCRIPTORS[text], zone=zone)
    fields = text.split()
    if len(fields) != 5:
        raise ScheduleError(f"expected exactly 5 fields, found {len(fields)}: [{' '.join(fields)}]")
    parsed = [_check_field(value, *spec) for value, spec in zip(fields, _FIELDS)]
    return Schedule(" ".join(parsed), zone=zone)


def _check_field(field: str, what: str, low: int, high: int, names: dict[str, int]) -> str:
    """One field: checked against robfig's grammar and bounds, returned in numbers."""
    out = []
    for part in field.split(","):
        rng, slash, step = part.partition("/")
        if slash:
            if not step.isdigit():
                raise ScheduleError(f"failed to parse int from {step}: strconv.Atoi: "
                                    f'parsing "{step}": invalid syntax')
            if int(step) == 0:
                raise ScheduleError(f"step of range should be a positive number: {part}")
        if rng in ("*", "?"):
            start, end = low, high
            text = "*"
        else:
            a, dash, b = rng.partition("-")
            start = _value(a, names)
            end = _value(b, names) if dash else (high if slash else start)
            if start < low:
                raise ScheduleError(f"beginning of range ({start}) below minimum ({low}): {part}")
            if end > high:
                raise ScheduleError(f"end of range ({end}) above maximum ({high}): {part}")
            if start > end:
                raise ScheduleError(f"beginning of range ({start}) beyond end of range "
                                    f"({end}): {part}")
            text = f"{start}-{end}" if (dash or slash) else str(start)
        out.append(f"{text}/{int(step)}" if slash else text)
    return ",".join(out)


def _value(token: str, names: dict[str, int]) -> int:
    lowered = token.lower()
    if lowered in names:
        return names[lowered]
    if not token.isdigit():
        raise ScheduleError(f"failed to parse int from {token}: strconv.Atoi: "
                            f'parsing "{token}": invalid syntax')
    return int(token)


def parse_go_duration(text: str) -> float:
    """Seconds in a Go duration string ("1h30m", "90s"); ScheduleError if malformed."""
    if not text:
        raise ScheduleError('failed to parse duration @every : time: invalid duration ""')
    pos, total = 0, 0.0
    while pos < len(text):
        m = _DURATION_PART.match(text, pos)
        if m is None:
            raise ScheduleError(f'failed to parse duration @every {text}: time: invalid '
                                f'duration "{text}"')
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    return total


def load_zone(name: str) -> dt.tzinfo:
    """An IANA time zone; ScheduleError("unknown time zone X") as Go's LoadLocation says."""
    if name == "UTC":
        return dt.timezone.utc
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise ScheduleError(f"unknown time zone {name}") from None
