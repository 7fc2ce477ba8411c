"""NodeAgent: the kubelet role — watches the pods bound to this node and runs them.

One `PodWorker` per pod (shoal.node.worker) does the per-pod work; the agent owns what
they share and gives it to them as `NodeServices` (shoal.node.services): the container
operations and their per-pod index (`PodContainers`), the image puller, the pod network,
the event recorder, the CrashLoopBackOff table and the API calls a kubelet makes. Its
runtime, images, network and recorder are handed in by the composition root
(`shoal.daemon`) and known only through the protocols of `shoal.node.seams`.

Watches: pods with `spec.nodeName=<node>` (ADDED/MODIFIED feed the worker, DELETED of a
pod still running means a forced delete: its worker tears everything down); ConfigMaps,
Secrets and PVCs wake the workers of pods that reference them (configMap/secret volumes
are rewritten in place by the next sync). Each watch restarts with a relist when it ends
or the revision is compacted away.

Start-up (re-adoption): existing pods get workers that find their containers in the
runtime by id (pod uid prefix) and adopt them without restarting; runtime containers,
sandboxes and pod directories of pods that no longer exist are removed.

Concurrency: all in one event loop; per-pod serialization is the worker's; the agent's
own state changes happen in the watch tasks only.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from typing import Any, Mapping

from shoal.api import errors as api_errors
from shoal.api.client import ApiClient
from shoal.config import Settings
from shoal.node import envvars, paths, volumes
from shoal.node.backoff import Backoff, BackoffPolicy
from shoal.node.containers import PodContainers
from shoal.node.hooks import NoHooks, PodHooks
from shoal.node.pulling import ImagePuller
from shoal.node.seams import ContainerRuntime, EventSink, ImageSource, PodNetworkPort
from shoal.node.worker import PodWorker
from shoal.tasks import cancel_and_wait

log = logging.getLogger(__name__)
Obj = dict[str, Any]


class NodeAgent:
    """The kubelet role; implements `NodeServices` (shoal.node.services) for its workers."""

    def __init__(
        self,
        client: ApiClient,
        settings: Settings,
        *,
        runtime: ContainerRuntime,
        images: ImageSource,
        network: PodNetworkPort,
        recorder: EventSink | None = None,
        backoff: BackoffPolicy = BackoffPolicy(),
        resync_seconds: float = 10.0,
        probe_time_scale: float = 1.0,
        hooks: PodHooks | None = None,
    ) -> None:
        """runtime: the container runtime; images: the image store (pulls, snapshots);
        network: the pod network; recorder: Events (None: none are recorded).
        backoff: CrashLoopBackOff timing; resync_seconds: longest time a worker sleeps
        without an event (the PLEG relist period); probe_time_scale multiplies probe
        periods and delays (tests: < 1); hooks: how higher layers shape pods
        (shoal.node.hooks; the daemon passes the mesh's)."""
        self.client = client
        self.settings = settings
        self.containers = PodContainers(runtime, images)
        self.network = network
        self.recorder = recorder
        self.backoff = Backoff(backoff)
        self.resync_seconds = resync_seconds
        self.probe_time_scale = probe_time_scale
        self.puller = ImagePuller(images)
        self.host_ip: str = network.gateway
        self.hooks: PodHooks = hooks or NoHooks()
        self.workers: dict[str, PodWorker] = {}  # by pod uid
        self._tasks: list[asyncio.Task] = []
        self._bg: set[asyncio.Task] = set()
        self.ready = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        await self.containers.load()
        pods, revision = await self.client.list("pods", None, field_selector=self._selector())
        await self._remove_orphans({p["metadata"]["uid"] for p in pods})
        for pod in pods:
            self._dispatch(pod)
        self._tasks = [
            asyncio.create_task(self._watch_pods(revision), name="node-watch-pods"),
            *(asyncio.create_task(self._watch_refs(res), name=f"node-watch-{res}")
              for res in ("configmaps", "secrets", "persistentvolumeclaims")),
        ]
        self.ready.set()

    async def stop(self) -> None:
        """Stop watching and working; containers keep running (re-adopted on next start)."""
        workers = list(self.workers.values())
        await cancel_and_wait(self._tasks, [w.task for w in workers])
        for w in workers:
            await w.stop_side_tasks()
        await cancel_and_wait(list(self._bg))
        self._tasks = []

    def _selector(self) -> str:
        return f"spec.nodeName={self.settings.node_name}"

    async def _remove_orphans(self, live_uids: set[str]) -> None:
        live = {paths.uid_part(u) for u in live_uids}
        for uid_part, ids in self.containers.pods().items():
            if uid_part not in live:
                for cid in sorted(ids):
                    log.info("removing container %s of a pod that no longer exists", cid)
                    await self.containers.remove(cid, stop=True)
        live_dirs = set()
        if self.settings.pods_dir.is_dir():
            for entry in self.settings.pods_dir.iterdir():
                uid = entry.name.rsplit("_", 1)[-1]
                if uid in live_uids:
                    live_dirs.add(entry.name.rsplit("_", 1)[0].replace("_", "/", 1))
                else:
                    await asyncio.to_thread(volumes.teardown_pod_volumes, entry)
                    await asyncio.to_thread(shutil.rmtree, entry, True)
        for sb in await self.network.list_sandboxes():
            if sb.pod_key not in live_dirs:
                await self.network.delete_sandbox(sb.pod_key)

    # -- watches -----------------------------------------------------------------------

    def _dispatch(self, pod: Obj) -> None:
        uid = pod["metadata"]["uid"]
        worker = self.workers.get(uid)
        if worker is None:
            worker = PodWorker(self, pod)
            self.workers[uid] = worker
            worker.start()
        else:
            worker.update(pod)

    async def _watch_pods(self, revision: int) -> None:
        while True:
            try:
                async for ev in self.client.watch("pods", None, resource_version=revision,
                                                  field_selector=self._selector()):
                    revision = max(revision, ev.revision)
                    if ev.type in ("ADDED", "MODIFIED"):
                        self._dispatch(ev.object)
                    elif ev.type == "DELETED":
                        worker = self.workers.get(ev.object["metadata"]["uid"])
                        if worker is not None:
                            worker.mark_deleted(ev.object)
            except asyncio.CancelledError:
                raise
            except api_errors.Gone:
                pods, revision = await self.client.list("pods", None, field_selector=self._selector())
                live = {p["metadata"]["uid"] for p in pods}
                for pod in pods:
                    self._dispatch(pod)
                for uid, w in list(self.workers.items()):
                    if uid not in live:
                        w.mark_deleted()
            except Exception:  # noqa: BLE001 - keep watching
                log.exception("pod watch failed; restarting")
                await asyncio.sleep(1)

    async def _watch_refs(self, resource: str) -> None:
        """Wake the workers of pods that reference a changed ConfigMap/Secret/PVC."""
        while True:
            try:
                async for ev in self.client.watch(resource, None):
                    meta = ev.object.get("metadata") or {}
                    for w in list(self.workers.values()):
                        if w.namespace == meta.get("namespace") and _references(w.pod, resource, meta.get("name")):
                            w.wake.set()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - keep watching
                log.debug("%s watch ended; restarting", resource, exc_info=True)
                await asyncio.sleep(1)

    # -- NodeServices: what the workers use ----------------------------------------------

    async def get_object(self, resource: str, namespace: str, name: str) -> Obj | None:
        try:
            return await self.client.get(resource, namespace, name)
        except api_errors.NotFound:
            return None

    async def write_pod_status(self, pod: Obj, status: Obj) -> Obj | None:
        """Write `status` (re-reading the pod on a conflict, three tries); the object the
        API returned, or None when the pod is gone or every try conflicted."""
        meta = pod["metadata"]
        current = dict(pod)
        for _ in range(3):
            try:
                return await self.client.update_status("pods", {**current, "status": status})
            except api_errors.Conflict:
                current = await self.client.get("pods", meta["namespace"], meta["name"])
            except api_errors.NotFound:
                return None
        return None

    async def forget_pod(self, uid: str, namespace: str, name: str, *, delete_object: bool) -> None:
        """Drop the worker; with delete_object, first remove the API object (grace 0), the
        kubelet's last step of a graceful deletion. Raises if the API call fails, so the
        worker retries. A pod re-created under the same name (another uid) is left alone."""
        if delete_object:
            try:
                current = await self.client.get("pods", namespace, name)
                if current["metadata"].get("uid") == uid:
                    await self.client.delete("pods", namespace, name, grace_period_seconds=0)
            except api_errors.NotFound:
                pass
        self.workers.pop(uid, None)

    def emit(self, pod: Mapping[str, Any], type_: str, reason: str, message: str, field_path: str | None = None) -> None:
        """Record an Event in the background (events never delay a pod)."""
        if self.recorder is None:
            return
        task = asyncio.create_task(self.recorder.event(pod, type_, reason, message, field_path=field_path))
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)

    # -- queries (for tests, the CLI and the bench) ------------------------------------

    def worker_of(self, namespace: str, name: str) -> PodWorker | None:
        for w in self.workers.values():
            if w.namespace == namespace and w.name == name:
                return w
        return None


def _references(pod: Obj, resource: str, name: str | None) -> bool:
    if resource == "persistentvolumeclaims":
        return any((v.get("persistentVolumeClaim") or {}).get("claimName") == name
                   for v in pod["spec"].get("volumes") or [])
    configmaps, secrets = envvars.referenced_objects(pod)
    return name in (configmaps if resource == "configmaps" else secrets)
