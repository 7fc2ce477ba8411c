"""Fixtures for builder tests: a store + runtime + builder per module (own tmp dirs),
a busybox base per module, a Debian base with python3-pip bootstrapped once per
session, and helpers that run a built image and check nothing was left behind."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import subprocess
import tarfile
import uuid
from pathlib import Path

import pytest

from shoal.builder import Builder, BuildOptions, PlainProgress
from shoal.images import ImageStore, mounts
from shoal.runtime import ContainerIntent, Runtime

CGROUP_PARENT = "shoal-build-test"


@dataclasses.dataclass
class BuildEnv:
    root: Path
    store: ImageStore
    runtime: Runtime
    builder: Builder
    log: io.StringIO

    async def build(self, context: Path, **kwargs):
        """Build; pulls are off unless asked (tests never reach a registry off loopback)."""
        kwargs.setdefault("pull", False)
        self.log.seek(0)
        self.log.truncate()
        return await self.builder.build(BuildOptions(context=context, **kwargs))

    async def run_image(self, ref: str, command: list[str] | None = None) -> tuple[int, str]:
        """Run `ref` as `shoal run` would (snapshot + runc); return (exit code, output)."""
        image = await asyncio.to_thread(self.store.resolve, ref)
        cid = f"bt-{uuid.uuid4().hex[:10]}"
        rootfs = await asyncio.to_thread(self.store.snapshots.prepare, cid, image)
        try:
            await self.runtime.run(ContainerIntent(id=cid, rootfs=rootfs, command=command), image.config)
            status = await self.runtime.wait(cid, timeout=60)
            text = "".join([line.text + "\n" async for line in self.runtime.logs(cid)])
            return status.exit_code, text
        finally:
            await self.runtime.delete(cid, force=True)
            await asyncio.to_thread(self.store.snapshots.remove, cid)

    def layer_members(self, ref: str) -> list[list[tuple[str, bytes]]]:
        """Every layer of `ref` as [(name, content of regular files or b'')]."""
        image = self.store.resolve(ref)
        out = []
        for digest in image.layers:
            with tarfile.open(self.store.blob_path(digest)) as tar:
                out.append([(m.name, tar.extractfile(m).read() if m.isreg() else b"") for m in tar])
        return out

    def leftovers(self) -> dict:
        """What a finished build must not leave: snapshots, mounts, containers."""
        containers = [p.name for p in (self.root / "containers").glob("*") if (p / "meta.json").exists()]
        return {"snapshots": self.store.snapshots.list(), "mounts": mounts.mounts_under(self.root),
                "containers": containers}


def make_env(root: Path) -> BuildEnv:
    store = ImageStore(root / "images")
    runtime = Runtime(root / "containers", cgroup_parent=CGROUP_PARENT)
    log = io.StringIO()
    return BuildEnv(root, store, runtime, Builder(store, runtime, root / "cache", PlainProgress(log)), log)


def teardown_env(env: BuildEnv) -> None:
    try:
        asyncio.run(env.runtime.cleanup_all())
    finally:
        try:
            env.store.snapshots.cleanup_all()
        finally:
            for point in sorted(mounts.mounts_under(env.root), key=len, reverse=True):
                subprocess.run(["umount", "-l", point], check=False)


@pytest.fixture(scope="module")
def benv(tmp_path_factory):
    env = make_env(tmp_path_factory.mktemp("build"))
    env.store.bootstrap_busybox("busybox")
    try:
        yield env
    finally:
        teardown_env(env)


@pytest.fixture(scope="session")
def debian_env(tmp_path_factory):
    """A Debian 12 base with python3-pip, bootstrapped once (about a minute)."""
    env = make_env(tmp_path_factory.mktemp("build-debian"))
    env.store.bootstrap_debian("localhost/debian-py:12", include=["python3", "python3-pip"])
    try:
        yield env
    finally:
        teardown_env(env)


def write_context(root: Path, files: dict[str, str | bytes]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return root
