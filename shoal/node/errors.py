"""Errors of the node agent: one root, families by what the user sees in pod status.

Each family maps to a container `waiting.reason` Kubernetes shows, so the worker turns an
exception into status in one place (`reason` attribute).
"""

from __future__ import annotations

from shoal.errors import ShoalError


class NodeError(ShoalError):
    """Root of shoal.node errors."""

    reason = "Error"


class ContainerConfigError(NodeError):
    """The container cannot be configured (missing ConfigMap/Secret or key)."""

    reason = "CreateContainerConfigError"


class ImagePullError(NodeError):
    """The image is not in the local store and could not be pulled."""

    reason = "ErrImagePull"


class ContainerCreateError(NodeError):
    """The runtime refused to create or start the container."""

    reason = "CreateContainerError"


class VolumeError(NodeError):
    """A volume could not be set up (missing source, bad claim)."""

    reason = "ContainerCreating"


class ContainerNotFound(NodeError):
    """`resolve_container`: no such pod, container or previous instance."""
