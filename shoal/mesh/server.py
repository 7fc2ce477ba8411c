"""ADS gRPC server (state of the world) on a Unix socket, with per-proxy status.

Protocol, per stream and per type URL (Envoy's xDS rules):

- The first request carries the node; the node id names the pod (see `bootstrap`).
  The stream waits until `MeshControl` has a snapshot for that pod.
- A response carries the snapshot's version for the type and a fresh nonce (nonces
  increase per stream). CDS and LDS are wildcard; EDS, RDS and SDS return the names
  the proxy asked for.
- A request whose `response_nonce` is not the latest one sent for its type is stale
  and ignored. With the latest nonce it is an ACK (no `error_detail`: `version_info`
  is now applied) or a NACK (`error_detail` set: recorded with the message; the proxy
  keeps its last good config and the rejected version is not sent again; the next
  snapshot change is).
- A type is (re)sent when the snapshot's version differs from the one last sent on
  this stream, or the proxy asked for a different set of names. EDS is also resent
  after every CDS response: Envoy warms a changed EDS cluster until it receives an
  assignment for it, even an unchanged one (else it waits out initial_fetch_timeout,
  15 s).
- Make-before-break: types go out in the order SDS, CDS, EDS, LDS, RDS; when clusters
  disappear, CDS is first sent as the union of old and new, and the removal follows in
  a second CDS response after LDS and RDS.

The server holds no network port: `start(path)` listens on a Unix socket only. With
`bind_pod_socket(path, namespace, pod)` the node agent can give each sidecar its own
socket that only accepts that pod's node id, so one sidecar cannot ask for another's
certificate.

`status()` returns a `ProxyStatus` per known proxy: connected, versions sent and
acked per type, last NACK (with Envoy's message), certificate expiry, and what
translation skipped for it (EnvoyFilter patches) — what `shoal mesh status` prints.
Concurrency: one event loop; grpc.aio runs each stream as a coroutine.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import itertools
import logging
import os
from pathlib import Path
from typing import AsyncIterator

import grpc
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from shoal.mesh import snapshot as snapshots
from shoal.mesh.control import MeshControl
from shoal.mesh.errors import MeshError
from shoal.mesh.translate import model, protos

log = logging.getLogger(__name__)

WILDCARD_TYPES = {protos.CLUSTER, protos.LISTENER}
SHORT_NAMES = {protos.CLUSTER: "CDS", protos.ENDPOINT: "EDS", protos.LISTENER: "LDS",
               protos.ROUTE: "RDS", protos.SECRET: "SDS"}


@dataclasses.dataclass
class Nack:
    type: str
    version: str
    message: str
    at: datetime.datetime


@dataclasses.dataclass
class ProxyStatus:
    node_id: str
    pod: str
    namespace: str
    connected: bool
    sent: dict[str, str]
    """Short type (CDS, EDS, ...) -> version last sent."""
    acked: dict[str, str]
    """Short type -> version the proxy last ACKed."""
    last_nack: Nack | None
    cert_expiry: datetime.datetime | None
    spiffe_id: str | None
    error: str = ""
    problems: tuple[str, ...] = ()
    """What the served config leaves out and why (a skipped EnvoyFilter patch)."""

    @property
    def synced(self) -> bool:
        return bool(self.sent) and all(self.acked.get(t) == v for t, v in self.sent.items())


@dataclasses.dataclass
class _TypeState:
    subscribed: bool = False
    names: frozenset[str] = frozenset()
    nonce: str = ""
    sent_version: str | None = None
    sent_names: frozenset[str] | None = None
    sent_resources: dict = dataclasses.field(default_factory=dict)


class _Acks:
    """Per-node ACK/NACK bookkeeping that outlives a stream (for status)."""

    def __init__(self) -> None:
        self.sent: dict[str, str] = {}
        self.acked: dict[str, str] = {}
        self.last_nack: Nack | None = None


class AdsServicer(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):
    def __init__(self, control: MeshControl, acks: dict[str, _Acks],
                 only: tuple[str, str] | None = None) -> None:
        self.control = control
        self.acks = acks
        self.only = only
        """(namespace, pod) this servicer's socket is bound to, or None for any."""
        self._nonces = itertools.count(1)

    async def StreamAggregatedResources(  # noqa: N802 (gRPC method name)
        self, request_iterator: AsyncIterator[discovery_pb2.DiscoveryRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[discovery_pb2.DiscoveryResponse]:
        inbox: asyncio.Queue = asyncio.Queue()
        reader = asyncio.create_task(self._read(request_iterator, inbox))
        first = await inbox.get()
        if first is None:
            reader.cancel()
            return
        node = first.node.id
        try:
            _, pod, namespace = model.parse_node_id(node)
        except ValueError as exc:
            reader.cancel()
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            return
        if self.only is not None and self.only != (namespace, pod):
            reader.cancel()
            await context.abort(grpc.StatusCode.PERMISSION_DENIED,
                                f"node {node!r} may not use the socket of pod "
                                f"{self.only[0]}/{self.only[1]}")
            return
        try:
            await self.control.register(node)
        except MeshError as exc:
            reader.cancel()
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            return
        acks = self.acks.setdefault(node, _Acks())
        event = self.control.cache.watch(node)
        watcher = asyncio.create_task(self._watch(event, inbox))
        states: dict[str, _TypeState] = {}
        log.info("xds: %s connected", node)
        try:
            pending = [first]
            while True:
                for request in pending:
                    if request is _CHANGED:
                        continue
                    self._on_request(node, request, states, acks)
                snap = self.control.cache.get(node)
                if snap is not None:
                    for response in self._responses(snap, states, acks):
                        yield response
                item = await inbox.get()
                if item is None:
                    return
                pending = [item]
                while not inbox.empty():
                    extra = inbox.get_nowait()
                    if extra is None:
                        return
                    pending.append(extra)
        finally:
            reader.cancel()
            watcher.cancel()
            self.control.cache.unwatch(node, event)
            self.control.unregister(node)
            log.info("xds: %s disconnected", node)

    @staticmethod
    async def _read(iterator: AsyncIterator, inbox: asyncio.Queue) -> None:
        try:
            async for request in iterator:
                inbox.put_nowait(request)
        except (grpc.aio.AioRpcError, asyncio.CancelledError):
            pass
        finally:
            inbox.put_nowait(None)

    @staticmethod
    async def _watch(event: asyncio.Event, inbox: asyncio.Queue) -> None:
        while True:
            await event.wait()
            event.clear()
            inbox.put_nowait(_CHANGED)

    def _on_request(self, node: str, request: discovery_pb2.DiscoveryRequest,
                    states: dict[str, _TypeState], acks: _Acks) -> None:
        type_url = request.type_url
        if type_url not in snapshots.ORDER:
            log.warning("xds: %s asked for unknown type %s", node, type_url)
            return
        state = states.setdefault(type_url, _TypeState())
        short = SHORT_NAMES[type_url]
        if request.response_nonce:
            if request.response_nonce != state.nonce:
                return  # stale: answers an older response
            if request.HasField("error_detail") and (request.error_detail.code
                                                     or request.error_detail.message):
                acks.last_nack = Nack(short, state.sent_version or "",
                                      request.error_detail.message,
                                      datetime.datetime.now(datetime.timezone.utc))
                log.warning("xds: %s NACKed %s version %s: %s", node, short,
                            state.sent_version, request.error_detail.message)
            else:
                acks.acked[short] = request.version_info
        state.subscribed = True
        state.names = frozenset(request.resource_names)

    def _responses(self, snap: snapshots.Snapshot, states: dict[str, _TypeState],
                   acks: _Acks) -> list[discovery_pb2.DiscoveryResponse]:
        out: list[discovery_pb2.DiscoveryResponse] = []
        final_cds = None
        cds_sent = False
        for type_url in snapshots.ORDER:
            state = states.get(type_url)
            if state is None or not state.subscribed:
                continue
            version = snap.version(type_url)
            resources = dict(snap.get(type_url))
            if type_url not in WILDCARD_TYPES:
                if not state.names:
                    continue
                resources = {n: r for n, r in resources.items() if n in state.names}
            if version == state.sent_version and state.names == state.sent_names and not (
                    type_url == protos.ENDPOINT and cds_sent):
                continue
            cds_sent = cds_sent or type_url == protos.CLUSTER
            if type_url == protos.CLUSTER and state.sent_resources:
                removed = set(state.sent_resources) - set(resources)
                if removed:
                    # make before break: keep the old clusters until listeners moved on
                    union = {**{n: state.sent_resources[n] for n in removed}, **resources}
                    out.append(self._response(type_url, version + "-mbb", union, state))
                    final_cds = (version, resources)
                    state.sent_version, state.sent_names = version, state.names
                    continue
            out.append(self._response(type_url, version, resources, state))
            state.sent_version, state.sent_names = version, state.names
            state.sent_resources = resources
            acks.sent[SHORT_NAMES[type_url]] = version
        if final_cds is not None:
            version, resources = final_cds
            state = states[protos.CLUSTER]
            out.append(self._response(protos.CLUSTER, version, resources, state))
            state.sent_resources = resources
            acks.sent["CDS"] = version
        return out

    def _response(self, type_url: str, version: str, resources: dict,
                  state: _TypeState) -> discovery_pb2.DiscoveryResponse:
        response = discovery_pb2.DiscoveryResponse(
            version_info=version, type_url=type_url, nonce=str(next(self._nonces)))
        response.resources.extend(snapshots.packed(resources[name]) for name in sorted(resources))
        state.nonce = response.nonce
        return response


_CHANGED = object()


class XdsServer:
    """ADS over Unix sockets for one `MeshControl`."""

    def __init__(self, control: MeshControl) -> None:
        self.control = control
        self._acks: dict[str, _Acks] = {}
        self._servers: list[tuple[grpc.aio.Server, Path]] = []

    async def start(self, socket_path: str | Path, mode: int = 0o666) -> None:
        """Listen on `socket_path` for any proxy (the node agent controls who sees it)."""
        await self._serve(Path(socket_path), mode, None)

    async def bind_pod_socket(self, socket_path: str | Path, namespace: str, pod: str,
                              mode: int = 0o666) -> None:
        """An extra socket that only serves the sidecar of namespace/pod."""
        await self._serve(Path(socket_path), mode, (namespace, pod))

    async def unbind_pod_socket(self, socket_path: str | Path, grace: float = 0.5) -> None:
        """Close a socket made by `bind_pod_socket` (the pod is gone)."""
        path = Path(socket_path)
        for entry in [e for e in self._servers if e[1] == path]:
            self._servers.remove(entry)
            await entry[0].stop(grace)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    async def _serve(self, path: Path, mode: int, only: tuple[str, str] | None) -> None:
        # binding a path again (a re-adopted sidecar) replaces the earlier server
        await self.unbind_pod_socket(path, grace=0)
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        server = grpc.aio.server(options=[
            ("grpc.keepalive_time_ms", 30000),
            ("grpc.max_concurrent_streams", 1000),
        ])
        ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(
            AdsServicer(self.control, self._acks, only), server)
        if server.add_insecure_port(f"unix:{path}") == 0:
            raise MeshError(f"xDS server: cannot listen on unix socket {path}")
        await server.start()
        os.chmod(path, mode)
        self._servers.append((server, path))
        log.info("xds: serving on %s", path)

    async def stop(self, grace: float = 0.5) -> None:
        for server, path in self._servers:
            await server.stop(grace)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        self._servers.clear()

    def status(self) -> list[ProxyStatus]:
        for node in set(self._acks) - set(self.control.proxies):
            del self._acks[node]  # forgotten proxies (pod deleted)
        result = []
        for node, record in sorted(self.control.proxies.items()):
            acks = self._acks.get(node, _Acks())
            result.append(ProxyStatus(
                node_id=node, pod=record.pod, namespace=record.namespace,
                connected=record.streams > 0, sent=dict(acks.sent), acked=dict(acks.acked),
                last_nack=acks.last_nack,
                cert_expiry=record.svid.not_after if record.svid else None,
                spiffe_id=record.svid.spiffe_id if record.svid else None,
                error=record.error, problems=record.problems,
            ))
        return result

    def proxy_status(self, node_id: str) -> ProxyStatus | None:
        return next((s for s in self.status() if s.node_id == node_id), None)

