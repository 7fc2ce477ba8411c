"""The shoal daemon: every component in one asyncio process (the embedded default), and
the one composition root: every component is built here (or by the builders below,
which the bench and the tests use too), and handed what it needs; no component
constructs another layer's objects.

Start order: store -> host network (bridge, routes, base chains) -> registry + HTTPS
server -> kubeconfig -> controllers -> service proxy + cluster DNS -> mesh control plane
(ClusterSource over the API, CA, ADS/SDS on Unix sockets) -> node agent (with the mesh's
pod hooks: capture rules, Envoy sidecars). Each component gets the `ApiClient`
(in-process `LocalClient`) and the `Settings`; none reaches into another's internals, so
any of them can later run as its own process with an `HttpClient` instead.

Layout: `Daemon.start` (one section per component, in start order), the mesh status
endpoint, stopping, then the builders (`build_network`, `start_node`) shared with the
bench and the tests, and small helpers.

Stop (SIGTERM/SIGINT): components stop in reverse order; containers and pod sandboxes
keep running, so a restarted daemon re-adopts them without restarting a pod. `shoal down`
then removes them (`shoal.teardown`). Stopping never deletes stored objects.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import ssl
from typing import Any, Awaitable, Callable

from aiohttp import web

from shoal.api import validation
from shoal.api.client import ApiClient
from shoal.apiserver import metrics as metrics_api, pki, podproxy, streams as pod_streams
from shoal.apiserver.admission import AdmissionChain
from shoal.apiserver.http import ApiServer
from shoal.apiserver.local import LocalClient, ensure_namespaces
from shoal.apiserver.registry import Registry
from shoal.config import Settings
from shoal.controllers import build_manager
from shoal.controllers.events import EventRecorder
from shoal.fsutil import write_atomic
from shoal.images import ImageStore
from shoal.kubeproxy import ClusterDns, PolicySync, ServiceSync
from shoal.mesh import MeshCA, MeshConfig, MeshControl, XdsServer
from shoal.mesh import kinds as mesh_kinds, report
from shoal.mesh.apisource import ApiSource
from shoal.mesh.sidecar import MeshHooks
from shoal.mesh.status import start_status_writer
from shoal.mesh.telemetry import PodSockets, TelemetryService
from shoal.network import ClusterDNS, NetworkPolicyRules, PodNetwork, ServiceDirectory, ServiceProxy
from shoal.node.streams import NodeStreams
from shoal.node import DEFAULT_CGROUP_PARENT, BackoffPolicy, NodeHandle, PodHooks, build_runtime, run_node
from shoal.node.metrics import CgroupUsage
from shoal.runtime import Runtime
from shoal.store import Allocations, Store
from shoal.tasks import cancel_and_wait

log = logging.getLogger("shoal.daemon")

COMPACT_INTERVAL_SECONDS = 300
COMPACT_KEEP_REVISIONS = 50_000

Stopper = Callable[[], Awaitable[None]]


class Daemon:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._stoppers: list[tuple[str, Stopper]] = []
        self._stop = asyncio.Event()
        self.client: LocalClient | None = None
        self.xds: XdsServer | None = None
        self.mesh_control: MeshControl | None = None
        self.mesh_source: ApiSource | None = None

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Start everything, serve until asked to stop, then stop everything."""
        try:
            await self.start()
            log.info("shoal is up: API %s, state %s", self.settings.api_url, self.settings.state_dir)
            await self._stop.wait()
        finally:
            await self.stop()

    async def start(self) -> None:
        s = self.settings
        s.state_dir.mkdir(parents=True, exist_ok=True)
        s.run_dir.mkdir(parents=True, exist_ok=True)
        s.save()

        # Compile the validation schemas off the loop while the rest starts (~2 s once).
        warm_up = asyncio.create_task(asyncio.to_thread(validation.warm_up))
        store = await Store.open(s.store_path)
        self._on_stop("store", store.close)
        allocations = Allocations(s.store_path)
        self._on_stop("allocations", _async(allocations.close))

        # The host network first: the registry allocates ClusterIPs/NodePorts from it.
        network = build_network(s, allocations)
        await network.setup_host()

        # Istio's kinds and sidecar injection join the API before it serves.
        mesh_kinds.register_kinds()
        admission = AdmissionChain(mutating=[mesh_kinds.injection_step()])
        registry = Registry(store, admission=admission, services=ServiceAddresses(network))
        self.client = LocalClient(registry)
        await ensure_namespaces(self.client)

        creds = pki.ensure_credentials(s)
        server = ApiServer(registry, creds.token)
        # -- pod streams: pods/log, exec, attach (the node's NodeStreams behind the
        # apiserver's PodStreams protocol), served through add_subresource ----------------
        pod_streams.install(server, NodeStreams(self.client, s, build_runtime(s)))
        # -- end pod streams ----------------------------------------------------------------
        server.app.router.add_get("/shoal/v1/mesh/status", self._mesh_status)
        # -- faces through the API: pods/proxy and metrics.k8s.io (node cgroup usage) --
        runtime = build_runtime(s)
        podproxy.add_routes(server.app, self.client)
        metrics_api.register_kinds()
        metrics_api.add_routes(server.app, CgroupUsage(self.client, runtime, s.node_name))
        # -- end faces --
        runner = web.AppRunner(server.app, access_log=None, shutdown_timeout=2)
        await runner.setup()
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(str(creds.server_cert), str(creds.server_key))
        site = web.TCPSite(runner, s.api_host, s.api_port, ssl_context=tls, reuse_address=True)
        await site.start()
        self._on_stop("api server", runner.cleanup)
        pki.write_kubeconfig(s, creds)

        compactor = asyncio.create_task(self._compact_forever(store), name="compactor")
        self._on_stop("compactor", _cancel(compactor))

        await warm_up
        # Controllers, kube-proxy and the mesh source share one informer per resource
        # (the manager's): one list + watch each, whoever reads it.
        manager = build_manager(self.client, s)
        directory = ServiceDirectory()
        services = ServiceSync(self.client, ServiceProxy(s), directory, shared=manager.informer)
        # -- wip-netpol: NetworkPolicy enforcement in the host's filter table --
        policies = PolicySync(self.client, NetworkPolicyRules(s), shared=manager.informer,
                              cluster_dns=ClusterDns(network.gateway, s.dns_port) if s.dns_port else None)
        # -- end wip-netpol --
        source = ApiSource(self.client, shared=manager.informer)
        await manager.start()
        self._on_stop("controllers", manager.stop)

        # kube-proxy role and cluster DNS on the bridge's gateway address.
        await services.start()
        self._on_stop("service proxy", services.stop)
        await policies.start()
        self._on_stop("network policies", policies.stop)
        dns = ClusterDNS(s, directory, host=network.gateway)
        await dns.start()
        self._on_stop("cluster dns", dns.stop)

        # The mesh control plane: cluster state from the API, ADS/SDS on Unix sockets.
        await source.start()
        self._on_stop("mesh source", source.stop)
        ca = MeshCA.load_or_create(s.pki_dir / "mesh", s.cluster_domain)
        self.mesh_control = MeshControl(source, ca, MeshConfig.from_settings(s))
        await self.mesh_control.start()
        self._on_stop("mesh control", self.mesh_control.stop)
        # VirtualService/DestinationRule status.conditions/validationMessages (istiod's role).
        status_writer = await start_status_writer(source, self.client, MeshConfig.from_settings(s))
        self._on_stop("mesh status", status_writer.stop)
        self.xds = XdsServer(self.mesh_control)
        s.socket_dir.mkdir(parents=True, exist_ok=True)
        await self.xds.start(s.socket_dir / "xds.sock", mode=0o600)
        self._on_stop("xds server", self.xds.stop)
        self.mesh_source = source

        # -- telemetry (issue 13): Istio's standard metrics, counted from the sidecars'
        # access logs; their sockets sit next to each pod's xDS socket (PodSockets).
        telemetry = TelemetryService(source, MeshConfig.from_settings(s))
        await telemetry.start()
        self._on_stop("mesh telemetry", telemetry.stop)
        pod_sockets = PodSockets(self.xds, telemetry)
        # -- end telemetry --

        # The node agent, with the mesh's pod hooks (capture rules, Envoy sidecars).
        hooks = MeshHooks(xds_server=pod_sockets, socket_dir=s.socket_dir / "xds",
                          cluster_domain=s.cluster_domain)
        node = await start_node(self.client, s, network=network, runtime=runtime, hooks=hooks)
        self._on_stop("node agent", node.stop)

        write_atomic(s.pid_file, f"{os.getpid()}\n")
        self._on_stop("pid file", _async(lambda: s.pid_file.unlink(missing_ok=True)))

    async def _mesh_status(self, request: web.Request) -> web.Response:
        """Every proxy's xDS status and `shoal mesh check` findings, for the CLI."""
        statuses = self.xds.status() if self.xds is not None else []
        state = await self.mesh_source.snapshot() if self.mesh_source is not None else None
        findings = report.check_findings(state, statuses) if state is not None else []
        return web.json_response({
            "proxies": report.status_rows(statuses),
            "findings": findings,
        })

    def _on_stop(self, name: str, stopper: Stopper) -> None:
        self._stoppers.append((name, stopper))

    async def stop(self) -> None:
        while self._stoppers:
            name, stopper = self._stoppers.pop()
            try:
                await asyncio.wait_for(stopper(), 60)
            except Exception:
                log.exception("stopping %s failed", name)

    async def _compact_forever(self, store: Store) -> None:
        while True:
            await asyncio.sleep(COMPACT_INTERVAL_SECONDS)
            try:
                await store.compact(COMPACT_KEEP_REVISIONS)
            except Exception:
                log.exception("compaction failed")


class ServiceAddresses:
    """The registry's ServiceAllocator over the pod network's address pools."""

    def __init__(self, network: PodNetwork) -> None:
        self._network = network

    def allocate_cluster_ip(self, service_key: str, requested: str | None = None) -> str:
        return self._network.allocate_cluster_ip(service_key, requested)

    def release_cluster_ip(self, service_key: str) -> None:
        self._network.release_cluster_ip(service_key)

    def allocate_node_port(self, service_key: str, requested: int | None = None) -> int:
        return self._network.allocate_node_port(service_key, requested)

    def release_node_ports(self, service_key: str) -> None:
        self._network.release_node_port(service_key, None)


# -- builders: the node's parts, shared with the bench and the tests ------------------------


def build_network(settings: Settings, allocations: Allocations | None = None, *,
                  netns_prefix: str | None = None) -> PodNetwork:
    """The pod network over the store's allocations (opened here when not given; the
    caller runs `setup_host()` once per process)."""
    return PodNetwork(settings, allocations if allocations is not None else Allocations(settings.store_path),
                      netns_prefix=netns_prefix or settings.netns_prefix)


async def start_node(
    client: ApiClient,
    settings: Settings,
    *,
    network: PodNetwork,
    hooks: PodHooks | None = None,
    runtime: Runtime | None = None,
    images: ImageStore | None = None,
    cgroup_parent: str = DEFAULT_CGROUP_PARENT,
    backoff: BackoffPolicy = BackoffPolicy(),
    resync_seconds: float = 10.0,
    probe_time_scale: float = 1.0,
) -> NodeHandle:
    """The node agent and provisioner as the daemon runs them: runtime (in
    `cgroup_parent`), image store and the "kubelet" event recorder built here unless
    given. hooks: the mesh's by default, without an xDS server (injected sidecars then
    start but never turn ready); the daemon passes one bound to its XdsServer."""
    if hooks is None:
        hooks = MeshHooks(socket_dir=settings.socket_dir / "xds", cluster_domain=settings.cluster_domain)
    return await run_node(
        client, settings,
        runtime=runtime if runtime is not None else build_runtime(settings, cgroup_parent),
        images=images if images is not None else ImageStore(settings.images_dir),
        network=network,
        recorder=EventRecorder(client, "kubelet", host=settings.node_name),
        hooks=hooks, backoff=backoff, resync_seconds=resync_seconds, probe_time_scale=probe_time_scale)


# -- helpers ---------------------------------------------------------------------------------


def _async(fn: Callable[[], Any]) -> Stopper:
    async def run() -> None:
        fn()

    return run


def _cancel(task: asyncio.Task[Any]) -> Stopper:
    async def run() -> None:
        await cancel_and_wait(task)

    return run


def serve(settings: Settings) -> None:
    """Run the daemon in the foreground until SIGTERM/SIGINT."""
    try:
        import uvloop  # noqa: F401 - an optional dependency: imported only where the loop is made

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass

    async def main() -> None:
        daemon = Daemon(settings)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, daemon.request_stop)
        await daemon.run()

    asyncio.run(main())
