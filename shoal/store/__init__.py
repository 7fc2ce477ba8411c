"""shoal.store: the SQLite revision log behind the API (kine's design, one process).

- `Store`: objects keyed by (resource, namespace, name); every write appends an event to
  a log whose primary key is the global revision; `metadata.resourceVersion` of an
  object is the revision of its last write. Updates and deletes are compare-and-swap on
  that revision; a lost race is data (`ok=False`), not an exception.
- Watch: subscribe, replay the log after the given revision, then live events, dropping
  anything not newer than what was already sent.
- `Allocations`: persistent IP/port reservations in the same file.
"""

from shoal.store.allocations import Allocations
from shoal.store.log import Event, Store, StoreError, KeyExists, Compacted

__all__ = ["Allocations", "Compacted", "Event", "KeyExists", "Store", "StoreError"]
