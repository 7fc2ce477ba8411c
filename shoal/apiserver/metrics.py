"""The resource metrics API, `metrics.k8s.io/v1beta1`, as metrics-server serves it.

    GET /apis/metrics.k8s.io/v1beta1/pods                         PodMetricsList (all namespaces)
    GET /apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods[/{name}]  PodMetricsList / PodMetrics
    GET /apis/metrics.k8s.io/v1beta1/nodes[/{name}]               NodeMetricsList / NodeMetrics

so `kubectl top pods` (and the HPA, later) work unchanged. The figures come from a
`UsageSource` (declared here, implemented by the node agent's `shoal.node.metrics` from
cgroup usage): CPU as a rate in nanocores over the sample window, memory as the working
set, as the kubelet's summary reports them. This module renders them in metrics-server's
shape (`cpu: "1234567n"`, `memory: "2048Ki"`, `window: "10.5s"`), filters by
`labelSelector`, and answers 404 for a pod without metrics, 405 for any verb but get and
list. `register_kinds()` puts PodMetrics and NodeMetrics in discovery (the generic
handler never serves them: these routes have longer prefixes, which aiohttp's dispatcher
prefers).

Concurrency: handlers only await the source; the source owns its own sampling state.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any, Protocol

from aiohttp import web

from shoal import timestamps
from shoal.api import errors, kinds, selectors

Obj = dict[str, Any]

GROUP = "metrics.k8s.io"
VERSION = "v1beta1"
API_VERSION = f"{GROUP}/{VERSION}"
PREFIX = f"/apis/{API_VERSION}"
POD_METRICS = kinds.ResourceType(GROUP, VERSION, "PodMetrics", "pods", "", True, verbs=("get", "list"))
NODE_METRICS = kinds.ResourceType(GROUP, VERSION, "NodeMetrics", "nodes", "", False, verbs=("get", "list"))


@dataclasses.dataclass(frozen=True)
class ContainerUsage:
    name: str
    cpu_nanocores: int
    """CPU used over the window, in billionths of a core."""
    memory_bytes: int
    """Working set at the end of the window (usage minus inactive file pages)."""


@dataclasses.dataclass(frozen=True)
class PodUsage:
    namespace: str
    name: str
    labels: dict[str, str]
    timestamp: dt.datetime
    """When the window ended (UTC)."""
    window_seconds: float
    containers: tuple[ContainerUsage, ...]


@dataclasses.dataclass(frozen=True)
class NodeUsage:
    name: str
    labels: dict[str, str]
    timestamp: dt.datetime
    window_seconds: float
    cpu_nanocores: int
    memory_bytes: int


class UsageSource(Protocol):
    """Where the figures come from (the node agent). Both may sample (await) briefly."""

    async def pod_usage(self, namespace: str | None) -> list[PodUsage]:
        """Every pod with at least one running container, of `namespace` (None: all)."""
        ...

    async def node_usage(self) -> list[NodeUsage]:
        ...


def register_kinds() -> None:
    """Put PodMetrics and NodeMetrics in discovery (`kubectl top` looks for the group)."""
    kinds.register(POD_METRICS)
    kinds.register(NODE_METRICS)


# --------------------------------------------------------------------------------------
# Pure rendering.


def go_duration(seconds: float) -> str:
    """A Go `time.Duration` string as metav1.Duration prints it: "10.5s", "1m0.25s"."""
    millis = round(seconds * 1000)
    minutes, millis = divmod(millis, 60_000)
    hours, minutes = divmod(minutes, 60)
    secs = f"{millis / 1000:.3f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{secs}"
    if minutes:
        return f"{minutes}m{secs}"
    return secs


def usage_quantities(cpu_nanocores: int, memory_bytes: int) -> dict[str, str]:
    return {"cpu": f"{max(0, int(cpu_nanocores))}n", "memory": f"{max(0, int(memory_bytes)) // 1024}Ki"}


def _metadata(name: str, namespace: str | None, labels: dict[str, str], when: dt.datetime) -> Obj:
    meta: Obj = {"name": name, "creationTimestamp": timestamps.format_time(when)}
    if namespace is not None:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = dict(labels)
    return meta


def pod_metrics(usage: PodUsage, now: dt.datetime) -> Obj:
    return {
        "kind": "PodMetrics", "apiVersion": API_VERSION,
        "metadata": _metadata(usage.name, usage.namespace, usage.labels, now),
        "timestamp": timestamps.format_time(usage.timestamp),
        "window": go_duration(usage.window_seconds),
        "containers": [{"name": c.name, "usage": usage_quantities(c.cpu_nanocores, c.memory_bytes)}
                       for c in usage.containers],
    }


def node_metrics(usage: NodeUsage, now: dt.datetime) -> Obj:
    return {
        "kind": "NodeMetrics", "apiVersion": API_VERSION,
        "metadata": _metadata(usage.name, None, usage.labels, now),
        "timestamp": timestamps.format_time(usage.timestamp),
        "window": go_duration(usage.window_seconds),
        "usage": usage_quantities(usage.cpu_nanocores, usage.memory_bytes),
    }


def metrics_list(kind: str, items: list[Obj]) -> Obj:
    return {"kind": f"{kind}List", "apiVersion": API_VERSION, "metadata": {}, "items": items}


# --------------------------------------------------------------------------------------
# Handlers.


def _json(data: Obj) -> web.Response:
    return web.json_response(data)


def _only_reads(request: web.Request) -> None:
    if request.method != "GET":
        raise errors.MethodNotAllowed(
            f"the server does not allow this method on the requested resource: "
            f"{GROUP} serves get and list, not {request.method}")
    if request.query.get("watch", "").lower() in ("true", "1"):
        raise errors.MethodNotAllowed(f"the server does not allow watch on {GROUP}")


class MetricsApi:
    """The handlers over a UsageSource."""

    def __init__(self, source: UsageSource) -> None:
        self._source = source

    async def _pods(self, request: web.Request, namespace: str | None) -> list[PodUsage]:
        _only_reads(request)
        selector = selectors.parse_label_selector(request.query.get("labelSelector"))
        return [u for u in await self._source.pod_usage(namespace) if selector.matches(u.labels)]

    async def list_pods(self, request: web.Request) -> web.Response:
        namespace = request.match_info.get("namespace")
        now = dt.datetime.now(timestamps.UTC)
        items = [pod_metrics(u, now) for u in await self._pods(request, namespace)]
        return _json(metrics_list("PodMetrics", items))

    async def get_pod(self, request: web.Request) -> web.Response:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        _only_reads(request)
        for usage in await self._source.pod_usage(namespace):
            if usage.name == name:
                return _json(pod_metrics(usage, dt.datetime.now(timestamps.UTC)))
        raise errors.NotFound(f'podmetrics.{GROUP} "{namespace}/{name}" not found',
                              details={"name": f"{namespace}/{name}", "group": GROUP, "kind": "pods"})

    async def list_nodes(self, request: web.Request) -> web.Response:
        _only_reads(request)
        selector = selectors.parse_label_selector(request.query.get("labelSelector"))
        now = dt.datetime.now(timestamps.UTC)
        items = [node_metrics(u, now) for u in await self._source.node_usage() if selector.matches(u.labels)]
        return _json(metrics_list("NodeMetrics", items))

    async def get_node(self, request: web.Request) -> web.Response:
        _only_reads(request)
        name = request.match_info["name"]
        for usage in await self._source.node_usage():
            if usage.name == name:
                return _json(node_metrics(usage, dt.datetime.now(timestamps.UTC)))
        raise errors.NotFound(f'nodemetrics.{GROUP} "{name}" not found',
                              details={"name": name, "group": GROUP, "kind": "nodes"})


def add_routes(app: web.Application, source: UsageSource) -> MetricsApi:
    """Serve metrics.k8s.io/v1beta1 on `app` from `source` (call `register_kinds()` too)."""
    api = MetricsApi(source)
    r = app.router
    r.add_route("*", f"{PREFIX}/pods", api.list_pods)
    r.add_route("*", f"{PREFIX}/namespaces/{{namespace}}/pods", api.list_pods)
    r.add_route("*", f"{PREFIX}/namespaces/{{namespace}}/pods/{{name}}", api.get_pod)
    r.add_route("*", f"{PREFIX}/nodes", api.list_nodes)
    r.add_route("*", f"{PREFIX}/nodes/{{name}}", api.get_node)
    return api
