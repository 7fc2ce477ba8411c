"""Errors of shoal.controllers: one root, a family per kind of problem.

Reconcile failures caused by the API (`shoal.api.errors.StatusError`) are not wrapped:
the engine retries them. These are for problems the controllers themselves find in
desired state, and for the functions the CLI calls (`rollback`, `history`).
"""

from __future__ import annotations

from shoal.api import errors as api_errors
from shoal.errors import ShoalError


class ControllerError(ShoalError):
    """Root of every error raised by shoal.controllers."""


class InvalidSpec(ControllerError):
    """A field of an object cannot be acted on; the message names the field and value."""


class RevisionNotFound(ControllerError):
    """`rollout undo --to-revision=N` named a revision the Deployment does not have."""


class RollbackSkipped(ControllerError):
    """The revision to roll back to has the template the Deployment already runs."""


def namespace_terminating(exc: BaseException) -> bool:
    """The API refused to create something because its namespace is being deleted
    (Kubernetes' NamespaceTerminatingCause): controllers drop such creates quietly."""
    return isinstance(exc, api_errors.Forbidden) and "being terminated" in str(exc)
