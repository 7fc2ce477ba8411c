"""Everything one build created that must not outlive it: RUN containers, snapshots,
temporary dirs. The build records each before making it and removes all of them in a
`finally` (`remove_all`), whatever the outcome.

Concurrency: used by one build's stage tasks on one loop; removal is idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets as pysecrets
import shutil

from shoal.images import ImageError, ImageStore
from shoal.runtime import Runtime, RuntimeFailure


class Scratch:
    """Everything a build created that must not outlive it."""

    def __init__(self, store: ImageStore, runtime: Runtime):
        self.store, self.runtime = store, runtime
        self.snapshots: set[str] = set()
        self.containers: set[str] = set()
        self.tmpdirs: set[str] = set()

    def new_key(self, step: int) -> str:
        return f"shoal-build-{pysecrets.token_hex(6)}-{step}"

    async def remove_container(self, cid: str) -> None:
        with contextlib.suppress(RuntimeFailure):
            await self.runtime.delete(cid, force=True)
        self.containers.discard(cid)

    async def remove_snapshot(self, key: str) -> None:
        await asyncio.to_thread(self.store.snapshots.remove, key)
        self.snapshots.discard(key)

    async def remove_all(self) -> None:
        for cid in list(self.containers):
            await self.remove_container(cid)
        for key in list(self.snapshots):
            with contextlib.suppress(ImageError, OSError):
                await self.remove_snapshot(key)
        for path in list(self.tmpdirs):
            shutil.rmtree(path, ignore_errors=True)
            self.tmpdirs.discard(path)
