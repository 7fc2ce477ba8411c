"""PodWorker: one asyncio task per pod, running a level-based `sync` (the kubelet's pod
worker + syncPod).

Each sync re-reads what runs (`observed.observe`: the runtime's containers whose id
starts with the pod uid, see `paths.container_id`), asks `lifecycle` (pure) what each
container needs in spec order, does it, and writes the pod status if it changed:

  deleted pod  -> preStop hooks, stop signal, grace, SIGKILL; remove containers, snapshots,
                  sandbox, pod dir; delete the API object with grace 0.
  otherwise    -> sandbox (network) + pod files + volumes; init containers in order (a
                  native sidecar — init container with restartPolicy Always — is kept
                  running and gates the next container until its startup/readiness probe
                  passes); then the regular containers; restarts per restartPolicy with
                  CrashLoopBackOff timing; a Never/OnFailure pod whose regular containers
                  are all finished gets its sidecars stopped and completes.

The current instance of a container is the one with the highest restart index; the one
before it gives `lastState`; older ones are deleted. So a restarted daemon rebuilds the
whole picture from the runtime alone, and running containers are adopted, not restarted.

The worker reaches the node only through `NodeServices` (shoal.node.services): container
operations, events, backoff, the API calls the kubelet makes.

Stopping (preStop, grace, order) and removing a pod are `shoal.node.stopping`'s; the
worker hands itself to it.

Concurrency: a worker's syncs are serialized (one task); probe loops and exit waiters are
side tasks (shoal.node.instances) that only record a verdict and set `wake`. Different
pods run in parallel.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import os
import time
from pathlib import Path
from typing import Any

from shoal import timestamps
from shoal.node import (
    envvars, instances, intent, lifecycle, paths, podfiles, pulling, status, stopping, views, volumes,
)
from shoal.node.errors import ContainerConfigError, ContainerCreateError, ImagePullError, VolumeError
from shoal.node.instances import Instance
from shoal.node.lifecycle import TERMINAL, Completion, field_path
from shoal.node.observed import Observed, ObservedPod, instances_of, observe
from shoal.node.seams import Sandbox
from shoal.node.services import NodeServices

log = logging.getLogger(__name__)

Obj = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class StepResult:
    """What driving one container gave: its view, and for the pod's order whether it is
    done (an init container completed; a sidecar runs and passed its probes), whether the
    pod cannot go on (failed), and the seconds until it wants another look."""

    view: status.ContainerView
    delay: float
    done: bool = False
    failed: bool = False


class PodWorker:
    def __init__(self, node: NodeServices, pod: Obj) -> None:
        self.node = node
        self.pod = pod
        meta = pod["metadata"]
        self.uid: str = meta["uid"]
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        self.key = f"{self.namespace}/{self.name}"
        self.root = paths.pod_dir(node.settings, self.namespace, self.name, self.uid)
        self.wake = asyncio.Event()
        self.instances: dict[str, Instance] = {}
        self.image_ids: dict[str, str] = {}
        self.pod_ip: str | None = None
        self.start_time: str | None = None
        self.initialized_once = False
        self.completing = False  # sidecars being stopped because the regular containers ended
        self.terminal_phase: str | None = None
        self.terminal_reason: tuple[str, str] | None = None  # status.reason/message (DeadlineExceeded)
        self.done = False
        self.deleted_from_api = False  # the API object is gone already (forced delete)
        self.task: asyncio.Task | None = None
        self._noted: set[tuple[str, str]] = set()  # (event key, instance) already reported
        self._volumes = volumes.PodVolumes()
        self._etc_files: dict[str, Path] = {}
        self._pull_failures: dict[str, int] = {}
        self._spec_changed: set[str] = set()  # instances killed because the spec changed

    # -- loop ----------------------------------------------------------------------------

    def start(self) -> None:
        self.task = asyncio.create_task(self.run(), name=f"pod-{self.key}")

    def update(self, pod: Obj) -> None:
        self.pod = pod
        self.wake.set()

    def mark_deleted(self, pod: Obj | None = None) -> None:
        """The API object is gone (a forced delete, or missing from a relist): tear down now."""
        if pod is not None:
            self.pod = pod
            self.pod["metadata"]["deletionGracePeriodSeconds"] = 0
        self.pod["metadata"].setdefault("deletionTimestamp", "forced")
        self.deleted_from_api = True
        self.wake.set()

    async def run(self) -> None:
        while not self.done:
            self.wake.clear()
            try:
                delay = await self.sync()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("pod %s: sync failed", self.key)
                delay = 1.0
            if self.done:
                break
            try:
                await asyncio.wait_for(self.wake.wait(), timeout=max(0.05, min(delay, self.node.resync_seconds)))
            except asyncio.TimeoutError:
                pass

    async def stop_side_tasks(self) -> None:
        for inst in self.instances.values():
            inst.cancel()
        self.instances.clear()

    def emit(self, type_: str, reason: str, message: str, c: Obj | None = None) -> None:
        self.node.emit(self.pod, type_, reason, message, field_path(self.pod, c) if c is not None else None)

    async def observe(self) -> ObservedPod:
        return await observe(self.node.containers, self.pod, self.root)

    # -- the sync ------------------------------------------------------------------------

    async def sync(self) -> float:
        """One pass; returns seconds until the worker wants to run again."""
        pod = self.pod
        if pod["metadata"].get("deletionTimestamp"):
            await self.terminate(pod)
            await self.node.forget_pod(self.uid, self.namespace, self.name, delete_object=not self.deleted_from_api)
            self.done = True
            return 0
        spec = pod["spec"]
        if self.start_time is None:
            self.start_time = (pod.get("status") or {}).get("startTime") or timestamps.now()
        observed = await self.observe()
        left = float("inf")
        if not self.terminal_phase and (pod.get("status") or {}).get("phase") not in TERMINAL:
            left = lifecycle.deadline_left(self.start_time, spec.get("activeDeadlineSeconds"), time.time())
            if left <= 0:
                self.terminal_phase = "Failed"
                self.terminal_reason = ("DeadlineExceeded",
                                        "Pod was active on the node longer than the specified deadline")
                self.emit("Normal", "DeadlineExceeded", self.terminal_reason[1])
        if self.terminal_phase or (pod.get("status") or {}).get("phase") in TERMINAL:
            self.terminal_phase = self.terminal_phase or pod["status"]["phase"]
            await stopping.stop_all(self, observed, grace=lifecycle.termination_grace(pod))
            await self.node.network.delete_sandbox(self.key)
            await self.write_status(views.terminal_views(self.pod, await self.observe(), self.image_ids),
                                    phase=self.terminal_phase)
            return self.node.resync_seconds * 10

        sandbox = await self._prepare_pod(observed)
        if sandbox is None:
            return 2.0

        delays: list[float] = [self.node.resync_seconds, max(left, 0.05)]
        init_views: list[status.ContainerView] = []
        initialized, init_failed = True, False
        was_initialized = lifecycle.was_initialized(pod, self.initialized_once)
        for c in spec.get("initContainers") or []:
            insts = instances_of(observed, c)
            if lifecycle.skips_init(c, was_initialized):
                init_views.append(self._placeholder(c, insts, "PodInitializing"))
                continue
            sidecar = lifecycle.is_sidecar(c)
            result = await self.step(c, insts, sidecar=sidecar, init=not sidecar, sandbox=sandbox)
            init_views.append(result.view)
            delays.append(result.delay)
            init_failed = init_failed or result.failed
            if lifecycle.blocks_init(result.done, was_initialized):
                initialized = False
                break
        if initialized and not init_failed:
            self.initialized_once = True
        # init containers after the blocking one are shown waiting (PodInitializing)
        shown = {v.name for v in init_views}
        for c in spec.get("initContainers") or []:
            if c["name"] not in shown:
                init_views.append(self._placeholder(c, instances_of(observed, c), "PodInitializing",
                                                    sidecar=lifecycle.is_sidecar(c)))

        main_views: list[status.ContainerView] = []
        if initialized and not init_failed:
            hold = False  # a container before this one must be ready first (PodHooks.holds_start)
            for c in spec["containers"]:
                insts = instances_of(observed, c)
                if hold and not insts:
                    main_views.append(self._placeholder(c, insts, "ContainerCreating"))
                    continue
                result = await self.step(c, insts, sidecar=False, init=False, sandbox=sandbox)
                main_views.append(result.view)
                delays.append(result.delay)
                hold = hold or lifecycle.holds_next(result.view.ready, self.node.hooks.holds_start(pod, c))
        else:
            for c in spec["containers"]:
                main_views.append(self._placeholder(c, instances_of(observed, c), "PodInitializing"))

        policy = spec.get("restartPolicy", "Always")
        phase = status.pod_phase(policy, init_views, main_views, initialized=initialized, init_failed=init_failed)
        end = lifecycle.completion(restart_policy=policy, phase=phase, initialized=initialized,
                                   completing=self.completing)
        if end is Completion.STOP_SIDECARS:
            self.completing = True
            await stopping.stop_sidecars(self, observed, lifecycle.termination_grace(pod))
            return 0.0  # re-observe with the sidecars stopped
        if end is Completion.TERMINAL:
            self.terminal_phase = phase
        if init_failed:
            self.terminal_phase = "Failed"
        await self.write_status(init_views + main_views, phase=phase, initialized=initialized, n_init=len(init_views))
        return min(delays)

    async def _prepare_pod(self, observed: ObservedPod) -> Sandbox | None:
        """Sandbox, pod files and volumes; None (status and event written) when not ready."""
        pod = self.pod
        try:
            if pod["spec"].get("hostNetwork"):
                sandbox: Sandbox = podfiles.HostSandbox(ip=self.node.host_ip, hostname=podfiles.hostname(pod))
            else:
                rules = self.node.hooks.sandbox_iptables(pod)
                sandbox = await self.node.network.create_sandbox(
                    self.key, hostname=podfiles.hostname(pod), **({"netns_iptables": rules} if rules else {}))
        except Exception as exc:  # noqa: BLE001 - shown in status, retried
            await self._all_waiting("ContainerCreating", f"failed to create pod sandbox: {exc}", observed)
            self.emit("Warning", "FailedCreatePodSandBox", f"Failed to create pod sandbox: {exc}")
            return None
        self.pod_ip = sandbox.ip
        try:
            etc_files = await asyncio.to_thread(self._write_pod_files, sandbox)
            await self.prepare_volumes()
        except VolumeError as exc:
            self.emit("Warning", "FailedMount", f"MountVolume.SetUp failed: {exc}")
            await self._all_waiting("ContainerCreating", "", observed)
            return None
        self._etc_files = etc_files
        return sandbox

    # -- one container ---------------------------------------------------------------------

    def _placeholder(self, c: Obj, insts: list[Observed], reason: str, sidecar: bool = False) -> status.ContainerView:
        return views.placeholder(self.pod, c, insts, reason, self.image_ids.get(c["name"]), sidecar)

    async def step(self, c: Obj, insts: list[Observed], *, sidecar: bool, init: bool, sandbox: Sandbox) -> StepResult:
        """Drive one container to what its spec and the restart policy want."""
        name = c["name"]
        view = views.base_view(self.pod, c, insts, sidecar, self.image_ids.get(name))
        cur = insts[0] if insts else None
        resync = self.node.resync_seconds
        if cur is not None and cur.state == "running":
            inst = self.instances.get(name)
            if inst is None or inst.container_id != cur.container_id:
                if inst is not None:
                    inst.cancel()
                else:  # adopted (daemon restart): let hooks re-make what they serve it (xDS socket)
                    await self.node.hooks.plan_container(self.pod, c, sandbox, self.root)
                inst = self._track(c, cur.container_id, sandbox)
            wanted = intent.container_hash(c)
            if cur.labels.get(intent.LABEL_HASH, wanted) != wanted and not inst.kill_reason:
                inst.kill_reason = f"Container {name} definition changed, will be restarted"
                self._spec_changed.add(cur.container_id)
            if inst.kill_reason:
                grace = inst.kill_grace if inst.kill_grace is not None else lifecycle.termination_grace(self.pod)
                await stopping.kill(self, c, cur.container_id, grace, inst.kill_reason)
                return StepResult(view, 0.0)
            view.container_id = cur.container_id
            view.running_since = cur.started_at or dt.datetime.now(dt.timezone.utc)
            view.started, view.ready = inst.started, inst.is_ready
            return StepResult(view, resync, done=sidecar and inst.sidecar_done)

        if cur is not None and cur.state in ("created", "unknown"):
            # a crash between create and start, or a dead shim: remove and redo this index
            await self.node.containers.remove(cur.container_id)
            return await self._start(c, cur.index, view, sandbox, sidecar=sidecar)

        if cur is None:
            return await self._start(c, 0, view, sandbox, sidecar=sidecar)

        # exited
        inst = self.instances.pop(name, None)
        if inst is not None:
            inst.cancel()
        term = cur.terminated()
        spec_changed = cur.container_id in self._spec_changed
        if not lifecycle.should_restart(policy=self.pod["spec"].get("restartPolicy", "Always"),
                                        exit_code=term.exit_code, init=init, sidecar=sidecar,
                                        completing=self.completing, spec_changed=spec_changed):
            view.terminated, view.container_id = term, cur.container_id
            return StepResult(view, resync, done=term.exit_code == 0 or sidecar, failed=init and term.exit_code != 0)
        now = time.time()
        finished, ran_for = lifecycle.run_times(cur.started_at, cur.finished_at, now)
        backoff_key = f"{self.uid}/{name}"
        gate = 0.0 if spec_changed else self.node.backoff.remaining(
            backoff_key, finished_at=finished, ran_for=ran_for, now=now)
        view.last = term
        if gate > 0:
            view.waiting_reason = "CrashLoopBackOff"
            view.waiting_message = lifecycle.crashloop_message(
                self.node.backoff.current_delay(backoff_key), name, self.pod)
            self._note(f"backoff:{name}", cur.container_id, "Warning", "BackOff",
                       lifecycle.backoff_event(name, self.pod), c)
            return StepResult(view, gate)
        for old in insts[1:]:
            await self.node.containers.remove(old.container_id)
        return await self._start(c, cur.index + 1, view, sandbox, sidecar=sidecar)

    async def _start(self, c: Obj, index: int, view: status.ContainerView, sandbox: Sandbox, *,
                     sidecar: bool) -> StepResult:
        name = c["name"]
        view.restart_count = index
        pull_key, create_key = f"{self.uid}/{name}/pull", f"{self.uid}/{name}/create"
        backoff = self.node.backoff
        try:
            plan = await self.node.hooks.plan_container(self.pod, c, sandbox, self.root)
            source = plan if plan is not None else await self._ensure_image(c, pull_key)
            env = envvars.container_env(self.pod, c, configmaps=self._volumes.configmaps,
                                        secrets=self._volumes.secrets, pod_ip=self.pod_ip)
            mounts = intent.container_mounts(c, dict(self._volumes.paths), self._etc_files)
            if plan is not None:
                mounts += plan.mounts
            message_file = paths.termination_message_path(self.root, name, index)
            await asyncio.to_thread(_empty_message_file, message_file)
            mounts.append(intent.MountSpec(c.get("terminationMessagePath") or "/dev/termination-log",
                                           str(message_file)))
            cid = paths.container_id(self.uid, name, index)
            containers = self.node.containers
            if await containers.create(self.pod, c, cid, source, env, mounts, sandbox, index,
                                       paths.log_path(self.root, name, index)):
                self.emit("Normal", "Created", f"Created container {name}", c)
                await containers.start(cid)
                self.emit("Normal", "Started", f"Started container {name}", c)
        except ImagePullError as exc:
            return self._pull_backoff(c, view, pull_key, exc)
        except ContainerConfigError as exc:
            view.waiting_reason, view.waiting_message = exc.reason, str(exc)
            self._note(f"config:{name}", str(exc), "Warning", "Failed", f"Error: {exc}", c)
            return StepResult(view, 2.0)
        except VolumeError as exc:
            view.waiting_reason, view.waiting_message = "ContainerCreating", ""
            self._note(f"mount:{name}", str(exc), "Warning", "FailedMount", f"MountVolume.SetUp failed: {exc}", c)
            return StepResult(view, 2.0)
        except ContainerCreateError as exc:
            now = time.time()
            gate = backoff.remaining(create_key, finished_at=now, ran_for=0, now=now)
            view.waiting_reason, view.waiting_message = exc.reason, str(exc)
            self.emit("Warning", "Failed", f"Error: {exc}", c)
            return StepResult(view, max(gate, backoff.policy.base))
        backoff.forget(pull_key)
        backoff.forget(create_key)
        self.image_ids[name] = getattr(source, "digest", None) or getattr(source, "image_id", "") or ""
        view.image_id = self.image_ids[name]
        if not await self._post_start(c, cid, sandbox):
            return StepResult(view, 0.0)  # killed: the next sync restarts it per policy
        view.container_id = cid
        view.running_since = dt.datetime.now(dt.timezone.utc)
        inst = self._track(c, cid, sandbox)
        view.started, view.ready = inst.started, inst.is_ready
        return StepResult(view, self.node.resync_seconds, done=sidecar and inst.sidecar_done)

    def _pull_backoff(self, c: Obj, view: status.ContainerView, key: str, exc: ImagePullError) -> StepResult:
        backoff = self.node.backoff
        now = time.time()
        gate = backoff.remaining(key, finished_at=now, ran_for=0, now=now)
        image = c.get("image", "")
        if self._pull_failures.get(key, 0) == 0:
            view.waiting_reason, view.waiting_message = "ErrImagePull", str(exc)
            self.emit("Warning", "Failed", str(exc), c)
            self.emit("Warning", "Failed", "Error: ErrImagePull", c)
        else:
            view.waiting_reason = "ImagePullBackOff"
            view.waiting_message = f'Back-off pulling image "{image}": {exc}'
            self.emit("Normal", "BackOff", f'Back-off pulling image "{image}"', c)
        self._pull_failures[key] = self._pull_failures.get(key, 0) + 1
        return StepResult(view, max(gate, backoff.policy.base))

    def _note(self, key: str, instance: str, type_: str, reason: str, message: str, c: Obj) -> None:
        """Emit an event once per (key, instance): one BackOff per exit, not per sync."""
        if (key, instance) in self._noted:
            return
        self._noted = {k for k in self._noted if k[0] != key}
        self._noted.add((key, instance))
        self.emit(type_, reason, message, c)

    async def _ensure_image(self, c: Obj, pull_key: str) -> Any:
        img, pulled = await pulling.ensure_container_image(
            self.node.puller, self.pod, c, get_object=self.node.get_object,
            emit=lambda type_, reason, message: self.emit(type_, reason, message, c),
            announce_present=(c["name"], "pulled") not in self._noted)
        if not pulled:
            self._noted.add((c["name"], "pulled"))
        self._pull_failures.pop(pull_key, None)
        return img

    # -- probes, handlers and stopping (shoal.node.stopping) -------------------------------

    def handler_target(self, sandbox: Sandbox | None) -> lifecycle.HandlerTarget:
        return lifecycle.handler_target(sandbox, probe_in_netns=self.node.hooks.probe_in_netns(self.pod),
                                        pod_ip=self.pod_ip)

    def _track(self, c: Obj, cid: str, sandbox: Sandbox) -> Instance:
        name = c["name"]
        inst = instances.track(
            self.pod, c, cid, containers=self.node.containers, target=self.handler_target(sandbox),
            time_scale=self.node.probe_time_scale, is_current=lambda i: self.instances.get(name) is i,
            wake=self.wake.set, on_unhealthy=lambda message: self.emit("Warning", "Unhealthy", message, c))
        self.instances[name] = inst
        return inst

    async def _post_start(self, c: Obj, cid: str, sandbox: Sandbox) -> bool:
        """The postStart hook, run before the next container starts (as the kubelet does);
        on failure the container is killed (FailedPostStartHook). False if it was."""
        hook = (c.get("lifecycle") or {}).get("postStart")
        if not hook:
            return True
        grace = lifecycle.termination_grace(self.pod)
        result = await instances.run_hook(hook, c, cid, containers=self.node.containers,
                                          target=self.handler_target(sandbox), timeout=max(grace, 30.0))
        if result is not None and result.success:
            return True
        self.emit("Warning", "FailedPostStartHook", f"PostStartHook failed: {getattr(result, 'message', '')}", c)
        await stopping.kill(self, c, cid, grace, f"FailedPostStartHook: container {c['name']} will be restarted")
        return False

    async def terminate(self, pod: Obj) -> None:
        """Graceful deletion: stop everything, then remove every trace of the pod."""
        await stopping.stop_all(self, await self.observe(), lifecycle.deletion_grace(pod))
        await stopping.remove_everything(self)

    # -- files, volumes, status ------------------------------------------------------------

    def _write_pod_files(self, sandbox: Sandbox) -> dict[str, Path]:
        network = self.node.network
        files = podfiles.etc_files(self.pod, network.hosts_file(podfiles.hostname(self.pod), sandbox.ip),
                                   network.resolv_conf(self.namespace))
        return podfiles.write_etc_files(paths.etc_dir(self.root), files)

    async def prepare_volumes(self) -> None:
        """Fetch the ConfigMaps/Secrets/PVCs the pod uses and set up every volume."""
        self._volumes = await volumes.prepare_pod_volumes(self.node.settings, self.pod, self.root,
                                                          self.node.get_object)

    async def _all_waiting(self, reason: str, message: str, observed: ObservedPod) -> None:
        await self.write_status(views.waiting_views(self.pod, observed, reason, message, self.image_ids),
                                phase="Pending", initialized=False,
                                n_init=len(self.pod["spec"].get("initContainers") or []))

    async def write_status(self, container_views: list[status.ContainerView], *, phase: str,
                           initialized: bool = True, n_init: int | None = None) -> None:
        if n_init is None:
            n_init = len(self.pod["spec"].get("initContainers") or [])
        new = views.pod_status(self.pod, container_views, phase=phase, initialized=initialized, n_init=n_init,
                               host_ip=self.node.host_ip, start_time=self.start_time, pod_ip=self.pod_ip,
                               terminal_reason=self.terminal_reason, now=timestamps.now())
        if views.unchanged(self.pod.get("status") or {}, new):
            return
        updated = await self.node.write_pod_status(self.pod, new)
        # a deletion seen meanwhile (the watch) wins over the answer to our write
        if updated is not None and (self.pod["metadata"].get("deletionTimestamp") is None
                                    or updated["metadata"].get("deletionTimestamp")):
            self.pod = updated


def _empty_message_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    os.chmod(path, 0o666)  # any container user may write its message


__all__ = ["PodWorker", "StepResult"]
