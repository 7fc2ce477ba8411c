"""The root of every shoal exception.

Each package defines one root that subclasses `ShoalError` (for example
`shoal.images.ImageError`) and groups its own families under it. Third-party exceptions
are translated at the package boundary, so callers catch shoal's types only. The API
server maps exception families to HTTP status in exactly one table
(`shoal.apiserver.errors`).
"""


class ShoalError(Exception):
    """Something shoal could not do; the message says what and, where known, why."""
