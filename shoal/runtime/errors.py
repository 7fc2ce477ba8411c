"""Errors of shoal.runtime: one root, `RuntimeFailure`, and its families.

Callers catch these types only: failures of runc and conmon are translated here, at the
package boundary, into `RuncError` carrying the command's own message.
"""

from __future__ import annotations

from shoal.errors import ShoalError


class RuntimeFailure(ShoalError):
    """The container runtime could not do what was asked."""


RuntimeError_ = RuntimeFailure  # the name the brief uses; the same class


class SpecError(RuntimeFailure, ValueError):
    """A container intent or image config cannot become an OCI spec; names the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class ContainerNotFound(RuntimeFailure, LookupError):
    """No container with this id (or name) exists under the runtime root."""

    def __init__(self, container_id: str) -> None:
        super().__init__(f"container {container_id!r} not found")
        self.container_id = container_id


class ContainerExists(RuntimeFailure):
    """A container with this id already exists under the runtime root."""

    def __init__(self, container_id: str) -> None:
        super().__init__(f"container {container_id!r} already exists")
        self.container_id = container_id


class ContainerStateError(RuntimeFailure):
    """The container is in a state that does not allow the operation (e.g. rm of a running one)."""


class RuncError(RuntimeFailure):
    """runc or conmon failed; `command` is what ran, the message is their stderr."""

    def __init__(self, command: str, message: str, exit_code: int | None = None) -> None:
        super().__init__(f"{command} failed: {message.strip() or 'no message'}")
        self.command = command
        self.exit_code = exit_code


class ExecTimeout(RuntimeFailure, TimeoutError):
    """An exec did not finish within its timeout; the process was killed."""
