"""Watch filtering: the store's change stream seen through a list's selectors.

`filtered_events` gives Kubernetes' watch semantics over `Store.watch`: without a
resourceVersion, ADDED for every current object first, then changes; an object that
stops matching the selectors is sent as DELETED, one that starts matching as ADDED.
A revision compacted away mid-stream ends the stream with `errors.Gone`.

Concurrency: one generator per watcher; it holds only its own set of visible keys.
"""

from __future__ import annotations

from typing import Any, AsyncIterator, Callable

from shoal.api import errors
from shoal.api.client import WatchEvent
from shoal.store import Compacted, Store

Obj = dict[str, Any]


async def filtered_events(
    store: Store, resource: str, namespace: str | None, resource_version: int | None,
    matches: Callable[[Obj], bool],
) -> AsyncIterator[WatchEvent]:
    """Events of `resource` in `namespace` (None: all) after `resource_version` (None or
    0: from now, preceded by the current objects) for the objects `matches` accepts."""
    visible: set[tuple[str, str]] = set()
    after = resource_version or 0
    if not resource_version:
        items, after = await store.list(resource, namespace)
        for obj in items:
            if matches(obj):
                visible.add((obj["metadata"].get("namespace", ""), obj["metadata"]["name"]))
                yield WatchEvent("ADDED", obj)
    try:
        async for event in store.watch(resource, namespace, after):
            obj = event.object
            key = (event.namespace, event.name)
            if event.type == "DELETED":
                if key in visible or matches(obj):
                    visible.discard(key)
                    yield WatchEvent("DELETED", obj)
                continue
            if matches(obj):
                # Without the previous state (the log keeps none), a watch from a
                # revision passes the store's own type; from-now watches know better.
                known = key in visible
                visible.add(key)
                if known:
                    etype = "MODIFIED"
                elif resource_version:
                    etype = event.type
                else:
                    etype = "ADDED"
                yield WatchEvent(etype, obj)
            elif key in visible:
                visible.discard(key)
                yield WatchEvent("DELETED", obj)
    except Compacted as exc:
        raise errors.Gone(str(exc)) from None
