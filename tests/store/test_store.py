"""The revision log: CAS, ordering, watch replay, compaction, crash safety."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from shoal.store import Allocations, Compacted, KeyExists, Store


def cm(name: str, value: str = "v") -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default"}, "data": {"k": value}}


@pytest.fixture
async def store(tmp_path):
    s = await Store.open(tmp_path / "store.db")
    yield s
    await s.close()


async def test_create_get_list_revisions(store):
    a = await store.create("configmaps", "default", "a", cm("a"))
    b = await store.create("configmaps", "default", "b", cm("b"))
    assert int(b["metadata"]["resourceVersion"]) == int(a["metadata"]["resourceVersion"]) + 1
    with pytest.raises(KeyExists):
        await store.create("configmaps", "default", "a", cm("a"))
    got = await store.get("configmaps", "default", "a")
    assert got == a
    items, rev = await store.list("configmaps", "default")
    assert [i["metadata"]["name"] for i in items] == ["a", "b"]
    assert rev == store.revision == int(b["metadata"]["resourceVersion"])
    assert await store.get("configmaps", "other", "a") is None


async def test_update_is_compare_and_swap(store):
    a = await store.create("configmaps", "default", "a", cm("a", "1"))
    rv = int(a["metadata"]["resourceVersion"])
    ok, new = await store.update("configmaps", "default", "a", cm("a", "2"), rv)
    assert ok and new["data"]["k"] == "2"
    ok, current = await store.update("configmaps", "default", "a", cm("a", "3"), rv)
    assert not ok and current["data"]["k"] == "2"  # a lost race returns the winner's state
    ok, deleted = await store.delete("configmaps", "default", "a", rv)
    assert not ok
    ok, deleted = await store.delete("configmaps", "default", "a")
    assert ok and deleted["data"]["k"] == "2"
    assert await store.get("configmaps", "default", "a") is None


async def test_concurrent_writers_lose_no_increment(store):
    await store.create("configmaps", "default", "counter", cm("counter", "0"))
    conflicts = 0

    async def increment() -> None:
        nonlocal conflicts
        while True:
            cur = await store.get("configmaps", "default", "counter")
            nxt = cm("counter", str(int(cur["data"]["k"]) + 1))
            ok, _ = await store.update("configmaps", "default", "counter", nxt,
                                       int(cur["metadata"]["resourceVersion"]))
            if ok:
                return
            conflicts += 1

    await asyncio.gather(*(increment() for _ in range(40)))
    final = await store.get("configmaps", "default", "counter")
    assert final["data"]["k"] == "40"
    assert conflicts > 0, "40 concurrent read-modify-writes should have collided"


async def test_watch_from_old_revision_replays_missed_events_in_order(store):
    first = await store.create("configmaps", "default", "a", cm("a"))
    start = int(first["metadata"]["resourceVersion"])
    await store.update("configmaps", "default", "a", cm("a", "2"))
    await store.create("configmaps", "default", "b", cm("b"))
    await store.create("secrets", "default", "s", {"kind": "Secret", "metadata": {"name": "s"}})
    await store.delete("configmaps", "default", "a")

    seen = []

    async def consume() -> None:
        async for event in store.watch("configmaps", None, start):
            seen.append((event.type, event.name, event.revision))
            if len(seen) == 5:
                return

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.05)
    await store.create("configmaps", "default", "c", cm("c"))
    await store.update("configmaps", "default", "c", cm("c", "x"))
    await asyncio.wait_for(task, 5)
    assert [(t, n) for t, n, _ in seen] == [
        ("MODIFIED", "a"), ("ADDED", "b"), ("DELETED", "a"), ("ADDED", "c"), ("MODIFIED", "c")]
    revs = [r for _, _, r in seen]
    assert revs == sorted(revs) and len(set(revs)) == len(revs)


async def test_watch_during_writes_has_no_gaps_or_duplicates(store):
    start = store.revision
    names = [f"o{i}" for i in range(200)]
    got: list[str] = []

    async def writer() -> None:
        for n in names:
            await store.create("configmaps", "default", n, cm(n))

    async def watcher() -> None:
        async for event in store.watch("configmaps", "default", start):
            got.append(event.name)
            if len(got) == len(names):
                return

    w = asyncio.create_task(writer())
    await asyncio.sleep(0.01)  # subscribe mid-stream: replay + live must join exactly
    await asyncio.wait_for(watcher(), 10)
    await w
    assert got == names


async def test_namespace_filter_and_compaction(store):
    for i in range(10):
        await store.create("configmaps", "ns1" if i % 2 else "ns2", f"c{i}", cm(f"c{i}"))
    point = await store.compact(keep=3)
    assert point == store.revision - 3
    with pytest.raises(Compacted):
        async for _ in store.watch("configmaps", None, 1):
            pass
    events = []
    async for e in store.watch("configmaps", "ns1", point):
        events.append(e)
        if len(events) == 1:
            break
    assert all(e.namespace == "ns1" for e in events)
    items, _ = await store.list("configmaps")
    assert len(items) == 10, "compaction never removes current objects"


async def test_objects_from_events_are_independent(store):
    await store.create("configmaps", "default", "a", cm("a"))
    async for event in store.watch("configmaps", None, 0):
        first = event.object
        first["data"]["k"] = "mutated"
        assert event.object["data"]["k"] == "v"
        break


def test_allocations_are_exclusive_and_persistent(tmp_path):
    path = tmp_path / "store.db"
    a = Allocations(path)
    assert a.reserve("pod", "10.0.0.2", "ns/p1")
    assert a.reserve("pod", "10.0.0.2", "ns/p1"), "re-reserving one's own value is fine"
    assert not a.reserve("pod", "10.0.0.2", "ns/p2")
    a.close()
    b = Allocations(path)
    assert b.owned("pod") == {"10.0.0.2": "ns/p1"}
    assert b.release_owner("pod", "ns/p1") == ["10.0.0.2"]
    assert b.owned("pod") == {}
    b.close()


WRITER = textwrap.dedent("""
    import asyncio, sys
    from shoal.store import Store

    async def main(path):
        store = await Store.open(path)
        i = 0
        while True:
            name = f"obj-{i}"
            obj = {"kind": "ConfigMap", "metadata": {"name": name}, "data": {"payload": "x" * 2000, "i": str(i)}}
            await store.create("configmaps", "default", name, obj)
            print(name, flush=True)   # acknowledged
            i += 1

    asyncio.run(main(sys.argv[1]))
""")


async def test_kill_9_loses_no_acknowledged_write(tmp_path):
    path = tmp_path / "store.db"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE,
                            text=True)
    acked = []
    assert proc.stdout is not None
    while len(acked) < 300:
        line = proc.stdout.readline()
        assert line, "writer died"
        acked.append(line.strip())
    os.kill(proc.pid, signal.SIGKILL)
    rest = proc.stdout.read().split()
    proc.wait()
    acked.extend(rest)
    store = await Store.open(path)
    try:
        items, rev = await store.list("configmaps", "default")
        names = {i["metadata"]["name"] for i in items}
        missing = [n for n in acked if n not in names]
        assert not missing, f"{len(missing)} acknowledged writes lost: {missing[:5]}"
        for item in items:  # nothing half-written
            assert item["data"]["payload"] == "x" * 2000
            assert item["metadata"]["name"] == f"obj-{item['data']['i']}"
        log = [e async for e in _take(store.watch("configmaps", None, 0), len(items))]
        assert [e.name for e in log] == [f"obj-{i}" for i in range(len(items))]
        assert rev == len(items)
    finally:
        await store.close()


async def _take(agen, n):
    if n == 0:
        return
    count = 0
    async for item in agen:
        yield item
        count += 1
        if count == n:
            await agen.aclose()
            return
