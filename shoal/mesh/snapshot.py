"""Per-proxy snapshots: the full desired xDS state of one Envoy, versioned per type.

A `Snapshot` is an immutable value: type URL -> {name: message}, plus a version per
type that is a content hash (deterministic serialization), so an unchanged type keeps
its version and is not pushed again. `consistent()` is pure: every EDS name a cluster
names has an endpoint assignment and vice versa, and every RDS name a listener names
has a route configuration and vice versa (go-control-plane's rule). A snapshot that is
not consistent is never served: Envoy would wait forever warming the missing pieces.

`SnapshotCache` holds the latest snapshot per node id and wakes the server's streams
when a node's snapshot changes. It knows nothing of gRPC. Concurrency: one event loop;
`set` and `get` are synchronous; each stream waits on its own event (`watch`).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import hashlib
from typing import Mapping

from google.protobuf import any_pb2
from google.protobuf.message import Message

from envoy.config.cluster.v3 import cluster_pb2

from shoal.mesh.errors import SnapshotError
from shoal.mesh.translate import Resources, protos

ORDER = (protos.SECRET, protos.CLUSTER, protos.ENDPOINT, protos.LISTENER, protos.ROUTE)
"""Make-before-break push order: secrets and clusters before the listeners and routes
that use them. (Secrets first: a cluster warms only once its SDS secret is there.)"""


_MEMO: "collections.OrderedDict[int, tuple[Message, bytes, any_pb2.Any]]" = collections.OrderedDict()
_MEMO_MAX = 16384


def _memo(message: Message) -> tuple[Message, bytes, any_pb2.Any]:
    """(message, sha256 of its deterministic serialization, the message packed in an
    Any), memoized per message object: resources are shared between proxies and between
    snapshots and never mutated, so a RouteConfiguration that 50 proxies share is
    serialized once, not once per proxy and push."""
    entry = _MEMO.get(id(message))
    if entry is not None and entry[0] is message:
        return entry
    body = message.SerializeToString(deterministic=True)
    packed = any_pb2.Any(type_url="type.googleapis.com/" + message.DESCRIPTOR.full_name, value=body)
    entry = _MEMO[id(message)] = (message, hashlib.sha256(body).digest(), packed)
    if len(_MEMO) > _MEMO_MAX:  # holding the message above keeps its id unique
        _MEMO.popitem(last=False)
    return entry


def _digest(message: Message) -> bytes:
    return _memo(message)[1]


def packed(message: Message) -> any_pb2.Any:
    """`message` in an Any, as an xDS response carries it (shared: do not mutate)."""
    return _memo(message)[2]


def _version(resources: Mapping[str, Message]) -> str:
    digest = hashlib.sha256()
    for name in sorted(resources):
        digest.update(name.encode())
        digest.update(b"\0")
        digest.update(_digest(resources[name]))
    return digest.hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class Snapshot:
    resources: Mapping[str, Mapping[str, Message]]
    versions: Mapping[str, str]

    @classmethod
    def build(cls, resources: Resources, secrets: Mapping[str, Message] | None = None) -> "Snapshot":
        by_type: dict[str, Mapping[str, Message]] = dict(resources.by_type())
        by_type[protos.SECRET] = dict(secrets or {})
        return cls(by_type, {t: _version(r) for t, r in by_type.items()})

    def with_secrets(self, secrets: Mapping[str, Message]) -> "Snapshot":
        by_type = dict(self.resources)
        by_type[protos.SECRET] = dict(secrets)
        versions = dict(self.versions)
        versions[protos.SECRET] = _version(by_type[protos.SECRET])
        return Snapshot(by_type, versions)

    def get(self, type_url: str) -> Mapping[str, Message]:
        return self.resources.get(type_url, {})

    def version(self, type_url: str) -> str:
        return self.versions.get(type_url, "")


def eds_names(snapshot: Snapshot) -> set[str]:
    """EDS service names the snapshot's clusters refer to."""
    refs = set()
    for cluster in snapshot.get(protos.CLUSTER).values():
        assert isinstance(cluster, cluster_pb2.Cluster)
        if cluster.type == cluster_pb2.Cluster.EDS:
            refs.add(cluster.eds_cluster_config.service_name or cluster.name)
    return refs


def rds_names(snapshot: Snapshot) -> set[str]:
    """Route configuration names the snapshot's listeners refer to over RDS."""
    refs: set[str] = set()
    for listener in snapshot.get(protos.LISTENER).values():
        entry = _RDS_REFS.get(id(listener))
        if entry is None or entry[0] is not listener:
            entry = _RDS_REFS[id(listener)] = (listener, _listener_rds_names(listener))
            if len(_RDS_REFS) > _MEMO_MAX:
                _RDS_REFS.popitem(last=False)
        refs |= entry[1]
    return refs


_RDS_REFS: "collections.OrderedDict[int, tuple[Message, frozenset[str]]]" = collections.OrderedDict()
"""Per listener object (shared and never mutated, as in `_memo`): the names it asks RDS for."""


def _listener_rds_names(listener: Message) -> frozenset[str]:
    chains = list(listener.filter_chains)  # type: ignore[attr-defined]
    if listener.HasField("default_filter_chain"):  # type: ignore[attr-defined]
        chains.append(listener.default_filter_chain)  # type: ignore[attr-defined]
    refs = set()
    for chain in chains:
        for f in chain.filters:
            hcm = protos.hcm_of(f)
            if hcm is not None and hcm.HasField("rds"):
                refs.add(hcm.rds.route_config_name)
    return frozenset(refs)


def consistent(snapshot: Snapshot) -> list[str]:
    """Problems that would leave Envoy warming forever or holding stray resources;
    empty when the snapshot is consistent."""
    problems = []
    eds, have_eds = eds_names(snapshot), set(snapshot.get(protos.ENDPOINT))
    for name in sorted(eds - have_eds):
        problems.append(f"cluster names EDS resource {name!r} that the snapshot lacks")
    for name in sorted(have_eds - eds):
        problems.append(f"EDS resource {name!r} is named by no cluster")
    rds, have_rds = rds_names(snapshot), set(snapshot.get(protos.ROUTE))
    for name in sorted(rds - have_rds):
        problems.append(f"listener names route configuration {name!r} that the snapshot lacks")
    for name in sorted(have_rds - rds):
        problems.append(f"route configuration {name!r} is named by no listener")
    return problems


def check(snapshot: Snapshot) -> Snapshot:
    """The snapshot, or SnapshotError listing every consistency problem."""
    problems = consistent(snapshot)
    if problems:
        raise SnapshotError("inconsistent snapshot: " + "; ".join(problems))
    return snapshot


class SnapshotCache:
    """Latest consistent snapshot per node id; each stream subscribes to its node."""

    def __init__(self) -> None:
        self._snapshots: dict[str, Snapshot] = {}
        self._watchers: dict[str, set[asyncio.Event]] = {}

    def set(self, node: str, snapshot: Snapshot) -> bool:
        """Store (after `check`); True when any type's version changed (watchers woken)."""
        check(snapshot)
        old = self._snapshots.get(node)
        self._snapshots[node] = snapshot
        changed = old is None or dict(old.versions) != dict(snapshot.versions)
        if changed:
            for event in self._watchers.get(node, ()):
                event.set()
        return changed

    def get(self, node: str) -> Snapshot | None:
        return self._snapshots.get(node)

    def clear(self, node: str) -> None:
        self._snapshots.pop(node, None)

    def nodes(self) -> list[str]:
        return sorted(self._snapshots)

    def watch(self, node: str) -> asyncio.Event:
        """An event set whenever the node's snapshot changes; the watcher clears it."""
        event = asyncio.Event()
        self._watchers.setdefault(node, set()).add(event)
        if node in self._snapshots:
            event.set()
        return event

    def unwatch(self, node: str, event: asyncio.Event) -> None:
        watchers = self._watchers.get(node)
        if watchers is not None:
            watchers.discard(event)
            if not watchers:
                del self._watchers[node]
