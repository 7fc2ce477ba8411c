"""NodeAgent: the kubelet role — watches the pods bound to this node and runs them.

One `PodWorker` per pod (shoal.node.worker) does the per-pod work; the agent owns what
they share: the runtime, image store/puller, pod network, event recorder, the
CrashLoopBackOff table, and an index of the pod containers (uid -> container ids), so a
worker asks the runtime about its own containers only.

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
from typing import Any, Callable

from shoal.api import errors as api_errors
from shoal.api.client import ApiClient
from shoal.config import Settings
from shoal.node import intent, paths
from shoal.node.backoff import Backoff, BackoffPolicy
from shoal.node.errors import ContainerCreateError
from shoal.node.hooks import ContainerPlan, NoHooks, PodHooks
from shoal.node.pulling import ImagePuller
from shoal.node.messages import clean_runtime_error
from shoal.node.worker import PodWorker, field_path
from shoal.runtime import ContainerExists, ContainerNotFound

log = logging.getLogger(__name__)
Obj = dict[str, Any]


class NodeAgent:
    def __init__(
        self,
        client: ApiClient,
        settings: Settings,
        *,
        runtime: Any,
        images: Any,
        network: Any,
        recorder: Any = None,
        backoff: BackoffPolicy = BackoffPolicy(),
        resync_seconds: float = 10.0,
        probe_time_scale: float = 1.0,
        make_intent: Callable[[dict], Any] = intent.to_intent,
        hooks: PodHooks | None = None,
    ) -> None:
        """runtime: shoal.runtime.Runtime; images: shoal.images.ImageStore; network:
        shoal.network.PodNetwork; recorder: shoal.controllers.events.EventRecorder or None.
        backoff: CrashLoopBackOff timing; resync_seconds: longest time a worker sleeps
        without an event (the PLEG relist period); probe_time_scale multiplies probe
        periods and delays (tests: < 1); hooks: how other layers shape pods
        (shoal.node.hooks; the daemon passes MeshHooks)."""
        self.client = client
        self.settings = settings
        self.runtime = runtime
        self.images = images
        self.network = network
        self.recorder = recorder
        self.backoff = Backoff(backoff)
        self.resync = resync_seconds
        self.probe_time_scale = probe_time_scale
        self.puller = ImagePuller(images)
        self.host_ip = getattr(network, "gateway", "127.0.0.1")
        self.workers: dict[str, PodWorker] = {}  # by pod uid
        self._tasks: list[asyncio.Task] = []
        self._bg: set[asyncio.Task] = set()
        self.ready = asyncio.Event()
        self.make_intent = make_intent
        self.hooks: PodHooks = hooks or NoHooks()
        self._known: dict[str, set[str]] = {}  # uid part -> container ids

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        for st in await self.runtime.list():
            self._index(st.id, add=True)
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
        for task in self._tasks:
            task.cancel()
        workers = list(self.workers.values())
        for w in workers:
            if w.task is not None:
                w.task.cancel()
        for task in self._tasks + [w.task for w in workers if w.task is not None]:
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - shutting down
                pass
        for w in workers:
            await w.stop_side_tasks()
        for task in list(self._bg):
            task.cancel()
        self._tasks = []

    def _selector(self) -> str:
        return f"spec.nodeName={self.settings.node_name}"

    async def _remove_orphans(self, live_uids: set[str]) -> None:
        live = {paths.uid_part(u) for u in live_uids}
        for uid_part, ids in list(self._known.items()):
            if uid_part not in live:
                for cid in sorted(ids):
                    log.info("removing container %s of a pod that no longer exists", cid)
                    await self.remove_container(cid, stop=True)
        live_dirs = set()
        if self.settings.pods_dir.is_dir():
            for entry in self.settings.pods_dir.iterdir():
                uid = entry.name.rsplit("_", 1)[-1]
                if uid in live_uids:
                    live_dirs.add(entry.name.rsplit("_", 1)[0].replace("_", "/", 1))
                else:
                    from shoal.node import volumes

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
                            worker.pod = ev.object
                            worker.pod["metadata"].setdefault("deletionTimestamp", "forced")
                            worker.pod["metadata"]["deletionGracePeriodSeconds"] = 0
                            worker.deleted_from_api = True
                            worker.wake.set()
            except asyncio.CancelledError:
                raise
            except api_errors.Gone:
                pods, revision = await self.client.list("pods", None, field_selector=self._selector())
                live = {p["metadata"]["uid"] for p in pods}
                for pod in pods:
                    self._dispatch(pod)
                for uid, w in list(self.workers.items()):
                    if uid not in live:
                        w.pod["metadata"].setdefault("deletionTimestamp", "forced")
                        w.deleted_from_api = True
                        w.wake.set()
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

    # -- services for workers ----------------------------------------------------------

    def _index(self, cid: str, *, add: bool) -> None:
        key = paths.parse_container_id(cid)
        if key is None:
            return
        ids = self._known.setdefault(key.pod_uid, set())
        if add:
            ids.add(cid)
        else:
            ids.discard(cid)
            if not ids:
                self._known.pop(key.pod_uid, None)

    async def containers_of(self, pod_uid: str) -> list[Any]:
        """Runtime status of every container of one pod. The agent is the only creator of
        pod containers, so an index (filled from one `list()` at start, then kept by
        create/remove) names them; only those are asked, not the whole runtime."""
        out = []
        for cid in sorted(self._known.get(paths.uid_part(pod_uid), ())):
            try:
                out.append(await self.runtime.status(cid))
            except ContainerNotFound:  # removed behind our back
                self._index(cid, add=False)
            except Exception:  # noqa: BLE001 - a transient failure: keep it, ask next time
                log.warning("status of %s failed; keeping it", cid, exc_info=True)
        return out

    async def create_and_start(self, pod: Obj, c: Obj, cid: str, img: Any, env: dict, mounts: list,
                               sandbox: Any, index: int, log_path: Any) -> None:
        """Snapshot + create + start one container instance; ContainerCreateError on failure."""
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._index(cid, add=True)
        fp = field_path(pod, c)
        try:
            if isinstance(img, ContainerPlan):  # run from a prepared root, not an image
                rootfs, image_config = img.rootfs, img.image_config
            else:
                rootfs = await asyncio.to_thread(self.images.snapshots.prepare, cid, img)
                image_config = img.config
            fields = intent.intent_fields(pod, c, container_id=cid, rootfs=rootfs, env=env, mounts=mounts,
                                          sandbox=sandbox, log_path=log_path, restart_count=index)
            if isinstance(img, ContainerPlan):
                fields["command"], fields["args"] = img.command, None
            spec_intent = self.make_intent(fields)
            try:
                await self.runtime.create(spec_intent, image_config)
            except ContainerExists:
                # This very instance exists. A running or created one is adopted, never
                # replaced (an observation missed it); only a dead leftover of a create
                # that failed half-way is cleared and created again.
                state = (await self.runtime.status(cid)).state
                if state in ("running", "created"):
                    log.warning("container %s already exists (%s); adopting it", cid, state)
                    if state == "running":
                        return
                else:
                    await self.runtime.delete(cid, force=True)
                    await self.runtime.create(spec_intent, image_config)
        except Exception as exc:  # noqa: BLE001 - translated at this boundary
            await self.remove_container(cid)
            raise ContainerCreateError(clean_runtime_error(_describe(exc))) from exc
        self.emit(pod, "Normal", "Created", f"Created container {c['name']}", fp)
        try:
            await self.runtime.start(cid)
        except Exception as exc:  # noqa: BLE001
            await self.remove_container(cid)
            raise ContainerCreateError(clean_runtime_error(_describe(exc))) from exc
        self.emit(pod, "Normal", "Started", f"Started container {c['name']}", fp)

    async def stop_container(self, cid: str, grace: float) -> None:
        try:
            await self.runtime.stop(cid, grace)
        except Exception:  # noqa: BLE001 - already gone
            log.debug("stop %s", cid, exc_info=True)

    async def remove_container(self, cid: str, *, stop: bool = False) -> None:
        if stop:
            await self.stop_container(cid, 0)
        try:
            await self.runtime.delete(cid, force=True)
        except Exception:  # noqa: BLE001 - idempotent
            log.debug("delete %s", cid, exc_info=True)
        self._index(cid, add=False)
        try:
            await asyncio.to_thread(self.images.snapshots.remove, cid)
        except Exception:  # noqa: BLE001
            log.debug("snapshot remove %s", cid, exc_info=True)

    async def get_object(self, resource: str, namespace: str, name: str) -> Obj | None:
        try:
            return await self.client.get(resource, namespace, name)
        except api_errors.NotFound:
            return None

    async def write_pod_status(self, worker: PodWorker, new_status: Obj) -> None:
        pod = dict(worker.pod)
        for attempt in range(3):
            body = {**pod, "status": new_status}
            try:
                updated = await self.client.update_status("pods", body)
            except api_errors.Conflict:
                pod = await self.client.get("pods", worker.namespace, worker.name)
                continue
            except api_errors.NotFound:
                return
            if worker.pod["metadata"].get("deletionTimestamp") is None or updated["metadata"].get("deletionTimestamp"):
                worker.pod = updated
            return

    async def forget_pod(self, worker: PodWorker, *, delete_object: bool) -> None:
        """Drop the worker; with delete_object, first remove the API object (grace 0), the
        kubelet's last step of a graceful deletion. Raises if the API call fails, so the
        worker retries. A pod re-created under the same name (another uid) is left alone."""
        if delete_object and not worker.deleted_from_api:
            try:
                current = await self.client.get("pods", worker.namespace, worker.name)
                if current["metadata"].get("uid") == worker.uid:
                    await self.client.delete("pods", worker.namespace, worker.name, grace_period_seconds=0)
            except api_errors.NotFound:
                pass
        if self.workers.get(worker.uid) is worker:
            del self.workers[worker.uid]

    def emit(self, pod: Obj, type_: str, reason: str, message: str, field_path: str | None = None) -> None:
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
    from shoal.node import envvars

    if resource == "persistentvolumeclaims":
        return any((v.get("persistentVolumeClaim") or {}).get("claimName") == name
                   for v in pod["spec"].get("volumes") or [])
    configmaps, secrets = envvars.referenced_objects(pod)
    return name in (configmaps if resource == "configmaps" else secrets)


def _describe(exc: BaseException) -> str:
    """An exception as a user-facing message; one without text (a timeout) by its kind."""
    text = str(exc)
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return f"timed out ({type(exc).__name__}) {text}".strip()
    return text or type(exc).__name__
