"""Resource usage of this node's pods and of the node, from cgroups (the kubelet's
summary role): the `UsageSource` behind `metrics.k8s.io` (`shoal.apiserver.metrics`).

CPU is a rate: the difference of two cumulative `cpu_usage_ns` samples over the time
between them. The source keeps one *base* sample per container (and for the node); a
request computes each rate against it and re-bases a container once its base is older
than `WINDOW_SECONDS`, so steady readers get windows of up to that length, as
metrics-server's scrape interval gives. A container seen for the first time (or read
again within `MIN_WINDOW_SECONDS`) is sampled twice, `MIN_WINDOW_SECONDS` apart: the
first `kubectl top` after a pod starts answers in about half a second rather than "not
available". Memory is the working set of the last sample (usage - inactive file), as
the kubelet reports it. Cgroup reads run in threads (`Runtime.stats`); the node figure
is the root cgroup's.

Pods are listed through the API client; their containers are found by the container ids
the node agent gives them (`paths.container_id`). A container that ends between the
list and the read is left out, as is a pod with no running container.

Concurrency: one instance per daemon, used from its event loop only; concurrent
requests share the base samples (each read is independent, the last write wins).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import time
from typing import Any, Protocol

from shoal import timestamps
from shoal.apiserver.metrics import ContainerUsage, NodeUsage, PodUsage
from shoal.node import paths
from shoal.runtime import cgroups
from shoal.runtime.errors import RuntimeFailure

Obj = dict[str, Any]

WINDOW_SECONDS = 15.0
MIN_WINDOW_SECONDS = 0.5
NODE_KEY = "<node>"


class PodLister(Protocol):
    async def list(self, resource: str, namespace: str | None = None, **kwargs: Any) -> tuple[list[Obj], Any]: ...


class StatsReader(Protocol):
    """The runtime's cgroup figures of one container (`Runtime.stats`)."""

    async def stats(self, cid: str) -> dict[str, int | None]: ...


@dataclasses.dataclass(frozen=True)
class Sample:
    at: float
    """time.monotonic() of the read."""
    cpu_ns: int
    memory_bytes: int


def rate(base: Sample, current: Sample) -> tuple[int, float]:
    """(CPU nanocores, window seconds) between two samples of one cgroup; a counter that
    went down (the cgroup was recreated) counts from zero over the window."""
    window = current.at - base.at
    if window <= 0:
        return 0, 0.0
    used = current.cpu_ns - base.cpu_ns if current.cpu_ns >= base.cpu_ns else current.cpu_ns
    return int(used / window), window


def running_containers(pod: Obj) -> list[tuple[str, str]]:
    """(container name, container id) of every running container of a pod (regular and
    restartable init containers, e.g. a native sidecar)."""
    status = pod.get("status") or {}
    found = []
    for cs in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or []):
        if "running" in (cs.get("state") or {}):
            found.append((cs["name"], paths.container_id(pod["metadata"]["uid"], cs["name"],
                                                        int(cs.get("restartCount") or 0))))
    return found


class CgroupUsage:
    """`UsageSource` over the API (which pods) and the runtime (their cgroups)."""

    def __init__(self, client: PodLister, runtime: StatsReader, node_name: str,
                 node_labels: dict[str, str] | None = None) -> None:
        self._client = client
        self._runtime = runtime
        self._node_name = node_name
        self._node_labels = dict(node_labels or {})
        self._base: dict[str, Sample] = {}

    async def _read(self, cid: str) -> Sample | None:
        try:
            figures = await self._runtime.stats(cid)
        except RuntimeFailure:
            return None  # the container ended between the list and the read
        return _sample(figures)

    async def _read_node(self) -> Sample | None:
        return _sample(await asyncio.to_thread(cgroups.stats, "/"))

    async def _rates(self, readers: dict[str, Any]) -> dict[str, tuple[int, float, int]]:
        """{key: (nanocores, window, memory)} for each key's reader, sampled twice when
        its base is missing or too young."""
        current = dict(zip(readers, await asyncio.gather(*(r() for r in readers.values()))))
        young = []
        for key, sample in current.items():
            if sample is None:
                continue
            base = self._base.setdefault(key, sample)
            if sample.at - base.at < MIN_WINDOW_SECONDS:
                young.append(key)
        if young:
            await asyncio.sleep(MIN_WINDOW_SECONDS)
            current.update(zip(young, await asyncio.gather(*(readers[k]() for k in young))))
        out = {}
        for key, sample in current.items():
            base = self._base.get(key)
            if sample is None or base is None:
                continue
            cpu, window = rate(base, sample)
            if window > 0:
                out[key] = (cpu, window, sample.memory_bytes)
            if window >= WINDOW_SECONDS:
                self._base[key] = sample
        for gone in set(self._base) - set(readers) - {NODE_KEY}:
            del self._base[gone]
        return out

    async def pod_usage(self, namespace: str | None) -> list[PodUsage]:
        pods, _ = await self._client.list("pods", namespace)
        targets = {(p["metadata"]["namespace"], p["metadata"]["name"]): (p, running_containers(p))
                   for p in pods if not (p.get("spec") or {}).get("nodeName")
                   or p["spec"]["nodeName"] == self._node_name}
        readers = {cid: _reader(self._read, cid) for _, containers in targets.values()
                   for _, cid in containers}
        rates = await self._rates(readers)
        now = dt.datetime.now(timestamps.UTC)
        found = []
        for (ns, name), (pod, containers) in sorted(targets.items()):
            usage = tuple(ContainerUsage(cname, rates[cid][0], rates[cid][2])
                          for cname, cid in containers if cid in rates)
            if not usage:
                continue
            window = max(rates[cid][1] for _, cid in containers if cid in rates)
            found.append(PodUsage(ns, name, dict(pod["metadata"].get("labels") or {}), now,
                                  round(window, 3), usage))
        return found

    async def node_usage(self) -> list[NodeUsage]:
        rates = await self._rates({NODE_KEY: self._read_node})
        if NODE_KEY not in rates:
            return []
        cpu, window, memory = rates[NODE_KEY]
        return [NodeUsage(self._node_name, self._node_labels, dt.datetime.now(timestamps.UTC),
                          round(window, 3), cpu, memory)]


def _sample(figures: dict[str, int | None]) -> Sample | None:
    if figures.get("cpu_usage_ns") is None:
        return None
    return Sample(time.monotonic(), int(figures["cpu_usage_ns"] or 0), int(figures.get("memory_bytes") or 0))


def _reader(read: Any, cid: str) -> Any:
    async def run() -> Sample | None:
        return await read(cid)

    return run
