"""Errors of the image layer: one root (`ImageError`) and typed families.

Third-party failures (httpx, tarfile, subprocess) are translated into these at the
boundary of the module that calls them, so callers catch `ImageError` only. Every
message names the reference, digest, path or field that is wrong.
"""

from __future__ import annotations

from shoal.errors import ShoalError


class ImageError(ShoalError):
    """Root of every error raised by `shoal.images`."""


class InvalidReference(ImageError, ValueError):
    """An image reference (name, tag or digest) does not follow Docker's grammar."""


class ImageNotFound(ImageError, LookupError):
    """No image in the store matches the reference."""


class BlobNotFound(ImageError, LookupError):
    """A blob named by a manifest is not in the content store."""


class DigestMismatch(ImageError):
    """Content does not hash to the digest that names it (or its size is wrong)."""


class InvalidDigest(ImageError, ValueError):
    """A digest string is malformed or uses an unsupported algorithm."""


class ManifestError(ImageError):
    """A manifest, index, config or archive is malformed or of an unsupported type."""


class NoMatchingPlatform(ManifestError):
    """An image index has no manifest for the host platform."""


class UnsafeLayer(ImageError):
    """A layer tarball tries to write outside its root or is otherwise hostile/corrupt."""


class SnapshotError(ImageError):
    """An overlay snapshot could not be prepared, mounted or removed."""


class RegistryError(ImageError):
    """A registry answered with an error or could not be reached."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code


class RegistryAuthError(RegistryError):
    """The registry (or its token server) refused our credentials or token."""


class BootstrapError(ImageError):
    """Building a base image (mmdebstrap, busybox) failed."""
