"""CrashLoopBackOff timing, as the kubelet computes it (pure, clock passed in).

The first restart of a container is immediate; each later restart waits `base` seconds,
doubling up to `cap`. A container that ran for `reset` seconds or more before it exited
starts the sequence again. Kubernetes: base 10 s, cap 300 s, reset 600 s; tests shorten
them through `BackoffPolicy`.

Concurrency: a `Backoff` belongs to one pod worker, which is serialized; no locking.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class BackoffPolicy:
    base: float = 10.0
    """Delay before the second restart, seconds."""
    cap: float = 300.0
    """Largest delay, seconds."""
    reset: float = 600.0
    """A run at least this long (seconds) resets the delay to none."""


@dataclasses.dataclass
class _Entry:
    delay: float  # the delay applied to the last restart (0 = none yet)
    not_before: float  # earliest restart time (epoch seconds)
    finished_at: float  # the exit this gate was computed for


class Backoff:
    """Restart gate per key (e.g. pod uid + container name)."""

    def __init__(self, policy: BackoffPolicy) -> None:
        self.policy = policy
        self._entries: dict[str, _Entry] = {}

    def next_delay(self, key: str, *, ran_for: float) -> float:
        """The delay to apply to the restart after a run of `ran_for` seconds."""
        entry = self._entries.get(key)
        if entry is None or ran_for >= self.policy.reset:
            return 0.0
        if entry.delay <= 0:
            return self.policy.base
        return min(entry.delay * 2, self.policy.cap)

    def remaining(self, key: str, *, finished_at: float, ran_for: float, now: float) -> float:
        """Seconds until the container that exited at `finished_at` may restart (0: now).
        Idempotent for one exit: calling again with the same finished_at gives the same
        gate, so a level-based worker can ask on every sync."""
        entry = self._entries.get(key)
        if entry is not None and entry.finished_at == finished_at:
            return max(0.0, entry.not_before - now)
        delay = self.next_delay(key, ran_for=ran_for)
        new = _Entry(delay=delay, not_before=finished_at + delay, finished_at=finished_at)
        self._entries[key] = new
        return max(0.0, new.not_before - now)

    def current_delay(self, key: str) -> float:
        entry = self._entries.get(key)
        return entry.delay if entry else 0.0

    def forget(self, key: str) -> None:
        self._entries.pop(key, None)

    def forget_prefix(self, prefix: str) -> None:
        for key in [k for k in self._entries if k.startswith(prefix)]:
            del self._entries[key]
