"""Address and port allocations (pod IPs, ClusterIPs, NodePorts), persisted in the store.

A pool is a name such as ``pod:10.42.0.0/16`` or ``nodeport``. Allocation is a single
INSERT guarded by the primary key, so two allocators racing for one value cannot both
win; a lost race is data (``False``), not an exception. The table lives in the same
SQLite file as the revision log, so one backup or one ``shoal down --purge`` covers both.

Calls are synchronous and fast (one indexed statement); callers on the event loop run them
in a thread when they batch many.

Concurrency: one ``sqlite3`` connection per ``Allocations`` object, guarded by a lock, in
WAL mode; other connections (the revision log) may write the same file concurrently.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS allocations (
    pool  TEXT NOT NULL,
    value TEXT NOT NULL,
    owner TEXT NOT NULL,
    PRIMARY KEY (pool, value)
)
"""


class Allocations:
    """Persistent (pool, value) -> owner reservations. See the module docstring."""

    def __init__(self, path: Path | str) -> None:
        self._path = Path(path)
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.execute(_SCHEMA)

    def reserve(self, pool: str, value: str, owner: str) -> bool:
        """Reserve value in pool for owner. True if reserved now or already owned by owner."""
        with self._lock:
            try:
                self._db.execute(
                    "INSERT INTO allocations (pool, value, owner) VALUES (?, ?, ?)",
                    (pool, value, owner),
                )
                return True
            except sqlite3.IntegrityError:
                row = self._db.execute(
                    "SELECT owner FROM allocations WHERE pool = ? AND value = ?", (pool, value)
                ).fetchone()
                return row is not None and row[0] == owner

    def release(self, pool: str, value: str) -> None:
        """Free value in pool; freeing a free value is not an error."""
        with self._lock:
            self._db.execute("DELETE FROM allocations WHERE pool = ? AND value = ?", (pool, value))

    def release_owner(self, pool: str, owner: str) -> list[str]:
        """Free every value owner holds in pool; returns the values freed."""
        with self._lock:
            rows = self._db.execute(
                "DELETE FROM allocations WHERE pool = ? AND owner = ? RETURNING value", (pool, owner)
            ).fetchall()
        return [r[0] for r in rows]

    def owned(self, pool: str) -> dict[str, str]:
        """Every reserved value in pool, mapped to its owner."""
        with self._lock:
            rows = self._db.execute(
                "SELECT value, owner FROM allocations WHERE pool = ?", (pool,)
            ).fetchall()
        return dict(rows)

    def close(self) -> None:
        with self._lock:
            self._db.close()
