"""LocalPathProvisioner: binds PersistentVolumeClaims to directories on this machine.

A Pending claim gets a directory `paths.claim_dir` (under settings.volumes_dir, named by
the claim's uid, namespace and name), then status phase Bound with the requested capacity
and access modes. Data lives as long as the claim: a pod deleted and replaced mounts the
same directory again. Deleting the claim removes its directory. At start, directories of
claims that no longer exist are removed (a claim deleted while the daemon was down).

Concurrency: one task watching claims; decisions per event are idempotent (level-based:
`reconcile_claim` re-reads nothing but the event's object and the disk).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from typing import Any

from shoal.api import errors as api_errors
from shoal.api.client import ApiClient
from shoal.config import Settings
from shoal.node import paths

log = logging.getLogger(__name__)
Obj = dict[str, Any]


def bound_status(claim: Obj) -> Obj:
    """The status of a claim bound to its local directory (pure)."""
    spec = claim.get("spec") or {}
    storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "0")
    return {
        "phase": "Bound",
        "accessModes": list(spec.get("accessModes") or ["ReadWriteOnce"]),
        "capacity": {"storage": storage},
    }


class LocalPathProvisioner:
    def __init__(self, client: ApiClient, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        claims, revision = await self.client.list("persistentvolumeclaims")
        await asyncio.to_thread(self._remove_stale, claims)
        for claim in claims:
            await self.reconcile_claim(claim)
        self._task = asyncio.create_task(self._watch(revision), name="local-path-provisioner")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass

    def _remove_stale(self, claims: list[Obj]) -> None:
        keep = {paths.claim_dir(self.settings, c).name for c in claims}
        root = self.settings.volumes_dir
        if root.is_dir():
            for entry in root.iterdir():
                if entry.name.startswith("pvc-") and entry.name not in keep:
                    shutil.rmtree(entry, ignore_errors=True)

    async def reconcile_claim(self, claim: Obj) -> None:
        directory = paths.claim_dir(self.settings, claim)
        if claim["metadata"].get("deletionTimestamp"):
            return
        if (claim.get("status") or {}).get("phase") == "Bound" and directory.is_dir():
            return
        await asyncio.to_thread(directory.mkdir, 0o777, True, True)
        await asyncio.to_thread(directory.chmod, 0o777)
        body = {**claim, "status": bound_status(claim)}
        try:
            await self.client.update_status("persistentvolumeclaims", body)
        except api_errors.Conflict:
            fresh = await self.client.get("persistentvolumeclaims", claim["metadata"]["namespace"],
                                          claim["metadata"]["name"])
            await self.client.update_status("persistentvolumeclaims", {**fresh, "status": bound_status(fresh)})
        except api_errors.NotFound:
            pass

    async def _watch(self, revision: int) -> None:
        while True:
            try:
                async for ev in self.client.watch("persistentvolumeclaims", None, resource_version=revision):
                    revision = max(revision, ev.revision)
                    if ev.type == "DELETED":
                        await asyncio.to_thread(shutil.rmtree, paths.claim_dir(self.settings, ev.object), True)
                    elif ev.type in ("ADDED", "MODIFIED"):
                        await self.reconcile_claim(ev.object)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - relist and keep going
                log.exception("claim watch failed; relisting")
                await asyncio.sleep(1)
                claims, revision = await self.client.list("persistentvolumeclaims")
                for claim in claims:
                    await self.reconcile_claim(claim)
