"""shoal.images: content store, references, registry client, archives, base images and
overlay snapshots. The public surface is re-exported here; modules are private
implementation (import them as modules when you need more, e.g. `shoal.images.unpack`).

    store = ImageStore(settings.images_dir)
    img = store.resolve("busybox")
    rootfs = store.snapshots.prepare("ctr-1", img)
"""

from shoal.images.errors import (
    BlobNotFound,
    BootstrapError,
    DigestMismatch,
    ImageError,
    ImageNotFound,
    InvalidDigest,
    InvalidReference,
    ManifestError,
    NoMatchingPlatform,
    RegistryAuthError,
    RegistryError,
    SnapshotError,
    UnsafeLayer,
)
from shoal.images.reference import Reference
from shoal.images.store import Image, ImageStore

__all__ = [
    "BlobNotFound",
    "BootstrapError",
    "DigestMismatch",
    "Image",
    "ImageError",
    "ImageNotFound",
    "ImageStore",
    "InvalidDigest",
    "InvalidReference",
    "ManifestError",
    "NoMatchingPlatform",
    "Reference",
    "RegistryAuthError",
    "RegistryError",
    "SnapshotError",
    "UnsafeLayer",
]
