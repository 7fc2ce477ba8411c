"""The revision log: SQLite in WAL mode, one table of events, one of current objects.

Layout::

    log(rev INTEGER PRIMARY KEY AUTOINCREMENT, resource, namespace, name, type, value)
    current(resource, namespace, name, rev, value)   -- PRIMARY KEY (resource, namespace, name)
    meta(key, value)                                 -- 'compact_rev'

A write is one transaction: append to `log` (AUTOINCREMENT gives a revision that is
never reused, even after compaction) and upsert/delete the row in `current`. Values are
stored without `metadata.resourceVersion`; readers set it from the row's revision, so a
revision is written exactly once and the stored JSON never disagrees with it.

Durability: WAL with synchronous=NORMAL. A committed transaction is in the WAL file
before `commit` returns, so killing the process (kill -9) at any point loses no
acknowledged write and never exposes half a write; only an OS crash or power loss can
lose the last transactions (the trade-off etcd-less k3s makes too).

Concurrency: every SQLite call runs on one dedicated thread (one connection), so calls are
serialised and the event loop never blocks. Events are published to watchers from that
thread through `loop.call_soon_threadsafe` in commit order, so watchers see revisions in
order with no gaps. Each watcher has a bounded queue; a watcher that falls more than
`WATCH_QUEUE_LIMIT` events behind is ended (it re-lists, as Kubernetes clients do).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import json
import sqlite3
from pathlib import Path
from typing import Any, AsyncIterator, Callable, TypeVar

from shoal.errors import ShoalError

T = TypeVar("T")

WATCH_QUEUE_LIMIT = 20_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS log (
    rev       INTEGER PRIMARY KEY AUTOINCREMENT,
    resource  TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name      TEXT NOT NULL,
    type      TEXT NOT NULL,
    value     BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS log_by_resource ON log (resource, rev);
CREATE TABLE IF NOT EXISTS current (
    resource  TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name      TEXT NOT NULL,
    rev       INTEGER NOT NULL,
    value     BLOB NOT NULL,
    PRIMARY KEY (resource, namespace, name)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class StoreError(ShoalError):
    """Root of store errors."""


class KeyExists(StoreError):
    """create() of a key that exists."""


class Compacted(StoreError):
    """A watch asked for events older than the compaction point."""

    def __init__(self, requested: int, compacted: int) -> None:
        super().__init__(
            f"too old resource version: {requested} (compacted up to {compacted})"
        )
        self.requested = requested
        self.compacted = compacted


@dataclasses.dataclass(frozen=True)
class Event:
    """One committed change. `object` decodes a fresh dict on every access, so each
    consumer may mutate what it gets without affecting others."""

    revision: int
    type: str  # ADDED | MODIFIED | DELETED
    resource: str
    namespace: str
    name: str
    value: bytes

    @property
    def object(self) -> dict[str, Any]:
        return _decode(self.value, self.revision)


def _encode(obj: dict[str, Any]) -> bytes:
    meta = obj.get("metadata") or {}
    if "resourceVersion" in meta:
        obj = {**obj, "metadata": {k: v for k, v in meta.items() if k != "resourceVersion"}}
    return json.dumps(obj, separators=(",", ":"), sort_keys=False).encode()


def _decode(value: bytes, rev: int) -> dict[str, Any]:
    obj = json.loads(value)
    obj.setdefault("metadata", {})["resourceVersion"] = str(rev)
    return obj


class _Watcher:
    def __init__(self, resource: str, namespace: str | None) -> None:
        self.resource = resource
        self.namespace = namespace
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self.overflowed = False

    def offer(self, event: Event) -> None:
        if event.resource != self.resource:
            return
        if self.namespace is not None and event.namespace != self.namespace:
            return
        if self.queue.qsize() >= WATCH_QUEUE_LIMIT:
            if not self.overflowed:
                self.overflowed = True
                self.queue.put_nowait(None)
            return
        self.queue.put_nowait(event)


class Store:
    """The revision log. Create with `await Store.open(path)`; `close()` when done."""

    def __init__(self, path: Path, loop: asyncio.AbstractEventLoop) -> None:
        self.path = path
        self._loop = loop
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="shoal-store"
        )
        self._db: sqlite3.Connection | None = None
        self._watchers: set[_Watcher] = set()
        self._revision = 0
        self._compacted = 0

    # -- lifecycle ---------------------------------------------------------------------

    @classmethod
    async def open(cls, path: Path | str) -> "Store":
        store = cls(Path(path), asyncio.get_running_loop())
        await store._call(store._open)
        return store

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA busy_timeout=10000")
        db.executescript(_SCHEMA)
        self._db = db
        row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'log'").fetchone()
        self._revision = row[0] if row else 0
        row = db.execute("SELECT value FROM meta WHERE key = 'compact_rev'").fetchone()
        self._compacted = row[0] if row else 0

    async def close(self) -> None:
        for watcher in list(self._watchers):
            watcher.queue.put_nowait(None)
        if self._db is not None:
            await self._call(self._db.close)
            self._db = None
        self._executor.shutdown(wait=True)

    @property
    def revision(self) -> int:
        """The newest committed revision."""
        return self._revision

    @property
    def compacted_revision(self) -> int:
        return self._compacted

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._loop.run_in_executor(self._executor, fn, *args)

    # -- reads -------------------------------------------------------------------------

    async def get(self, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._call(self._get, resource, namespace, name)

    def _get(self, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
        assert self._db is not None
        row = self._db.execute(
            "SELECT rev, value FROM current WHERE resource = ? AND namespace = ? AND name = ?",
            (resource, namespace, name),
        ).fetchone()
        return _decode(row[1], row[0]) if row else None

    async def list(
        self, resource: str, namespace: str | None = None
    ) -> tuple[list[dict[str, Any]], int]:
        """Every object of resource (in namespace, or all when None), sorted by namespace
        and name, and the revision the list is consistent at."""
        return await self._call(self._list, resource, namespace)

    def _list(self, resource: str, namespace: str | None) -> tuple[list[dict[str, Any]], int]:
        assert self._db is not None
        if namespace is None:
            rows = self._db.execute(
                "SELECT rev, value FROM current WHERE resource = ? ORDER BY namespace, name",
                (resource,),
            ).fetchall()
        else:
            rows = self._db.execute(
                "SELECT rev, value FROM current WHERE resource = ? AND namespace = ? "
                "ORDER BY name",
                (resource, namespace),
            ).fetchall()
        return [_decode(v, r) for r, v in rows], self._revision

    async def count(self, resource: str, namespace: str | None = None) -> int:
        def _count() -> int:
            assert self._db is not None
            if namespace is None:
                q, a = "SELECT count(*) FROM current WHERE resource = ?", (resource,)
            else:
                q = "SELECT count(*) FROM current WHERE resource = ? AND namespace = ?"
                a = (resource, namespace)
            return self._db.execute(q, a).fetchone()[0]

        return await self._call(_count)

    # -- writes ------------------------------------------------------------------------

    async def create(
        self, resource: str, namespace: str, name: str, obj: dict[str, Any]
    ) -> dict[str, Any]:
        """Store a new object; raises KeyExists. Returns it with its resourceVersion."""
        value = _encode(obj)
        rev = await self._call(self._write, "create", resource, namespace, name, value, None)
        if rev is None:
            raise KeyExists(f"{resource} {namespace}/{name} exists")
        return _decode(value, rev)

    async def update(
        self,
        resource: str,
        namespace: str,
        name: str,
        obj: dict[str, Any],
        expected_revision: int | None = None,
    ) -> tuple[bool, dict[str, Any] | None]:
        """Replace an object if its revision is expected_revision (any, when None).

        Returns (True, new object) or (False, current object or None if absent)."""
        value = _encode(obj)
        rev = await self._call(
            self._write, "update", resource, namespace, name, value, expected_revision
        )
        if rev is None:
            return False, await self.get(resource, namespace, name)
        return True, _decode(value, rev)

    async def delete(
        self, resource: str, namespace: str, name: str, expected_revision: int | None = None
    ) -> tuple[bool, dict[str, Any] | None]:
        """Remove an object if its revision is expected_revision (any, when None).

        Returns (True, the deleted object as of the DELETED event) or (False, current or None)."""
        result = await self._call(self._delete, resource, namespace, name, expected_revision)
        if result is None:
            return False, await self.get(resource, namespace, name)
        rev, value = result
        return True, _decode(value, rev)

    def _write(
        self,
        op: str,
        resource: str,
        namespace: str,
        name: str,
        value: bytes,
        expected: int | None,
    ) -> int | None:
        assert self._db is not None
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute(
                "SELECT rev FROM current WHERE resource = ? AND namespace = ? AND name = ?",
                (resource, namespace, name),
            ).fetchone()
            if op == "create" and row is not None:
                db.execute("ROLLBACK")
                return None
            if op == "update" and (row is None or (expected is not None and row[0] != expected)):
                db.execute("ROLLBACK")
                return None
            etype = "ADDED" if op == "create" else "MODIFIED"
            rev = db.execute(
                "INSERT INTO log (resource, namespace, name, type, value) VALUES (?, ?, ?, ?, ?)",
                (resource, namespace, name, etype, value),
            ).lastrowid
            db.execute(
                "INSERT INTO current (resource, namespace, name, rev, value) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (resource, namespace, name) DO UPDATE SET rev = excluded.rev,"
                " value = excluded.value",
                (resource, namespace, name, rev, value),
            )
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        assert rev is not None
        self._committed(Event(rev, etype, resource, namespace, name, value))
        return rev

    def _delete(
        self, resource: str, namespace: str, name: str, expected: int | None
    ) -> tuple[int, bytes] | None:
        assert self._db is not None
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute(
                "SELECT rev, value FROM current WHERE resource = ? AND namespace = ? AND name = ?",
                (resource, namespace, name),
            ).fetchone()
            if row is None or (expected is not None and row[0] != expected):
                db.execute("ROLLBACK")
                return None
            value = row[1]
            rev = db.execute(
                "INSERT INTO log (resource, namespace, name, type, value) VALUES (?, ?, ?, 'DELETED', ?)",
                (resource, namespace, name, value),
            ).lastrowid
            db.execute(
                "DELETE FROM current WHERE resource = ? AND namespace = ? AND name = ?",
                (resource, namespace, name),
            )
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        assert rev is not None
        self._committed(Event(rev, "DELETED", resource, namespace, name, value))
        return rev, value

    def _committed(self, event: Event) -> None:
        # On the store thread, in commit order: hand the event to the loop in that order.
        self._revision = event.revision
        self._loop.call_soon_threadsafe(self._publish, event)

    def _publish(self, event: Event) -> None:
        for watcher in list(self._watchers):
            watcher.offer(event)

    # -- watch -------------------------------------------------------------------------

    async def watch(
        self, resource: str, namespace: str | None = None, after: int = 0
    ) -> AsyncIterator[Event]:
        """Events of resource (in namespace, or all) with revision > after, in order, then
        live ones, until the consumer stops iterating or the store closes.

        Raises Compacted if after is older than the compaction point. Subscribes before
        replaying, then drops live events the replay already covered (kine's design)."""
        if after and after < self._compacted:
            raise Compacted(after, self._compacted)
        watcher = _Watcher(resource, namespace)
        self._watchers.add(watcher)
        try:
            replay = await self._call(self._replay, resource, namespace, after)
            last = after
            for event in replay:
                yield event
                last = event.revision
            while True:
                event = await watcher.queue.get()
                if event is None:
                    return
                if event.revision <= last:
                    continue
                last = event.revision
                yield event
        finally:
            self._watchers.discard(watcher)

    def _replay(self, resource: str, namespace: str | None, after: int) -> list[Event]:
        assert self._db is not None
        if namespace is None:
            rows = self._db.execute(
                "SELECT rev, type, namespace, name, value FROM log WHERE resource = ? AND rev > ?"
                " ORDER BY rev",
                (resource, after),
            ).fetchall()
        else:
            rows = self._db.execute(
                "SELECT rev, type, namespace, name, value FROM log WHERE resource = ? AND rev > ?"
                " AND namespace = ? ORDER BY rev",
                (resource, after, namespace),
            ).fetchall()
        return [Event(r, t, resource, ns, n, v) for r, t, ns, n, v in rows]

    # -- compaction --------------------------------------------------------------------

    async def compact(self, keep: int = 10_000) -> int:
        """Drop log events older than the newest `keep` revisions; returns the new
        compaction point. Current objects are never touched."""
        return await self._call(self._compact, keep)

    def _compact(self, keep: int) -> int:
        assert self._db is not None
        point = max(0, self._revision - keep)
        if point <= self._compacted:
            return self._compacted
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        db.execute("DELETE FROM log WHERE rev <= ?", (point,))
        db.execute(
            "INSERT INTO meta (key, value) VALUES ('compact_rev', ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (point,),
        )
        db.execute("COMMIT")
        self._compacted = point
        return point
