"""PodWorker: one asyncio task per pod, running a level-based `sync` (the kubelet's pod
worker + syncPod).

Each sync re-reads what runs (the runtime's containers whose id starts with the pod uid,
see `paths.container_id`), makes the decisions for every container in spec order, and
writes the pod status if it changed:

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

Concurrency: a worker's syncs are serialized (one task); probe loops and exit waiters are
side tasks that only record a verdict and set `wake`. Different pods run in parallel.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shoal.fsutil import write_atomic
from shoal.node import envvars, intent, messages, paths, podfiles, probes, pulling, status, volumes
from shoal.node.errors import (
    ContainerConfigError,
    ContainerCreateError,
    ImagePullError,
    VolumeError,
)

if TYPE_CHECKING:
    from shoal.node.agent import NodeAgent

log = logging.getLogger(__name__)

Obj = dict[str, Any]
TERMINAL = ("Succeeded", "Failed")


@dataclasses.dataclass
class Observed:
    """One runtime container of this pod."""

    index: int
    container_id: str
    state: str  # created | running | exited | unknown
    exit_code: int | None
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    oom_killed: bool
    reason: str
    labels: dict
    message: str = ""  # termination message (read by `observe` for exited instances)

    def terminated(self) -> status.Terminated:
        code = self.exit_code if self.exit_code is not None else 137
        return status.Terminated(
            exit_code=code,
            reason=status.terminated_reason(code, self.oom_killed),
            started_at=self.started_at,
            finished_at=self.finished_at,
            container_id=self.container_id,
            message=self.message,
        )


@dataclasses.dataclass
class Instance:
    """Side tasks of one running container instance: probes and the exit waiter."""

    container_id: str
    started: bool
    ready: bool
    has_readiness: bool
    loops: list[probes.ProbeLoop]
    waiter: asyncio.Task | None = None
    kill_reason: str | None = None
    kill_grace: float | None = None  # a probe's own terminationGracePeriodSeconds

    def cancel(self) -> None:
        for loop in self.loops:
            loop.cancel()
        if self.waiter is not None:
            self.waiter.cancel()


def _ts(value: Any) -> float:
    if value is None:
        return time.time()
    if isinstance(value, (int, float)):
        return float(value)
    return value.timestamp()


class PodWorker:
    def __init__(self, agent: "NodeAgent", pod: Obj) -> None:
        self.agent = agent
        self.pod = pod
        meta = pod["metadata"]
        self.uid: str = meta["uid"]
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        self.key = f"{self.namespace}/{self.name}"
        self.root = paths.pod_dir(agent.settings, self.namespace, self.name, self.uid)
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
        self._config: tuple[dict, dict, dict] = ({}, {}, {})
        self._volume_paths: dict[str, Path] = {}
        self._etc_files: dict[str, Path] = {}
        self._pull_failures: dict[str, int] = {}
        self._spec_changed: set[str] = set()  # instances killed because the spec changed

    # -- loop ----------------------------------------------------------------------------

    def start(self) -> None:
        self.task = asyncio.create_task(self.run(), name=f"pod-{self.key}")

    def update(self, pod: Obj) -> None:
        self.pod = pod
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
                await asyncio.wait_for(self.wake.wait(), timeout=max(0.05, min(delay, self.agent.resync)))
            except asyncio.TimeoutError:
                pass

    async def stop_side_tasks(self) -> None:
        for inst in self.instances.values():
            inst.cancel()
        self.instances.clear()

    # -- observation ---------------------------------------------------------------------

    async def observe(self) -> dict[str, list[Observed]]:
        """Runtime containers of this pod by container name, newest instance first."""
        out: dict[str, list[Observed]] = {}
        for st in await self.agent.containers_of(self.uid):  # shoal.runtime.ContainerStatus
            key = paths.parse_container_id(st.id)
            if key is None or key.pod_uid != paths.uid_part(self.uid):
                continue
            out.setdefault(key.container, []).append(Observed(
                index=key.restart_count, container_id=st.id, state=st.state, exit_code=st.exit_code,
                started_at=st.started_at, finished_at=st.finished_at, oom_killed=bool(st.oom_killed),
                reason=st.reason or "", labels=dict(st.labels or {}),
            ))
        specs = {paths.name_part(c["name"]): c for c in list(self.pod["spec"].get("initContainers") or [])
                 + list(self.pod["spec"].get("containers") or [])}
        for part, lst in out.items():
            lst.sort(key=lambda o: o.index, reverse=True)
            c = specs.get(part)
            for o in lst[:2]:
                if o.state == "exited" and c is not None:
                    o.message = await asyncio.to_thread(
                        messages.termination_message, paths.termination_message_path(self.root, c["name"], o.index),
                        paths.log_path(self.root, c["name"], o.index),
                        policy=c.get("terminationMessagePolicy", "File"), exit_code=o.exit_code)
        return out

    # -- the sync ------------------------------------------------------------------------

    async def sync(self) -> float:
        """One pass; returns seconds until the worker wants to run again."""
        pod = self.pod
        if pod["metadata"].get("deletionTimestamp"):
            await self.terminate(pod)
            await self.agent.forget_pod(self, delete_object=True)
            self.done = True
            return 0
        spec = pod["spec"]
        if self.start_time is None:
            self.start_time = (pod.get("status") or {}).get("startTime") or status.rfc3339(time.time())
        observed = await self.observe()
        deadline = spec.get("activeDeadlineSeconds")
        left = float("inf")
        if deadline and not self.terminal_phase and (pod.get("status") or {}).get("phase") not in TERMINAL:
            started = dt.datetime.strptime(self.start_time, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
            left = started.timestamp() + float(deadline) - time.time()
            if left <= 0:
                self.terminal_phase = "Failed"
                self.terminal_reason = ("DeadlineExceeded",
                                        "Pod was active on the node longer than the specified deadline")
                self.agent.emit(pod, "Normal", "DeadlineExceeded", self.terminal_reason[1])
        if self.terminal_phase or (pod.get("status") or {}).get("phase") in TERMINAL:
            self.terminal_phase = self.terminal_phase or pod["status"]["phase"]
            await self._stop_all(observed, grace=float(spec.get("terminationGracePeriodSeconds", 30)))
            await self.agent.network.delete_sandbox(self.key)
            await self.write_status(await self._views_terminal(await self.observe()), phase=self.terminal_phase)
            return self.agent.resync * 10

        try:
            if spec.get("hostNetwork"):
                sandbox = podfiles.HostSandbox(ip=self.agent.host_ip, hostname=podfiles.hostname(pod))
            else:
                sandbox = await self.agent.network.create_sandbox(
                    self.key, hostname=podfiles.hostname(pod), **self._sandbox_options(pod))
        except Exception as exc:  # noqa: BLE001 - shown in status, retried
            await self._all_waiting("ContainerCreating", f"failed to create pod sandbox: {exc}", observed)
            self.agent.emit(pod, "Warning", "FailedCreatePodSandBox", f"Failed to create pod sandbox: {exc}")
            return 2.0
        self.pod_ip = sandbox.ip
        try:
            etc_files = await asyncio.to_thread(self._write_pod_files, sandbox)
            await self.prepare_volumes()
        except VolumeError as exc:
            self.agent.emit(pod, "Warning", "FailedMount", f"MountVolume.SetUp failed: {exc}")
            await self._all_waiting("ContainerCreating", "", observed)
            return 2.0
        self._etc_files = etc_files

        delays: list[float] = [self.agent.resync, max(left, 0.05)]
        init_views: list[status.ContainerView] = []
        initialized = True
        init_failed = False
        # Once initialized, a pod stays so (as in Kubernetes): completed init containers are
        # not run again and a restarting sidecar does not hold the regular containers back.
        was_initialized = self.initialized_once or _condition_true(pod, "Initialized")
        for c in spec.get("initContainers") or []:
            sidecar = c.get("restartPolicy") == "Always"
            insts = observed.get(paths.name_part(c["name"]), [])
            if was_initialized and not sidecar:
                init_views.append(self._placeholder(c, insts, "PodInitializing"))
                continue
            view, done, failed, delay = await self.step(c, insts, sidecar=sidecar, init=not sidecar, sandbox=sandbox)
            init_views.append(view)
            delays.append(delay)
            if failed:
                init_failed = True
            if not done and not was_initialized:
                initialized = False
                break
        if initialized and not init_failed:
            self.initialized_once = True
        # init containers after the blocking one are shown waiting (PodInitializing)
        shown = {v.name for v in init_views}
        for c in spec.get("initContainers") or []:
            if c["name"] not in shown:
                init_views.append(self._placeholder(c, observed.get(paths.name_part(c["name"]), []), "PodInitializing",
                                                    sidecar=c.get("restartPolicy") == "Always"))

        views: list[status.ContainerView] = []
        if initialized and not init_failed:
            hold = False  # a container before this one must be ready first (PodHooks.holds_start)
            for c in spec["containers"]:
                insts = observed.get(paths.name_part(c["name"]), [])
                if hold and not insts:
                    views.append(self._placeholder(c, insts, "ContainerCreating"))
                    continue
                view, _, _, delay = await self.step(c, insts, sidecar=False, init=False, sandbox=sandbox)
                views.append(view)
                delays.append(delay)
                if not view.ready and self.agent.hooks.holds_start(pod, c):
                    hold = True
        else:
            for c in spec["containers"]:
                views.append(self._placeholder(c, observed.get(paths.name_part(c["name"]), []), "PodInitializing"))

        phase = status.pod_phase(spec.get("restartPolicy", "Always"), init_views, views,
                                 initialized=initialized, init_failed=init_failed)
        if initialized and spec.get("restartPolicy", "Always") != "Always" and phase in TERMINAL:
            if not self.completing:
                self.completing = True
                grace = float(spec.get("terminationGracePeriodSeconds", 30))
                await self._stop_sidecars(observed, grace)
                return 0.0  # re-observe with the sidecars stopped
            self.terminal_phase = phase
        if init_failed:
            self.terminal_phase = "Failed"
        await self.write_status(init_views + views, phase=phase, initialized=initialized,
                                n_init=len(init_views))
        return min(delays)

    def _sandbox_options(self, pod: Obj) -> dict[str, Any]:
        rules = self.agent.hooks.sandbox_iptables(pod)
        return {"netns_iptables": rules} if rules else {}

    # -- one container ---------------------------------------------------------------------

    def _base_view(self, c: Obj, insts: list[Observed], sidecar: bool) -> status.ContainerView:
        image_id = self.image_ids.get(c["name"])
        if image_id is None:  # adopted: the image resolved when the container was made
            st = self.pod.get("status") or {}
            image_id = next((cs.get("imageID", "") for cs in (st.get("containerStatuses") or [])
                             + (st.get("initContainerStatuses") or []) if cs.get("name") == c["name"]), "")
        view = status.ContainerView(name=c["name"], image=c.get("image", ""), image_id=image_id, sidecar=sidecar)
        if insts:
            view.restart_count = insts[0].index
            if len(insts) > 1 and insts[1].state == "exited":
                view.last = insts[1].terminated()
        return view

    def _placeholder(self, c: Obj, insts: list[Observed], reason: str, sidecar: bool = False) -> status.ContainerView:
        view = self._base_view(c, insts, sidecar)
        if insts and insts[0].state == "exited":
            view.terminated = insts[0].terminated()
        else:
            view.waiting_reason = reason
        return view

    async def step(self, c: Obj, insts: list[Observed], *, sidecar: bool, init: bool,
                   sandbox: Any) -> tuple[status.ContainerView, bool, bool, float]:
        """Drive one container; returns (view, done, failed, seconds until next look).

        done: for an init container, it completed successfully; for a sidecar, it runs and
        its startup (and readiness, if any) probe passed. failed: the pod cannot go on."""
        name = c["name"]
        policy = self.pod["spec"].get("restartPolicy", "Always")
        view = self._base_view(c, insts, sidecar)
        cur = insts[0] if insts else None
        if cur is not None and cur.state == "running":
            inst = self.instances.get(name)
            if inst is None or inst.container_id != cur.container_id:
                if inst is not None:
                    inst.cancel()
                else:  # adopted (daemon restart): let hooks re-make what they serve it (xDS socket)
                    await self.agent.hooks.plan_container(self.pod, c, sandbox, self.root)
                inst = self._track(c, cur.container_id, sandbox)
            wanted = intent.container_hash(c)
            if cur.labels.get(intent.LABEL_HASH, wanted) != wanted and not inst.kill_reason:
                inst.kill_reason = f"Container {name} definition changed, will be restarted"
                self._spec_changed.add(cur.container_id)
            if inst.kill_reason:
                grace = inst.kill_grace if inst.kill_grace is not None else float(
                    self.pod["spec"].get("terminationGracePeriodSeconds", 30))
                await self._kill(c, cur.container_id, grace, inst.kill_reason)
                return view, False, False, 0.0
            view.container_id = cur.container_id
            view.running_since = cur.started_at or dt.datetime.now(dt.timezone.utc)
            view.started = inst.started
            view.ready = inst.ready and inst.started
            if sidecar:
                done = inst.started and (inst.ready or not inst.has_readiness)
                return view, done, False, self.agent.resync
            return view, False, False, self.agent.resync

        if cur is not None and cur.state in ("created", "unknown"):
            # a crash between create and start, or a dead shim: remove and redo this index
            await self.agent.remove_container(cur.container_id)
            return await self._start(c, cur.index, view, insts[1:2], sandbox, sidecar=sidecar)

        if cur is not None:  # exited
            inst = self.instances.pop(name, None)
            if inst is not None:
                inst.cancel()
            term = cur.terminated()
            if cur.container_id in self._spec_changed:
                restart = True
            elif init:
                restart = term.exit_code != 0 and policy != "Never"
            elif sidecar:
                restart = not self.completing
            else:
                restart = policy == "Always" or (policy == "OnFailure" and term.exit_code != 0)
            if not restart:
                view.terminated = term
                view.container_id = cur.container_id
                failed = init and term.exit_code != 0
                return view, term.exit_code == 0 or sidecar, failed, self.agent.resync
            finished = _ts(cur.finished_at)
            ran_for = finished - _ts(cur.started_at)
            now = time.time()
            gate = 0.0 if cur.container_id in self._spec_changed else self.agent.backoff.remaining(
                f"{self.uid}/{name}", finished_at=finished, ran_for=ran_for, now=now)
            if gate > 0:
                delay = self.agent.backoff.current_delay(f"{self.uid}/{name}")
                view.last = term
                view.waiting_reason = "CrashLoopBackOff"
                view.waiting_message = (f"back-off {messages.fmt_delay(delay)} restarting failed container={name} "
                                        f"pod={self.name}_{self.namespace}({self.uid})")
                self._note(f"backoff:{name}", cur.container_id, "Warning", "BackOff",
                           f"Back-off restarting failed container {name} in pod "
                           f"{self.name}_{self.namespace}({self.uid})", c)
                return view, False, False, gate
            for old in insts[1:]:
                await self.agent.remove_container(old.container_id)
            view.last = term
            return await self._start(c, cur.index + 1, view, [cur], sandbox, sidecar=sidecar)

        return await self._start(c, 0, view, [], sandbox, sidecar=sidecar)

    async def _start(self, c: Obj, index: int, view: status.ContainerView, previous: list[Observed],
                     sandbox: Any, *, sidecar: bool) -> tuple[status.ContainerView, bool, bool, float]:
        name = c["name"]
        view.restart_count = index
        pull_key = f"{self.uid}/{name}/pull"
        create_key = f"{self.uid}/{name}/create"
        try:
            plan = await self.agent.hooks.plan_container(self.pod, c, sandbox, self.root)
            img = plan if plan is not None else await self._ensure_image(c, pull_key)
            configmaps, secrets, _ = self._config
            env = envvars.container_env(self.pod, c, configmaps=configmaps, secrets=secrets, pod_ip=self.pod_ip)
            mounts = intent.container_mounts(c, self._volume_paths, self._etc_files)
            if plan is not None:
                mounts += plan.mounts
            message_file = paths.termination_message_path(self.root, name, index)
            message_file.parent.mkdir(parents=True, exist_ok=True)
            message_file.write_bytes(b"")
            os.chmod(message_file, 0o666)  # any container user may write its message
            mounts.append(intent.MountSpec(c.get("terminationMessagePath") or "/dev/termination-log",
                                           str(message_file)))
            cid = paths.container_id(self.uid, name, index)
            await self.agent.create_and_start(self.pod, c, cid, img, env, mounts, sandbox, index,
                                              paths.log_path(self.root, name, index))
        except ImagePullError as exc:
            return self._pull_backoff(c, view, pull_key, exc)
        except ContainerConfigError as exc:
            view.waiting_reason, view.waiting_message = exc.reason, str(exc)
            self._note(f"config:{name}", str(exc), "Warning", "Failed", f"Error: {exc}", c)
            return view, False, False, 2.0
        except VolumeError as exc:
            view.waiting_reason, view.waiting_message = "ContainerCreating", ""
            self._note(f"mount:{name}", str(exc), "Warning", "FailedMount", f"MountVolume.SetUp failed: {exc}", c)
            return view, False, False, 2.0
        except ContainerCreateError as exc:
            now = time.time()
            gate = self.agent.backoff.remaining(create_key, finished_at=now, ran_for=0, now=now)
            view.waiting_reason, view.waiting_message = exc.reason, str(exc)
            self.agent.emit(self.pod, "Warning", "Failed", f"Error: {exc}", field_path(self.pod, c))
            return view, False, False, max(gate, self.agent.backoff.policy.base)
        self.agent.backoff.forget(pull_key)
        self.agent.backoff.forget(create_key)
        self.image_ids[name] = getattr(img, "digest", None) or getattr(img, "image_id", "") or ""
        view.image_id = self.image_ids[name]
        if not await self._post_start(c, cid, sandbox):
            return view, False, False, 0.0  # killed: the next sync restarts it per policy
        view.container_id = cid
        view.running_since = dt.datetime.now(dt.timezone.utc)
        inst = self._track(c, cid, sandbox)
        view.started = inst.started
        view.ready = inst.ready and inst.started
        done = sidecar and inst.started and (inst.ready or not inst.has_readiness)
        return view, done, False, self.agent.resync

    def _pull_backoff(self, c: Obj, view: status.ContainerView, key: str,
                      exc: ImagePullError) -> tuple[status.ContainerView, bool, bool, float]:
        now = time.time()
        gate = self.agent.backoff.remaining(key, finished_at=now, ran_for=0, now=now)
        image = c.get("image", "")
        if self._pull_failures.get(key, 0) == 0:
            view.waiting_reason, view.waiting_message = "ErrImagePull", str(exc)
            self.agent.emit(self.pod, "Warning", "Failed", str(exc), field_path(self.pod, c))
            self.agent.emit(self.pod, "Warning", "Failed", "Error: ErrImagePull", field_path(self.pod, c))
        else:
            view.waiting_reason = "ImagePullBackOff"
            view.waiting_message = f'Back-off pulling image "{image}": {exc}'
            self.agent.emit(self.pod, "Normal", "BackOff", f'Back-off pulling image "{image}"', field_path(self.pod, c))
        self._pull_failures[key] = self._pull_failures.get(key, 0) + 1
        return view, False, False, max(gate, self.agent.backoff.policy.base)

    def _note(self, key: str, instance: str, type_: str, reason: str, message: str, c: Obj) -> None:
        """Emit an event once per (key, instance): one BackOff per exit, not per sync."""
        if (key, instance) in self._noted:
            return
        self._noted = {k for k in self._noted if k[0] != key}
        self._noted.add((key, instance))
        self.agent.emit(self.pod, type_, reason, message, field_path(self.pod, c))

    async def _ensure_image(self, c: Obj, pull_key: str) -> Any:
        image = c.get("image", "")
        policy = c.get("imagePullPolicy") or "IfNotPresent"
        started = time.monotonic()
        fp = field_path(self.pod, c)
        credentials = None
        pull_secrets = [ref.get("name") for ref in self.pod["spec"].get("imagePullSecrets") or []]
        if pull_secrets and pulling.names_registry(image):
            found = [await self.agent.get_object("secrets", self.namespace, n) for n in pull_secrets if n]
            credentials = pulling.pull_credentials([f for f in found if f], pulling.registry_host(image))
        img, pulled = await self.agent.puller.ensure(
            image, policy, lambda: self.agent.emit(self.pod, "Normal", "Pulling", f'Pulling image "{image}"', fp),
            credentials=credentials)
        if pulled:
            self.agent.emit(self.pod, "Normal", "Pulled",
                            f'Successfully pulled image "{image}" in {time.monotonic() - started:.3f}s', fp)
        elif (c["name"], "pulled") not in self._noted:
            self._noted.add((c["name"], "pulled"))
            self.agent.emit(self.pod, "Normal", "Pulled", f'Container image "{image}" already present on machine', fp)
        self._pull_failures.pop(pull_key, None)
        return img

    # -- probes and exit waiters -----------------------------------------------------------

    def _track(self, c: Obj, cid: str, sandbox: Any) -> Instance:
        name = c["name"]
        startup, liveness, readiness = c.get("startupProbe"), c.get("livenessProbe"), c.get("readinessProbe")
        inst = Instance(container_id=cid, started=startup is None, ready=readiness is None,
                        has_readiness=readiness is not None, loops=[])
        # Adopting a running container (daemon restart): keep the verdicts the pod status
        # shows for this very instance, so a restart does not flap Ready.
        st = self.pod.get("status") or {}
        for cs in (st.get("containerStatuses") or []) + (st.get("initContainerStatuses") or []):
            if cs.get("name") == name and cs.get("containerID") == f"shoal://{cid}":
                inst.started = inst.started or bool(cs.get("started"))
                inst.ready = inst.ready or bool(cs.get("ready"))
        self.instances[name] = inst

        async def exec_runner(args: list[str], timeout: float) -> tuple[int, bytes, bytes]:
            return await self.agent.runtime.exec(cid, args, timeout=timeout)

        async def on_change(kind: str, ok: bool, message: str) -> None:
            if self.instances.get(name) is not inst:
                return
            if kind == "startup":
                if ok:
                    inst.started = True
                    for loop in inst.loops:
                        if loop.kind != "startup" and loop.task is None:
                            loop.start()
                else:
                    inst.kill_reason = f"Container {name} failed startup probe, will be restarted"
                    inst.kill_grace = _probe_grace(startup)
            elif kind == "readiness":
                inst.ready = ok
            elif kind == "liveness" and not ok:
                inst.kill_reason = f"Container {name} failed liveness probe, will be restarted"
                inst.kill_grace = _probe_grace(liveness)
            self.wake.set()

        def on_failure(kind: str, message: str) -> None:
            if self.instances.get(name) is inst:
                self.agent.emit(self.pod, "Warning", "Unhealthy", f"{kind.capitalize()} probe failed: {message}",
                                field_path(self.pod, c))

        host, netns = self._handler_target(sandbox)
        for kind, probe in (("startup", startup), ("liveness", liveness), ("readiness", readiness)):
            if probe is None:
                continue
            loop = probes.ProbeLoop(kind, probe, host=host, container=c, exec_runner=exec_runner,
                                    on_change=on_change, time_scale=self.agent.probe_time_scale, netns=netns,
                                    on_failure=on_failure)
            inst.loops.append(loop)
            if kind == "startup" or startup is None or inst.started:
                if kind == "startup" and inst.started:
                    continue  # passed already: a startup probe does not run again
                loop.start()

        async def wait_exit() -> None:
            try:
                await self.agent.runtime.wait(cid)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the periodic resync notices exits too
                return
            self.wake.set()

        inst.waiter = asyncio.create_task(wait_exit(), name=f"wait-{cid}")
        return inst

    # -- stopping --------------------------------------------------------------------------

    async def _kill(self, c: Obj, cid: str, grace: float, message: str) -> None:
        self.agent.emit(self.pod, "Normal", "Killing", message, field_path(self.pod, c))
        inst = self.instances.pop(c["name"], None)
        if inst is not None:
            inst.cancel()
        await self._pre_stop(c, cid, grace)
        await self.agent.stop_container(cid, grace)

    def _handler_target(self, sandbox: Any) -> tuple[str, str | None]:
        """Where httpGet/tcpSocket handlers connect: the pod IP from the host, or
        127.0.0.1 inside the pod netns for pods the hooks say so (meshed pods)."""
        if sandbox is not None and self.agent.hooks.probe_in_netns(self.pod) and sandbox.netns_path.startswith("/"):
            return "127.0.0.1", sandbox.netns_path
        return (getattr(sandbox, "ip", None) or self.pod_ip or "127.0.0.1"), None

    async def _post_start(self, c: Obj, cid: str, sandbox: Any) -> bool:
        """The postStart hook, run before the next container starts (as the kubelet does);
        on failure the container is killed (FailedPostStartHook). False if it was."""
        hook = (c.get("lifecycle") or {}).get("postStart")
        if not hook:
            return True

        async def exec_runner(args: list[str], timeout: float) -> tuple[int, bytes, bytes]:
            return await self.agent.runtime.exec(cid, args, timeout=timeout)

        host, netns = self._handler_target(sandbox)
        grace = float(self.pod["spec"].get("terminationGracePeriodSeconds", 30))
        result = await probes.run_handler(hook, host=host, container=c, timeout=max(grace, 30.0),
                                          exec_runner=exec_runner, netns=netns)
        if result.success:
            return True
        fp = field_path(self.pod, c)
        self.agent.emit(self.pod, "Warning", "FailedPostStartHook", f"PostStartHook failed: {result.message}", fp)
        await self._kill(c, cid, grace, f"FailedPostStartHook: container {c['name']} will be restarted")
        return False

    async def _pre_stop(self, c: Obj, cid: str, grace: float) -> None:
        hook = (c.get("lifecycle") or {}).get("preStop")
        if not hook:
            return

        async def exec_runner(args: list[str], timeout: float) -> tuple[int, bytes, bytes]:
            return await self.agent.runtime.exec(cid, args, timeout=timeout)

        host, netns = self._handler_target(await self.agent.network.get_sandbox(self.key))
        try:
            result = await asyncio.wait_for(
                probes.run_handler(hook, host=host, container=c, timeout=max(grace, 1.0),
                                   exec_runner=exec_runner, netns=netns),
                timeout=max(grace, 1.0))
        except asyncio.TimeoutError:
            return
        if not result.success:
            self.agent.emit(self.pod, "Warning", "FailedPreStopHook",
                            f"PreStopHook failed: {result.message}", field_path(self.pod, c))

    async def _stop_sidecars(self, observed: dict[str, list[Observed]], grace: float) -> None:
        sidecars = [c for c in self.pod["spec"].get("initContainers") or [] if c.get("restartPolicy") == "Always"]
        for c in reversed(sidecars):
            insts = observed.get(paths.name_part(c["name"])) or []
            if insts and insts[0].state == "running":
                await self._kill(c, insts[0].container_id, grace, f"Stopping container {c['name']}")

    async def _stop_all(self, observed: dict[str, list[Observed]], grace: float) -> None:
        """Stop every running container: regular ones first (concurrently), then sidecars
        in reverse order, sharing one grace period as the kubelet does."""
        spec = self.pod["spec"]
        deadline = time.monotonic() + grace
        regular = [c for c in spec["containers"]] + [
            c for c in spec.get("initContainers") or [] if c.get("restartPolicy") != "Always"]
        sidecars = [c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]

        def running(c: Obj) -> str | None:
            insts = observed.get(paths.name_part(c["name"])) or []
            return insts[0].container_id if insts and insts[0].state == "running" else None

        await asyncio.gather(*(
            self._kill(c, cid, grace, f"Stopping container {c['name']}")
            for c in regular if (cid := running(c))))
        for c in reversed(sidecars):
            cid = running(c)
            if cid:
                await self._kill(c, cid, max(1.0, deadline - time.monotonic()), f"Stopping container {c['name']}")
        await self.stop_side_tasks()

    async def terminate(self, pod: Obj) -> None:
        """Graceful deletion: stop everything, then remove every trace of the pod."""
        grace = pod["metadata"].get("deletionGracePeriodSeconds")
        if grace is None:
            grace = pod["spec"].get("terminationGracePeriodSeconds", 30)
        observed = await self.observe()
        await self._stop_all(observed, float(grace))
        await self.remove_everything()

    async def remove_everything(self) -> None:
        await self.stop_side_tasks()
        for insts in (await self.observe()).values():
            for o in insts:
                await self.agent.remove_container(o.container_id)
        await self.agent.network.delete_sandbox(self.key)
        await self.agent.hooks.release_pod(self.pod, self.root)
        await asyncio.to_thread(volumes.teardown_pod_volumes, self.root)
        await asyncio.to_thread(shutil.rmtree, self.root, True)
        self.agent.backoff.forget_prefix(f"{self.uid}/")

    # -- files, config, volumes ------------------------------------------------------------

    def _write_pod_files(self, sandbox: Any) -> dict[str, Path]:
        etc = paths.etc_dir(self.root)
        etc.mkdir(parents=True, exist_ok=True)
        files = {
            "hosts": self.agent.network.hosts_file(podfiles.hostname(self.pod), sandbox.ip),
            "resolv.conf": podfiles.resolv_conf(self.pod, self.agent.network.resolv_conf(self.namespace)),
            "hostname": podfiles.hostname(self.pod) + "\n",
        }
        out = {}
        for fname, text in files.items():
            path = etc / fname
            if not path.exists() or path.read_text() != text:
                write_atomic(path, text)
            out[f"/etc/{fname}"] = path
        return out

    async def prepare_volumes(self) -> None:
        """Fetch the ConfigMaps/Secrets/PVCs the pod uses and set up every volume."""
        configmaps_names, secret_names = envvars.referenced_objects(self.pod)
        claim_names = {v["persistentVolumeClaim"]["claimName"] for v in self.pod["spec"].get("volumes") or []
                       if v.get("persistentVolumeClaim")}
        configmaps = {n: await self.agent.get_object("configmaps", self.namespace, n) for n in configmaps_names}
        secrets = {n: await self.agent.get_object("secrets", self.namespace, n) for n in secret_names}
        claims = {n: await self.agent.get_object("persistentvolumeclaims", self.namespace, n) for n in claim_names}
        self._config = (configmaps, secrets, claims)
        paths_out: dict[str, Path] = {}
        for vol in self.pod["spec"].get("volumes") or []:
            paths_out[vol["name"]] = await asyncio.to_thread(
                volumes.setup_volume, self.agent.settings, self.pod, self.root, vol,
                configmaps=configmaps, secrets=secrets, claims=claims)
        self._volume_paths = paths_out

    # -- status ----------------------------------------------------------------------------

    async def _all_waiting(self, reason: str, message: str, observed: dict[str, list[Observed]]) -> None:
        spec = self.pod["spec"]
        views = []
        for c in list(spec.get("initContainers") or []) + list(spec["containers"]):
            v = self._placeholder(c, observed.get(paths.name_part(c["name"]), []), reason)
            v.waiting_message = message
            views.append(v)
        await self.write_status(views, phase="Pending", initialized=False,
                                n_init=len(spec.get("initContainers") or []))

    async def _views_terminal(self, observed: dict[str, list[Observed]]) -> list[status.ContainerView]:
        spec = self.pod["spec"]
        views = []
        for c in list(spec.get("initContainers") or []) + list(spec["containers"]):
            insts = observed.get(paths.name_part(c["name"]), [])
            v = self._base_view(c, insts, c.get("restartPolicy") == "Always")
            if insts and insts[0].state == "exited":
                v.terminated = insts[0].terminated()
                v.container_id = insts[0].container_id
            else:
                old = {s["name"]: s for s in (self.pod.get("status") or {}).get("containerStatuses") or []}
                if c["name"] in old and "terminated" in (old[c["name"]].get("state") or {}):
                    t = old[c["name"]]["state"]["terminated"]
                    v.terminated = status.Terminated(t.get("exitCode", 0), t.get("reason", ""), None, None,
                                                     (t.get("containerID") or "").removeprefix("shoal://"))
                else:
                    v.waiting_reason = "ContainerCreating"
            views.append(v)
        return views

    async def write_status(self, views: list[status.ContainerView], *, phase: str,
                           initialized: bool = True, n_init: int | None = None) -> None:
        spec = self.pod["spec"]
        if n_init is None:
            n_init = len(spec.get("initContainers") or [])
        init_views, main_views = views[:n_init], views[n_init:]
        terminal = phase in TERMINAL
        containers_ready = bool(main_views) and all(v.ready for v in main_views)
        old = self.pod.get("status") or {}
        now = status.rfc3339(time.time()) or ""
        new: Obj = {
            "phase": phase,
            "conditions": status.merge_conditions(
                status.conditions(initialized=initialized or terminal, containers_ready=containers_ready,
                                  terminal=terminal),
                old.get("conditions"), now),
            "hostIP": self.agent.host_ip,
            "hostIPs": [{"ip": self.agent.host_ip}],
            "startTime": self.start_time,
            "containerStatuses": [v.to_status() for v in main_views],
            "qosClass": status.qos_class(spec),
        }
        if init_views:
            new["initContainerStatuses"] = [v.to_status() for v in init_views]
        if self.terminal_reason is not None:
            new["reason"], new["message"] = self.terminal_reason
        elif old.get("reason"):
            new["reason"], new["message"] = old.get("reason"), old.get("message")
        ip = self.pod_ip or old.get("podIP")
        if ip:
            new["podIP"] = ip
            new["podIPs"] = [{"ip": ip}]
        comparable = {k: old.get(k) for k in new}
        if comparable == new and not (set(old) - set(new) - {"message", "reason", "nominatedNodeName"}):
            return
        await self.agent.write_pod_status(self, new)


def _probe_grace(probe: Obj | None) -> float | None:
    value = (probe or {}).get("terminationGracePeriodSeconds")
    return float(value) if value is not None else None


def _condition_true(pod: Obj, kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def field_path(pod: Obj, c: Obj) -> str:
    for key in ("initContainers", "containers"):
        if any(x.get("name") == c["name"] for x in pod["spec"].get(key) or []):
            return f"spec.{key}{{{c['name']}}}"
    return f"spec.containers{{{c['name']}}}"


__all__ = ["PodWorker", "field_path"]
