"""Errors of the mesh package: one root, `MeshError`, and a family per concern.

Every message names the object, field or value that is wrong. Third-party exceptions
(cryptography, grpc, protobuf, subprocess) are translated in the module that calls them,
so callers above the mesh catch these types only.
"""

from __future__ import annotations

from shoal.errors import ShoalError


class MeshError(ShoalError):
    """Root of every error raised by shoal.mesh."""


class CaError(MeshError):
    """The mesh CA could not load, create or issue a certificate."""


class TranslateError(MeshError):
    """Cluster state could not be turned into Envoy resources (names the object)."""


class SnapshotError(MeshError):
    """A snapshot is inconsistent (a cluster names a missing EDS resource, ...)."""


class CaptureError(MeshError):
    """Installing the traffic-capture iptables rules in a pod netns failed."""


class InjectionError(MeshError):
    """A pod cannot be injected with a sidecar; `errors` lists the FieldErrors."""

    def __init__(self, errors: list) -> None:
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = errors
