"""create_container: snapshot -> intent -> create (-> start) on real runc and a real image
store, and what a failure leaves behind (nothing), as `shoal run`, the node agent and the
image builder rely on."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from shoal.images import ImageStore
from shoal.runtime import ContainerExists, ContainerIntent, Created, create_container

from .conftest import needs_runc

pytestmark = [needs_runc]


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    images = ImageStore(tmp_path / "images")
    images.bootstrap_busybox("busybox")
    yield images
    images.snapshots.cleanup_all()


def snapshot_exists(store: ImageStore, key: str) -> bool:
    return store.paths.snapshot(key).exists()


def intent_for(cid: str, command: list[str], tmp_path: Path):
    def build(rootfs: Path) -> ContainerIntent:
        return ContainerIntent(id=cid, rootfs=rootfs, command=command, log_path=tmp_path / f"{cid}.log")

    return build


async def test_created_from_a_snapshot_runs_and_keeps_its_snapshot(runtime, store, tmp_path):
    img = store.resolve("busybox")
    made = await create_container(runtime, intent_for("prov-ok", ["/bin/echo", "hi"], tmp_path), img.config,
                                  snapshots=store.snapshots, key="prov-ok", image=img, start=True)
    assert made == Created("prov-ok")
    assert (await runtime.wait("prov-ok", timeout=10)).exit_code == 0
    assert "hi" in (tmp_path / "prov-ok.log").read_text()
    assert snapshot_exists(store, "prov-ok")


async def test_a_failed_start_leaves_neither_container_nor_snapshot(runtime, store, tmp_path):
    img = store.resolve("busybox")
    with pytest.raises(Exception) as err:
        await create_container(runtime, intent_for("prov-bad", ["/no/such/binary"], tmp_path), img.config,
                               snapshots=store.snapshots, key="prov-bad", image=img, start=True)
    assert "no/such/binary" in str(err.value)
    assert [c.id for c in await runtime.list()] == []
    assert not snapshot_exists(store, "prov-bad")


async def test_a_failing_intent_removes_the_snapshot(runtime, store, tmp_path):
    img = store.resolve("busybox")

    async def broken(rootfs: Path) -> ContainerIntent:
        await asyncio.sleep(0)
        raise ValueError("no intent for you")

    with pytest.raises(ValueError, match="no intent"):
        await create_container(runtime, broken, img.config, snapshots=store.snapshots, key="prov-intent", image=img)
    assert not snapshot_exists(store, "prov-intent")


async def test_an_existing_id_is_adopted_or_left_alone(runtime, store, tmp_path):
    img = store.resolve("busybox")
    build = intent_for("prov-twice", ["/bin/sleep", "30"], tmp_path)
    await create_container(runtime, build, img.config, snapshots=store.snapshots, key="prov-twice", image=img,
                           start=True)
    # without adoption: refused, and the running container and its snapshot stay
    with pytest.raises(ContainerExists):
        await create_container(runtime, build, img.config, snapshots=store.snapshots, key="prov-twice", image=img)
    assert (await runtime.status("prov-twice")).state == "running"
    assert snapshot_exists(store, "prov-twice")
    # with adoption (the node agent): the running instance is kept, not replaced
    again = await create_container(runtime, build, img.config, snapshots=store.snapshots, key="prov-twice",
                                   image=img, start=True, adopt_existing=True)
    assert again == Created("prov-twice", adopted="running")
    assert (await runtime.status("prov-twice")).state == "running"
    await runtime.delete("prov-twice", force=True)
