"""Errors of shoal.network: one root, grouped by what the caller can do about them.

- `AllocationError`: an address or port could not be handed out. `RangeExhaustedError`
  (nothing left), `AllocationConflictError` (the requested value belongs to someone
  else), `OutOfRangeError` (the requested value is not inside the configured range). The
  API server maps all three to 422 Invalid on the field it asked about.
- `CommandError`: a kernel-facing command (`ip`, `iptables-restore`, `unshare`, ...)
  failed; carries argv, exit code and stderr. Usually a bug or a host problem; the node
  agent retries with backoff.
- `SandboxError`: a pod sandbox request that cannot be satisfied as given (bad hostname,
  a hostPort already taken by another pod).

Every message names the value and the setting or field that is wrong.
"""

from __future__ import annotations

from collections.abc import Sequence

from shoal.errors import ShoalError


class NetworkError(ShoalError):
    """Root of every shoal.network error."""


class AllocationError(NetworkError):
    """An address or port could not be allocated."""


class RangeExhaustedError(AllocationError):
    """Every value of the range is in use."""


class AllocationConflictError(AllocationError):
    """The requested value is already allocated to another owner."""

    def __init__(self, message: str, *, value: str, owner: str | None) -> None:
        super().__init__(message)
        self.value = value
        self.owner = owner


class OutOfRangeError(AllocationError):
    """The requested value is outside the configured range."""


class SandboxError(NetworkError):
    """A sandbox request that cannot be satisfied as given."""


class CommandError(NetworkError):
    """A command that programs the kernel failed."""

    def __init__(self, argv: Sequence[str], returncode: int, stderr: str) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr.strip()
        super().__init__(f"{' '.join(self.argv)!s} exited {returncode}: {self.stderr or '(no stderr)'}")
