"""The control loop: cluster changes -> per-proxy snapshots, and workload certificates.

`MeshControl` owns the `SnapshotCache`. It knows the proxies that asked for config
(`register`/`unregister`, called by the ADS server per stream), reads cluster state only
through the `ClusterSource`, and keeps every registered proxy's snapshot current:

- changes are debounced (`MeshConfig.debounce_seconds`, 50 ms default), leading
  edge: a lone change is pushed at once, a burst gives one recomputation per window;
- each proxy's snapshot is recomputed from the new state; since versions are content
  hashes, only proxies whose resources actually changed are woken and pushed;
- each proxy gets an SVID for its pod's service account from the CA, re-issued at
  half-life (`Svid.rotate_at`) and pushed as a new `default` secret before the old one
  expires; a change of service account re-issues at once;
- remote JWKS (RequestAuthentication jwksUri) are fetched and refreshed by `jwks`
  (`JwksResolver`); a change of keys or of a fetch error recomputes like a state change.

A proxy whose pod is not (yet) in the cluster state gets no snapshot: its stream waits
until the pod appears. The identity always comes from the pod object, never from what
the proxy claims in its node metadata. A proxy whose pod is gone and that has no stream
is forgotten (record, certificate, rotation timer).

`translator` is the seam for the pure translation (default `translate.translate`);
tests wrap it to inject a resource Envoy rejects. Concurrency: everything runs on one
event loop; after `start()`, the change loop (and the task draining the source's
change stream) and one rotation timer per proxy are the only tasks; `stop()` ends them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
import time
from typing import Callable

from shoal.mesh import secrets, snapshot
from shoal.mesh.jwks import JwksResolver
from shoal.mesh.ca import MeshCA, Svid
from shoal.mesh.errors import MeshError
from shoal.mesh.meshconfig import MeshConfig
from shoal.mesh.source import PODS, REQUEST_AUTHENTICATIONS, ClusterSource, ClusterState
from shoal.mesh.translate import Outbound, ProxyIdentity, Resources, jwt, model
from shoal.mesh.translate import translate as default_translate
from shoal.tasks import cancel_and_wait

log = logging.getLogger(__name__)

Translator = Callable[[ClusterState, ProxyIdentity, MeshConfig, Outbound], Resources]


@dataclasses.dataclass
class ProxyRecord:
    node_id: str
    pod: str
    namespace: str
    streams: int = 0
    identity: ProxyIdentity | None = None
    svid: Svid | None = None
    rotation: asyncio.Task | None = None
    last_push: float = 0.0
    """time.monotonic() of the last snapshot change for this proxy."""
    error: str = ""
    """Why the proxy has no snapshot (pod missing, translation failed), if so."""
    problems: tuple[str, ...] = ()
    """What its current snapshot leaves out and why (`Resources.problems`: a skipped
    EnvoyFilter patch)."""


class MeshControl:
    def __init__(
        self,
        source: ClusterSource,
        ca: MeshCA,
        mesh: MeshConfig = MeshConfig(),
        *,
        translator: Translator = default_translate,
    ) -> None:
        self.source = source
        self.ca = ca
        self.mesh = mesh
        self.translator = translator
        self.cache = snapshot.SnapshotCache()
        self.proxies: dict[str, ProxyRecord] = {}
        self._state = ClusterState()
        self._outbound: Outbound | None = None
        self._task: asyncio.Task | None = None
        self._ready = asyncio.Event()
        self._dirty = asyncio.Event()
        self.jwks = JwksResolver(self._dirty.set)

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        changes = self.source.changes()  # subscribe before the first read
        await self._reload()
        self._ready.set()
        self._task = asyncio.create_task(self._run(changes), name="mesh-control")

    async def stop(self) -> None:
        await cancel_and_wait(self._task, [p.rotation for p in self.proxies.values()])
        await self.jwks.stop()

    async def _run(self, changes) -> None:
        # One task drains the subscription (never cancelled mid-read, which would close
        # an async generator); this loop debounces on a flag it sets. Debounce with a
        # leading edge: a change after a quiet window is pushed at once (after changes
        # made in the same loop turn are collected); changes that follow within the
        # window are merged into one push at its end. So a lone change is not delayed
        # and a burst costs at most one recomputation per window.
        dirty = self._dirty

        async def drain() -> None:
            async for _ in changes:
                dirty.set()

        reader = asyncio.create_task(drain(), name="mesh-changes")
        last = -float("inf")
        try:
            while True:
                await dirty.wait()
                wait = last + self.mesh.debounce_seconds - time.monotonic()
                await asyncio.sleep(max(wait, 0.001))
                dirty.clear()
                last = time.monotonic()
                try:
                    await self._reload()
                except Exception:  # keep serving the last good snapshots
                    log.exception("mesh: recomputing snapshots failed")
        finally:
            reader.cancel()

    async def _reload(self) -> None:
        self._state = await self.source.snapshot()
        self.jwks.want(jwt.remote_sources(self._state.list(REQUEST_AUTHENTICATIONS)))
        self._outbound = Outbound(self._state, self.mesh, self.jwks.table())
        for record in list(self.proxies.values()):
            if record.streams == 0 and self._state.get(PODS, record.namespace, record.pod) is None:
                self.forget(record.node_id)  # pod gone and nobody connected: drop its cert
                continue
            self._refresh(record)

    # -- proxies --------------------------------------------------------------------

    async def register(self, node_id: str) -> ProxyRecord:
        """A stream for node_id opened; raises MeshError if the node id is malformed."""
        await self._ready.wait()
        try:
            _, pod, namespace = model.parse_node_id(node_id)
        except ValueError as exc:
            raise MeshError(str(exc)) from None
        record = self.proxies.get(node_id)
        if record is None:
            record = self.proxies[node_id] = ProxyRecord(node_id, pod, namespace)
        record.streams += 1
        self._refresh(record)
        return record

    def unregister(self, node_id: str) -> None:
        """A stream closed. The record (and its certificate) stay for a reconnect."""
        record = self.proxies.get(node_id)
        if record is not None:
            record.streams = max(0, record.streams - 1)

    def forget(self, node_id: str) -> None:
        record = self.proxies.pop(node_id, None)
        if record and record.rotation:
            record.rotation.cancel()
        self.cache.clear(node_id)

    def _refresh(self, record: ProxyRecord) -> None:
        pod = self._state.get(PODS, record.namespace, record.pod)
        if pod is None:
            record.error = f"pod {record.namespace}/{record.pod} not found"
            return
        identity = model.proxy_identity(pod, self._state)
        if not identity.ip:
            ip, _, _ = model.parse_node_id(record.node_id)
            identity = dataclasses.replace(identity, ip=ip)
        if record.svid is None or (record.identity and record.identity.service_account
                                   != identity.service_account):
            self._issue(record, identity)
        record.identity = identity
        try:
            resources = self.translator(self._state, identity, self.mesh, self._outbound)
            snap = snapshot.Snapshot.build(
                resources, secrets.build_secrets(record.svid, self.ca.root_pem))  # type: ignore[arg-type]
            if self.cache.set(record.node_id, snap):
                record.last_push = time.monotonic()
            record.error = ""
            if resources.problems != record.problems:
                for problem in set(resources.problems) - set(record.problems):
                    log.warning("mesh: %s: %s", record.node_id, problem)
                record.problems = resources.problems
        except Exception as exc:  # one proxy's failure must not stop the others' updates
            record.error = f"{type(exc).__name__}: {exc}" if not isinstance(exc, MeshError) else str(exc)
            log.error("mesh: no new config for %s (keeps its last one): %s", record.node_id,
                      record.error)

    def _issue(self, record: ProxyRecord, identity: ProxyIdentity) -> None:
        record.svid = self.ca.issue_svid(identity.namespace, identity.service_account,
                                         self.mesh.cert_ttl_seconds)
        log.info("mesh: issued %s for %s, expires %s", record.svid.spiffe_id, record.node_id,
                 record.svid.not_after.isoformat())
        if record.rotation:
            record.rotation.cancel()
        record.rotation = asyncio.create_task(self._rotate(record), name=f"rotate {record.node_id}")

    async def _rotate(self, record: ProxyRecord) -> None:
        assert record.svid is not None
        now = datetime.datetime.now(datetime.timezone.utc)
        await asyncio.sleep(max(0.0, (record.svid.rotate_at - now).total_seconds()))
        if record.identity is None:
            return
        record.rotation = None
        self._issue(record, record.identity)
        current = self.cache.get(record.node_id)
        if current is not None:
            self.cache.set(record.node_id, current.with_secrets(
                secrets.build_secrets(record.svid, self.ca.root_pem)))  # type: ignore[arg-type]
