"""The metrics service: sidecars' access-log records in, Istio's series out, over Unix
sockets.

Two sockets per directory (the one the xDS socket is in, which the node agent mounts
into the sidecar): `als.sock`, an OTLP `LogsService` (gRPC) the sidecars' access loggers
stream to, and `stats.sock`, HTTP, answering GET /stats/prometheus with the proxy's
Istio series (the sidecar's 15090 listener appends them to Envoy's own page; see
`shoal.mesh.translate.telemetry`). `start(directory)` serves any proxy there (each record
names its node; a page request names it in `x-shoal-node`); `bind_pod(directory,
namespace, pod)` serves one pod only: records of another node are refused and the page
is that pod's, whatever the request says.

Labels are resolved when a record arrives, against a `WorkloadIndex` of the
`ClusterSource`'s state, rebuilt after the source reports a change.

Robustness: a malformed record is refused alone (the Export answer's `partial_success`
says how many and why); a request that is not an OTLP message is refused by gRPC;
neither stops the service. Concurrency: one event loop; grpc.aio and aiohttp run every
call as a coroutine on it; counting is synchronous between awaits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path
from typing import Protocol

import grpc
from aiohttp import web
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2

from shoal.mesh.errors import MeshError
from shoal.mesh.meshconfig import MeshConfig
from shoal.mesh.source import ClusterSource
from shoal.mesh.telemetry import records as records_
from shoal.mesh.telemetry.metrics import MetricsRegistry
from shoal.mesh.telemetry.workloads import Workload, WorkloadIndex
from shoal.mesh.translate import telemetry
from shoal.tasks import cancel_and_wait

log = logging.getLogger(__name__)

Key = tuple[str, str]
"""(namespace, pod) of a proxy."""
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
PROBLEM_LOG_INTERVAL = 60.0


LOGS_SERVICE = "opentelemetry.proto.collector.logs.v1.LogsService"


class _LogsServicer:
    """OTLP LogsService/Export, decoding the request itself so that bytes that are no
    ExportLogsServiceRequest get INVALID_ARGUMENT with a reason (not gRPC's UNKNOWN)."""

    def __init__(self, service: "TelemetryService", bound: Key | None) -> None:
        self.service = service
        self.bound = bound

    def handler(self) -> grpc.GenericRpcHandler:
        export = grpc.unary_unary_rpc_method_handler(
            self.export, request_deserializer=None,
            response_serializer=logs_service_pb2.ExportLogsServiceResponse.SerializeToString)
        return grpc.method_handlers_generic_handler(LOGS_SERVICE, {"Export": export})

    async def export(self, body: bytes, context: grpc.aio.ServicerContext):
        request = logs_service_pb2.ExportLogsServiceRequest()
        try:
            request.ParseFromString(body)
        except DecodeError:
            self.service.rejected += 1
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                "request: expected an OTLP ExportLogsServiceRequest")
        problems = await self.service.ingest(request, self.bound)
        response = logs_service_pb2.ExportLogsServiceResponse()
        if problems:
            response.partial_success.rejected_log_records = len(problems)
            response.partial_success.error_message = "; ".join(sorted(set(problems))[:5])
        return response


class TelemetryService:
    def __init__(self, source: ClusterSource, mesh: MeshConfig) -> None:
        self.source = source
        self.mesh = mesh
        self.metrics = MetricsRegistry()
        self.rejected = 0
        """Records refused so far (malformed, or claiming another pod's node)."""
        self._index: WorkloadIndex | None = None
        self._stale = asyncio.Event()
        self._watcher: asyncio.Task | None = None
        self._grpc: dict[Path, grpc.aio.Server] = {}
        self._sites: dict[Path, web.UnixSite] = {}
        self._bound: dict[str, Key] = {}
        """stats socket path -> the pod it serves."""
        self._runner: web.AppRunner | None = None
        self._last_problem_log = -PROBLEM_LOG_INTERVAL

    async def start(self, directory: str | Path | None = None) -> None:
        """Follow the cluster state; with `directory`, serve any proxy there."""
        changes = self.source.changes()  # subscribe before the first read
        self._stale.set()
        self._watcher = asyncio.create_task(self._watch(changes), name="telemetry-watch")
        app = web.Application()
        app.router.add_get(telemetry.STATS_PATH, self._page)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
        await self._runner.setup()
        if directory is not None:
            await self._serve(Path(directory), None, 0o666)

    async def bind_pod(self, directory: str | Path, namespace: str, pod: str,
                       mode: int = 0o666) -> None:
        """Sockets in `directory` that serve only namespace/pod's sidecar."""
        await self._serve(Path(directory), (namespace, pod), mode)

    async def unbind_pod(self, directory: str | Path) -> None:
        """Close the sockets of `directory` and forget the pod's series."""
        directory = Path(directory)
        key = self._bound.get(str(directory / telemetry.STATS_SOCKET))
        await self._close(directory)
        if key is not None:
            self.metrics.forget(key)

    async def stop(self) -> None:
        for directory in list(self._grpc):
            await self._close(directory)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._watcher is not None:
            await cancel_and_wait(self._watcher)
            self._watcher = None

    def page(self, key: Key) -> str:
        metrics = self.metrics.get(key)
        return metrics.render() if metrics is not None else ""

    async def ingest(self, request, bound: Key | None = None) -> list[str]:
        """Count the records of one ExportLogsServiceRequest; what was refused, and why."""
        records, problems = records_.parse_export(request, bound)
        if records:
            index = await self._current_index()
            for record in records:
                key = records_.node_pod(record.node)
                if key is None:
                    problems.append(f"node {record.node!r}: not a sidecar node id")
                    continue
                own = index.pod(*key) or Workload(name=key[1], namespace=key[0])
                self.metrics.proxy(key, own).add(record, index)
        if problems:
            self.rejected += len(problems)
            now = asyncio.get_running_loop().time()
            if now - self._last_problem_log >= PROBLEM_LOG_INTERVAL:
                self._last_problem_log = now
                log.warning("telemetry: refused %d access-log records (%d so far), e.g. %s",
                            len(problems), self.rejected, problems[0])
        return problems

    async def _current_index(self) -> WorkloadIndex:
        if self._stale.is_set() or self._index is None:
            self._stale.clear()
            self._index = WorkloadIndex(await self.source.snapshot(), self.mesh)
        return self._index

    async def _watch(self, changes) -> None:
        async for _ in changes:
            self._stale.set()

    async def _page(self, request: web.Request) -> web.Response:
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        key = self._bound.get(str(sockname)) if sockname else None
        if key is None and str(sockname) not in self._bound:
            key = records_.node_pod(request.headers.get(telemetry.NODE_HEADER, ""))
        if key is None:
            raise web.HTTPBadRequest(
                text=f"header {telemetry.NODE_HEADER}: expected a sidecar node id\n")
        return web.Response(text=self.page(key), content_type="text/plain", charset="utf-8")

    async def _serve(self, directory: Path, bound: Key | None, mode: int) -> None:
        await self._close(directory)  # a re-adopted sidecar: replace the old sockets
        if self._runner is None:
            raise MeshError("telemetry service: start() before binding sockets")
        directory.mkdir(parents=True, exist_ok=True)
        als, stats = directory / telemetry.ALS_SOCKET, directory / telemetry.STATS_SOCKET
        for path in (als, stats):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        server = grpc.aio.server(options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)])
        server.add_generic_rpc_handlers((_LogsServicer(self, bound).handler(),))
        if server.add_insecure_port(f"unix:{als}") == 0:
            raise MeshError(f"telemetry service: cannot listen on unix socket {als}")
        await server.start()
        self._grpc[directory] = server
        site = web.UnixSite(self._runner, str(stats))
        await site.start()
        self._sites[directory] = site
        if bound is not None:
            self._bound[str(stats)] = bound
        for path in (als, stats):
            os.chmod(path, mode)

    async def _close(self, directory: Path) -> None:
        server = self._grpc.pop(directory, None)
        if server is not None:
            await server.stop(0.2)
        site = self._sites.pop(directory, None)
        if site is not None:
            await site.stop()
        self._bound.pop(str(directory / telemetry.STATS_SOCKET), None)
        if server is not None or site is not None:
            for name in (telemetry.ALS_SOCKET, telemetry.STATS_SOCKET):
                with contextlib.suppress(FileNotFoundError):
                    (directory / name).unlink()


class PodSocketServer(Protocol):
    """What `MeshHooks` binds per-pod sockets on (the xDS server's two methods)."""

    async def bind_pod_socket(self, socket_path: str | Path, namespace: str, pod: str,
                              mode: int = 0o666) -> None: ...

    async def unbind_pod_socket(self, socket_path: str | Path, grace: float = 0.5) -> None: ...


class PodSockets:
    """A `PodSocketServer` that binds the xDS socket and, next to it, the telemetry
    sockets: hand it to `MeshHooks(xds_server=...)` in place of the xDS server."""

    def __init__(self, xds: PodSocketServer, telemetry_service: TelemetryService) -> None:
        self.xds = xds
        self.telemetry = telemetry_service

    async def bind_pod_socket(self, socket_path: str | Path, namespace: str, pod: str,
                              mode: int = 0o666) -> None:
        await self.xds.bind_pod_socket(socket_path, namespace, pod, mode)
        await self.telemetry.bind_pod(Path(socket_path).parent, namespace, pod, mode)

    async def unbind_pod_socket(self, socket_path: str | Path, grace: float = 0.5) -> None:
        await self.telemetry.unbind_pod(Path(socket_path).parent)
        await self.xds.unbind_pod_socket(socket_path, grace)
