"""The Node object of this machine and its heartbeat: what a kubelet's node status
manager and node lease controller do.

Contract:

- `read_host` reads the host's facts once (CPUs, memory, the state dir's filesystem,
  kernel, /etc/os-release, machine and boot ids, the runtime's version); `read_pressure`
  reads what changes (available memory, disk and PIDs). Both are I/O at the edge.
- `node_object(name, host, ...)` and `node_status(host, readings, old, now)` are pure:
  capacity and allocatable (allocatable = capacity less the kubelet's default hard
  eviction thresholds: memory.available 100Mi, nodefs.available 10%), the four
  conditions with Kubernetes' reasons and messages (lastTransitionTime kept while a
  status does not change, lastHeartbeatTime the time of this report), addresses
  (InternalIP, Hostname) and nodeInfo (kubeletVersion is the API server's version,
  containerRuntimeVersion `runc://<version>`).
- `NodeStatusReporter` registers the Node (created with its status, or its status
  replaced when it exists: a user's spec — taints, cordon — is never touched), keeps the
  Lease `kube-node-lease/<node>` renewed, and writes the status every `heartbeat`
  seconds, or at once when a condition changes (pressure is read every `poll` seconds).

Concurrency: one task on the daemon's loop; blocking reads run in a thread. A failed
write is logged and retried on the next tick; a Conflict re-reads the Node.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import platform
import time
from pathlib import Path
from typing import Any, Mapping

from shoal import timestamps
from shoal.api import errors as api_errors
from shoal.api.builtin.nodes import LEASE_NAMESPACE
from shoal.api.client import ApiClient
from shoal.apiserver.http import KUBE_VERSION
from shoal.node.seams import EventSink
from shoal.tasks import cancel_and_wait

log = logging.getLogger(__name__)
Obj = dict[str, Any]

MAX_PODS = 110
"""The kubelet's default --max-pods."""
MEMORY_EVICTION_BYTES = 100 * 1024 * 1024
"""memory.available<100Mi: the kubelet's default hard eviction threshold."""
NODEFS_EVICTION_FRACTION = 0.10
"""nodefs.available<10%."""
PID_PRESSURE_FRACTION = 0.95
"""PIDPressure when more than this share of pid_max is in use."""
LEASE_DURATION_SECONDS = 40
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le",
         "s390x": "s390x", "riscv64": "riscv64"}


@dataclasses.dataclass(frozen=True)
class HostFacts:
    """What does not change while the daemon runs."""

    cpus: int
    memory_bytes: int
    disk_bytes: int
    kernel: str
    os_image: str
    architecture: str
    machine_id: str
    boot_id: str
    runtime_version: str
    """"runc://1.1.5"."""
    internal_ip: str


@dataclasses.dataclass(frozen=True)
class Readings:
    """What the conditions are computed from."""

    memory_available: int
    disk_available: int
    pids_used: int
    pid_max: int


# -- reading the host (I/O) ----------------------------------------------------------------


def _read(path: str, default: str = "") -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return default


def os_image(os_release: str) -> str:
    """PRETTY_NAME of /etc/os-release text (as the kubelet reports it)."""
    for line in os_release.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "PRETTY_NAME":
            return value.strip().strip('"').strip("'")
    return "Linux"


def _meminfo(field: str) -> int:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


async def runtime_version(binary: str = "runc") -> str:
    """`runc://<version>` from `runc --version` ("runc version 1.1.5+ds1")."""
    try:
        proc = await asyncio.create_subprocess_exec(
            binary, "--version", stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL)
        out, _ = await asyncio.wait_for(proc.communicate(), 10)
    except (OSError, asyncio.TimeoutError):
        return f"{binary}://unknown"
    words = out.decode(errors="replace").split()
    version = words[2] if len(words) > 2 and words[:2] == [binary, "version"] else "unknown"
    return f"{binary}://{version}"


def read_host(state_dir: Path, internal_ip: str, runtime: str) -> HostFacts:
    """The host's facts (blocking; run in a thread)."""
    disk = os.statvfs(state_dir)
    return HostFacts(
        cpus=os.cpu_count() or 1,
        memory_bytes=_meminfo("MemTotal"),
        disk_bytes=disk.f_blocks * disk.f_frsize,
        kernel=platform.release(),
        os_image=os_image(_read("/etc/os-release")),
        architecture=_ARCH.get(platform.machine(), platform.machine()),
        machine_id=_read("/etc/machine-id").strip(),
        boot_id=_read("/proc/sys/kernel/random/boot_id").strip(),
        runtime_version=runtime,
        internal_ip=internal_ip,
    )


def read_pressure(state_dir: Path) -> Readings:
    """Available memory, disk and PIDs now (blocking; cheap)."""
    disk = os.statvfs(state_dir)
    loadavg = _read("/proc/loadavg").split()
    used = int(loadavg[3].partition("/")[2]) if len(loadavg) > 3 else 0
    return Readings(
        memory_available=_meminfo("MemAvailable"),
        disk_available=disk.f_bavail * disk.f_frsize,
        pids_used=used,
        pid_max=int(_read("/proc/sys/kernel/pid_max", "32768").strip() or 32768),
    )


# -- the Node (pure) -----------------------------------------------------------------------


def kubelet_version() -> str:
    """The version the node reports: the API server's, as a kubelet of that release would."""
    return KUBE_VERSION["gitVersion"]


def _ki(value: int) -> str:
    return f"{value // 1024}Ki"


def capacity(host: HostFacts) -> Obj:
    return {"cpu": str(host.cpus), "memory": _ki(host.memory_bytes), "pods": str(MAX_PODS),
            "ephemeral-storage": _ki(host.disk_bytes), "hugepages-2Mi": "0"}


def allocatable(host: HostFacts) -> Obj:
    return {"cpu": str(host.cpus),
            "memory": _ki(max(0, host.memory_bytes - MEMORY_EVICTION_BYTES)),
            "pods": str(MAX_PODS),
            "ephemeral-storage": str(int(host.disk_bytes * (1 - NODEFS_EVICTION_FRACTION))),
            "hugepages-2Mi": "0"}


_CONDITIONS = (
    # type, (reason, message) when False, (reason, message) when True
    ("MemoryPressure", ("KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
     ("KubeletHasInsufficientMemory", "kubelet has insufficient memory available")),
    ("DiskPressure", ("KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
     ("KubeletHasDiskPressure", "kubelet has disk pressure")),
    ("PIDPressure", ("KubeletHasSufficientPID", "kubelet has sufficient PID available"),
     ("KubeletHasInsufficientPID", "kubelet has insufficient PID available")),
)


def pressures(host: HostFacts, readings: Readings) -> dict[str, bool]:
    return {
        "MemoryPressure": readings.memory_available < MEMORY_EVICTION_BYTES,
        "DiskPressure": readings.disk_available < host.disk_bytes * NODEFS_EVICTION_FRACTION,
        "PIDPressure": readings.pids_used > readings.pid_max * PID_PRESSURE_FRACTION,
    }


def conditions(host: HostFacts, readings: Readings, old: list[Mapping[str, Any]],
               now: float, *, ready: bool = True) -> list[Obj]:
    """The four node conditions; a condition's lastTransitionTime stays while its status
    does not change."""
    previous = {c.get("type"): c for c in old}
    stamp = timestamps.format_time(now)
    pressure = pressures(host, readings)
    out = []
    for type_, when_false, when_true in _CONDITIONS:
        on = pressure[type_]
        reason, message = when_true if on else when_false
        out.append(_condition(type_, on, reason, message, previous.get(type_), stamp))
    reason, message = (("KubeletReady", "kubelet is posting ready status") if ready else
                       ("KubeletNotReady", "container runtime is down"))
    out.append(_condition("Ready", ready, reason, message, previous.get("Ready"), stamp))
    return out


def _condition(type_: str, on: bool, reason: str, message: str,
               old: Mapping[str, Any] | None, stamp: str) -> Obj:
    status = "True" if on else "False"
    since = old.get("lastTransitionTime") if old and old.get("status") == status else stamp
    return {"type": type_, "status": status, "lastHeartbeatTime": stamp,
            "lastTransitionTime": since or stamp, "reason": reason, "message": message}


_EVENT_REASONS = {
    ("MemoryPressure", "False"): "NodeHasSufficientMemory",
    ("MemoryPressure", "True"): "NodeHasInsufficientMemory",
    ("DiskPressure", "False"): "NodeHasNoDiskPressure",
    ("DiskPressure", "True"): "NodeHasDiskPressure",
    ("PIDPressure", "False"): "NodeHasSufficientPID",
    ("PIDPressure", "True"): "NodeHasInsufficientPID",
    ("Ready", "True"): "NodeReady",
    ("Ready", "False"): "NodeNotReady",
}


def transition_events(old: list[Mapping[str, Any]], new: list[Mapping[str, Any]]) -> list[str]:
    """The kubelet's event reasons for conditions that changed (all of them on a fresh
    registration): "NodeHasSufficientMemory", "NodeReady", ..."""
    before = condition_states(old)
    return [_EVENT_REASONS[(t, st)] for t, st in condition_states(new).items()
            if before.get(t) != st and (t, st) in _EVENT_REASONS]


def condition_states(node_conditions: list[Mapping[str, Any]]) -> dict[str, str]:
    """type -> status, to tell a change from a heartbeat."""
    return {c.get("type"): c.get("status") for c in node_conditions}


def node_status(name: str, host: HostFacts, readings: Readings, old: Mapping[str, Any] | None,
                now: float) -> Obj:
    old_conditions = list(((old or {}).get("status") or {}).get("conditions") or [])
    version = kubelet_version()
    return {
        "capacity": capacity(host),
        "allocatable": allocatable(host),
        "conditions": conditions(host, readings, old_conditions, now),
        "addresses": [{"type": "InternalIP", "address": host.internal_ip},
                      {"type": "Hostname", "address": name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
        "nodeInfo": {
            "machineID": host.machine_id, "systemUUID": host.machine_id,
            "bootID": host.boot_id, "kernelVersion": host.kernel, "osImage": host.os_image,
            "containerRuntimeVersion": host.runtime_version, "kubeletVersion": version,
            "kubeProxyVersion": version, "operatingSystem": "linux",
            "architecture": host.architecture,
        },
    }


def node_object(name: str, host: HostFacts, readings: Readings, now: float, *,
                pod_cidr: str | None = None) -> Obj:
    """The Node as the agent registers it (labels as a kubelet sets them; this one node is
    also the control plane)."""
    labels = {
        "beta.kubernetes.io/arch": host.architecture, "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": host.architecture, "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux", "node-role.kubernetes.io/control-plane": "",
    }
    spec: Obj = {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr]} if pod_cidr else {}
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels},
            "spec": spec, "status": node_status(name, host, readings, None, now)}


def lease_object(name: str, node_uid: str | None, now: float) -> Obj:
    meta: Obj = {"name": name, "namespace": LEASE_NAMESPACE}
    if node_uid:
        meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": name,
                                    "uid": node_uid}]
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta,
            "spec": {"holderIdentity": name, "leaseDurationSeconds": LEASE_DURATION_SECONDS,
                     "renewTime": timestamps.format_micro_time(now)}}


# -- the reporter (I/O) --------------------------------------------------------------------


class NodeStatusReporter:
    """Registers this machine's Node and keeps its status and Lease current."""

    def __init__(self, client: ApiClient, name: str, state_dir: Path, *, internal_ip: str,
                 pod_cidr: str | None = None, runtime_binary: str = "runc",
                 recorder: EventSink | None = None, heartbeat: float = 10.0,
                 poll: float = 2.0) -> None:
        """heartbeat: seconds between status writes and Lease renewals (the kubelet's
        nodeStatusUpdateFrequency and lease renew interval, 10 s); poll: seconds between
        pressure readings (a changed condition is written at once)."""
        self.client = client
        self.name = name
        self.state_dir = state_dir
        self.internal_ip = internal_ip
        self.pod_cidr = pod_cidr
        self.runtime_binary = runtime_binary
        self.recorder = recorder
        self.heartbeat = heartbeat
        self.poll = poll
        self.host: HostFacts | None = None
        self.node: Obj | None = None
        self._task: asyncio.Task[None] | None = None
        self.registered = asyncio.Event()

    async def start(self) -> None:
        """Register the Node (and its Lease), then keep them current in the background."""
        version = await runtime_version(self.runtime_binary)
        self.host = await asyncio.to_thread(read_host, self.state_dir, self.internal_ip, version)
        try:
            await self._register()
        except Exception:  # noqa: BLE001 - the loop retries; the pods must still run
            log.exception("registering node %s failed; retrying", self.name)
        self._task = asyncio.create_task(self._run(), name="node-status")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None

    async def _register(self) -> None:
        assert self.host is not None
        readings = await asyncio.to_thread(read_pressure, self.state_dir)
        now = time.time()
        if self.recorder is not None:
            await self.recorder.event({"apiVersion": "v1", "kind": "Node",
                                       "metadata": {"name": self.name, "uid": self.name}},
                                      "Normal", "Starting", "Starting kubelet.")
        try:
            self.node = await self.client.create(
                "nodes", node_object(self.name, self.host, readings, now, pod_cidr=self.pod_cidr))
            await self._record_transitions([], self.node)
        except api_errors.AlreadyExists:
            await self._write_status(readings)
        await self._renew_lease()
        self.registered.set()

    async def _run(self) -> None:
        last_beat = time.monotonic()
        while True:
            await asyncio.sleep(self.poll)
            try:
                if not self.registered.is_set():
                    await self._register()
                    last_beat = time.monotonic()
                    continue
                readings = await asyncio.to_thread(read_pressure, self.state_dir)
                changed = self._changed(readings)
                if changed or time.monotonic() - last_beat >= self.heartbeat:
                    await self._write_status(readings)
                    await self._renew_lease()
                    last_beat = time.monotonic()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a heartbeat must survive API hiccups
                log.warning("node %s status update failed; retrying", self.name, exc_info=True)

    def _changed(self, readings: Readings) -> bool:
        assert self.host is not None
        old = condition_states(((self.node or {}).get("status") or {}).get("conditions") or [])
        new = {t: "True" if on else "False" for t, on in pressures(self.host, readings).items()}
        return any(old.get(t) != s for t, s in new.items())

    async def _write_status(self, readings: Readings) -> None:
        assert self.host is not None
        for _ in range(3):
            current = self.node
            if current is None:
                current = await self.client.get("nodes", None, self.name)
            body = {**current, "status": node_status(self.name, self.host, readings, current,
                                                     time.time())}
            try:
                self.node = await self.client.update_status("nodes", body)
                await self._record_transitions(
                    list((current.get("status") or {}).get("conditions") or []), self.node)
                return
            except api_errors.Conflict:
                self.node = None
            except api_errors.NotFound:
                self.node = None
                self.registered.clear()  # deleted: register again on the next tick
                return

    async def _record_transitions(self, old: list[Mapping[str, Any]], node: Obj) -> None:
        if self.recorder is None:
            return
        # The kubelet's node events name the node by name as its uid, as Kubernetes does.
        ref = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": self.name,
                                                                "uid": self.name}}
        for reason in transition_events(old, (node.get("status") or {}).get("conditions") or []):
            await self.recorder.event(ref, "Normal", reason,
                                      f"Node {self.name} status is now: {reason}")

    async def _renew_lease(self) -> None:
        now = time.time()
        uid = ((self.node or {}).get("metadata") or {}).get("uid")
        try:
            lease = await self.client.get("leases", LEASE_NAMESPACE, self.name)
        except api_errors.NotFound:
            try:
                await self.client.create("leases", lease_object(self.name, uid, now))
            except api_errors.AlreadyExists:
                pass
            return
        lease["spec"] = {**(lease.get("spec") or {}), "holderIdentity": self.name,
                         "leaseDurationSeconds": LEASE_DURATION_SECONDS,
                         "renewTime": timestamps.format_micro_time(now)}
        try:
            await self.client.update("leases", lease)
        except (api_errors.Conflict, api_errors.NotFound):
            pass  # renewed on the next tick
