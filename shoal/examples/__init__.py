"""Examples shipped with shoal as package data (`shoal demo` builds and deploys them).

`path(name)` is the example's directory on disk, found through `importlib.resources`,
so it works from a source checkout (where `examples/NAME` at the top of the repository
is a link here) and from an installed wheel alike. shoal is never installed zipped: the
builder needs real files as its build context, so a zipped install is an error here.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

BOOKSTORE = "bookstore"


def path(name: str) -> Path:
    """The directory of example `name` (e.g. "bookstore"). FileNotFoundError if absent."""
    root = resources.files(__name__) / name
    if not isinstance(root, Path):
        raise FileNotFoundError(f"example {name!r} is inside a zipped install; install shoal unzipped")
    if not root.is_dir():
        raise FileNotFoundError(f"example {name!r} is not shipped with this shoal ({root})")
    return root
