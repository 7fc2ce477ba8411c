"""LocalPathProvisioner: binds PersistentVolumeClaims to directories on this machine.

A Pending claim gets a directory `paths.claim_dir` (under settings.volumes_dir, named by
the claim's uid, namespace and name), then status phase Bound with the requested capacity
and access modes. Data lives as long as the claim: a pod deleted and replaced mounts the
same directory again. Deleting the claim removes its directory. At start, directories of
claims that no longer exist are removed (a claim deleted while the daemon was down).

Protection (Kubernetes' `kubernetes.io/pvc-protection` finalizer): a bound claim carries
the finalizer; when the claim is deleted, the finalizer is removed only once no pod that
is not finished uses the claim, so deleting a claim under a running pod never wipes its
data — the claim waits in Terminating, rechecked every `recheck_seconds`.

Concurrency: one task watching claims plus one recheck loop; decisions are idempotent
(level-based: `reconcile_claim` looks at the claim, the disk and the pods using it).
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
from shoal.tasks import cancel_and_wait

log = logging.getLogger(__name__)
Obj = dict[str, Any]
PROTECTION = "kubernetes.io/pvc-protection"


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
    def __init__(self, client: ApiClient, settings: Settings, *, recheck_seconds: float = 2.0) -> None:
        self.client = client
        self.settings = settings
        self.recheck_seconds = recheck_seconds
        self._task: asyncio.Task | None = None
        self._recheck: asyncio.Task | None = None

    async def start(self) -> None:
        claims, revision = await self.client.list("persistentvolumeclaims")
        await asyncio.to_thread(self._remove_stale, claims)
        for claim in claims:
            await self.reconcile_claim(claim)
        self._task = asyncio.create_task(self._watch(revision), name="local-path-provisioner")
        self._recheck = asyncio.create_task(self._recheck_terminating(), name="local-path-protection")

    async def stop(self) -> None:
        await cancel_and_wait(self._task, self._recheck)

    def _remove_stale(self, claims: list[Obj]) -> None:
        keep = {paths.claim_dir(self.settings, c).name for c in claims}
        root = self.settings.volumes_dir
        if root.is_dir():
            for entry in root.iterdir():
                if entry.name.startswith("pvc-") and entry.name not in keep:
                    shutil.rmtree(entry, ignore_errors=True)

    async def _in_use(self, claim: Obj) -> bool:
        meta = claim["metadata"]
        pods, _ = await self.client.list("pods", meta["namespace"])
        return any(
            (v.get("persistentVolumeClaim") or {}).get("claimName") == meta["name"]
            for p in pods if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
            for v in (p.get("spec") or {}).get("volumes") or [])

    async def reconcile_claim(self, claim: Obj) -> None:
        directory = paths.claim_dir(self.settings, claim)
        meta = claim["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        if meta.get("deletionTimestamp"):
            if PROTECTION in finalizers and not await self._in_use(claim):
                finalizers.remove(PROTECTION)
                try:
                    await self.client.update("persistentvolumeclaims",
                                             {**claim, "metadata": {**meta, "finalizers": finalizers}})
                except (api_errors.Conflict, api_errors.NotFound):
                    pass  # a newer event (or the recheck) decides again
            return
        if PROTECTION not in finalizers:
            try:
                claim = await self.client.update("persistentvolumeclaims", {
                    **claim, "metadata": {**meta, "finalizers": finalizers + [PROTECTION]}})
            except (api_errors.Conflict, api_errors.NotFound):
                return  # the MODIFIED/DELETED event that beat us brings the next decision
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

    async def _recheck_terminating(self) -> None:
        while True:
            await asyncio.sleep(self.recheck_seconds)
            try:
                claims, _ = await self.client.list("persistentvolumeclaims")
                for claim in claims:
                    if claim["metadata"].get("deletionTimestamp"):
                        await self.reconcile_claim(claim)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - next round
                log.debug("claim recheck failed", exc_info=True)

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
