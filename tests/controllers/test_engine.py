"""The engine: queue dedup and per-key serialization, retries with backoff,
requeue_after, and informer relist on Gone (with a hand-written ApiClient fake that
follows the protocol's rules)."""

from __future__ import annotations

import asyncio

from shoal.api import errors as api_errors
from shoal.api.client import WatchEvent
from shoal.controllers import engine
from shoal.controllers.engine import Controller, Manager, RateLimiter, Request, Result, WorkQueue


def obj(name, rev, ns="default", **extra):
    return {"metadata": {"name": name, "namespace": ns, "resourceVersion": str(rev),
                         "uid": f"uid-{name}", **extra}}


class FakeClient:
    """list returns `items`; each watch call pops the next script: an exception to raise
    or a list of events to yield, then blocks (as a live watch does)."""

    def __init__(self, items, revision, scripts):
        self.items, self.revision, self.scripts = items, revision, list(scripts)
        self.lists = 0
        self.watch_from: list[int | None] = []

    async def list(self, resource, namespace=None, **_):
        self.lists += 1
        return list(self.items), self.revision

    async def watch(self, resource, namespace=None, *, resource_version=None, **_):
        self.watch_from.append(resource_version)
        script = self.scripts.pop(0) if self.scripts else []
        if isinstance(script, BaseException):
            raise script
        for event in script:
            yield event
        await asyncio.Event().wait()


async def test_queue_dedups_and_requeues_a_key_added_while_processing():
    q = WorkQueue()
    q.add("a")
    q.add("a")
    q.add("b")
    assert len(q) == 2
    key = await q.get()
    assert key == "a"
    q.add("a")                      # while processing: not handed out twice
    assert await q.get() == "b"
    assert len(q) == 0
    q.done("a")                     # ...but queued again after done
    assert await q.get() == "a"


async def test_rate_limiter_doubles_and_caps():
    rl = RateLimiter(base=0.005, cap=0.04)
    assert [rl.when("k") for _ in range(6)] == [0.005, 0.01, 0.02, 0.04, 0.04, 0.04]
    rl.forget("k")
    assert rl.when("k") == 0.005


async def test_controller_serializes_keys_retries_errors_and_requeues_after():
    running: set[Request] = set()
    overlaps = []
    calls: dict[str, int] = {}
    release = asyncio.Event()

    async def reconcile(request: Request) -> Result | None:
        if request in running:
            overlaps.append(request)
        running.add(request)
        calls[request.name] = calls.get(request.name, 0) + 1
        if request.name == "same" and calls["same"] == 1:
            await release.wait()      # held while the same key is added again
        await asyncio.sleep(0)
        running.discard(request)
        if request.name == "flaky" and calls["flaky"] < 3:
            raise RuntimeError("not yet")
        if request.name == "periodic" and calls["periodic"] < 3:
            return Result(requeue_after=0.02)
        return None

    ctl = Controller("t", reconcile, [], workers=4,
                     rate_limiter=RateLimiter(base=0.005, cap=0.05))
    task = asyncio.create_task(ctl.run())
    try:
        ctl.enqueue(Request("ns", "same"))
        ctl.enqueue(Request("ns", "flaky"))
        ctl.enqueue(Request("ns", "periodic"))
        while calls.get("same") != 1:
            await asyncio.sleep(0.001)
        for _ in range(4):              # other workers are free, yet none takes "same"
            ctl.enqueue(Request("ns", "same"))
            await asyncio.sleep(0.005)
        release.set()

        async def settled():
            while not (calls.get("flaky") == 3 and calls.get("periodic") == 3
                       and calls.get("same") == 2 and ctl.queue.idle):
                await asyncio.sleep(0.005)

        await asyncio.wait_for(settled(), 5)
        await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert not overlaps
    assert calls == {"same": 2, "flaky": 3, "periodic": 3}  # adds while busy coalesce
    assert ctl.queue.rate_limiter.failures(Request("ns", "flaky")) == 0


async def test_informer_relists_on_gone_and_drops_stale_events():
    client = FakeClient([obj("a", 5)], 10, [
        api_errors.Gone("too old resource version"),
        [WatchEvent("MODIFIED", obj("a", 4)),          # not newer than the cache: dropped
         WatchEvent("ADDED", obj("b", 11)),
         WatchEvent("DELETED", obj("a", 12))],
    ])
    manager = Manager(client, informer_retry_delay=0.01)
    seen = []
    manager.informer("things").add_handler(lambda c: seen.append((c.type, c.object["metadata"]["name"])))
    await manager.start()
    try:
        lister = manager.lister("things")

        async def settled():
            while lister.get("default", "b") is None or lister.get("default", "a") is not None:
                await asyncio.sleep(0.01)

        await asyncio.wait_for(settled(), 2)
        assert client.lists == 2          # the Gone watch caused a relist
        assert client.watch_from == [10, 10]
        assert seen == [("ADDED", "a"), ("ADDED", "b"), ("DELETED", "a")]
        assert lister.by_uid("uid-b")["metadata"]["name"] == "b"
    finally:
        await manager.stop()


async def test_lister_indexes_and_mappers():
    lister = engine.Lister("pods")
    owner_ref = {"kind": "ReplicaSet", "name": "rs", "uid": "u-rs", "controller": True}
    p = obj("p", 1, labels={"app": "web"}, ownerReferences=[owner_ref])
    lister._put(p)
    lister._put(obj("q", 2, ns="other", labels={"app": "db"}))
    assert [o["metadata"]["name"] for o in lister.list("default", {"app": "web"})] == ["p"]
    assert lister.list("default", {"app": "db"}) == []
    assert len(lister.list()) == 2
    assert lister.dependents("u-rs") == [p]
    assert list(engine.map_owner("ReplicaSet")(engine.Change("ADDED", p))) == [Request("default", "rs")]
    assert list(engine.map_owner("Deployment")(engine.Change("ADDED", p))) == []
    lister._remove(("default", "p"))
    assert lister.dependents("u-rs") == [] and lister.by_uid("uid-p") is None


async def test_write_through_never_resurrects_deleted_objects():
    informer = engine.Informer(FakeClient([], 0, []), "pods")
    lister = informer.lister
    informer.observe(obj("p", 3))
    informer.observe_deleted(obj("p", 4))          # delete returned the object at rev 4
    cached = lister.get("default", "p")
    assert cached["metadata"]["deletionTimestamp"]  # counted as going away at once
    informer.apply("DELETED", obj("p", 4))         # the watch confirms at the same revision
    assert lister.get("default", "p") is None
    informer.observe(obj("p", 3))                  # a late result of an older write
    assert lister.get("default", "p") is None
    informer.apply("ADDED", obj("p", 9))           # re-created later: back in the cache
    assert lister.get("default", "p")["metadata"]["resourceVersion"] == "9"
    # a relist at revision 5 keeps objects written after it
    informer._replace([], 5)
    assert lister.get("default", "p") is not None
    informer._replace([], 10)
    assert lister.get("default", "p") is None
