"""EnvoyFilter (networking.istio.io/v1alpha3): Istio's patch model on translated resources.

`apply_envoy_filters(resources, filters, proxy, root_namespace)` is pure: it returns the
proxy's resources with every EnvoyFilter that selects the proxy applied, as Istio applies
them (pilot's envoyfilter package is the reference for the semantics, not the code):

- Selection: filters in the root namespace, then those in the proxy's namespace; a
  `workloadSelector.labels` must be a subset of the pod's labels (a root-namespace filter
  with a selector selects pods in every namespace). Within each group the order is
  `priority`, then `metadata.creationTimestamp`, then name; patches keep their order.
- Contexts: `virtualInbound`, `inbound|...` clusters and the inline route configuration
  of inbound HTTP connection managers are SIDECAR_INBOUND; everything else a sidecar
  has is SIDECAR_OUTBOUND; ANY matches both; GATEWAY matches nothing (no gateways yet).
- applyTo LISTENER, LISTENER_FILTER, FILTER_CHAIN, NETWORK_FILTER, HTTP_FILTER,
  ROUTE_CONFIGURATION, VIRTUAL_HOST, HTTP_ROUTE, CLUSTER with the operations Istio allows
  on each (MERGE, MERGE_AND_REPLACE_LIST, ADD, REMOVE, INSERT_BEFORE, INSERT_AFTER,
  INSERT_FIRST, REPLACE); INSERT_* on an applyTo without order becomes ADD; INSERT_BEFORE
  without a filter match inserts first, INSERT_AFTER without one appends, INSERT_FIRST
  inserts first when its match (if any) finds an element (the API's wording); a LISTENER or
  CLUSTER ADD adds its value once (its match, but for the context, is not consulted).
- Matching on virtual listeners: `listener.portNumber` selects filter chains by their
  `destination_port`; filter names match canonically (`envoy.http_connection_manager`
  from older Istio docs is `envoy.filters.network.http_connection_manager`).
- `value` is in Envoy's JSON/YAML shape, parsed strictly into the typed message
  (`@type` names any typed_config; its descriptors are loaded from the generated
  `envoy`/`xds`/`udpa` packages on demand; a TypedStruct's value is checked against its
  `type_url`, since Envoy would drop an unknown field there with a mere warning). MERGE is proto merge as Istio does it
  (lists appended, maps replaced per key, durations and wrappers replaced); the
  `typed_config` of a network or HTTP filter with the same type (or a `TypedStruct`
  of that type) is merged field by field inside the Any.
- CLUSTER matches: `name`, or `service`/`portNumber`/`subset` parsed from Istio's
  cluster names (`outbound|80||web.default.svc.cluster.local`; inbound clusters match by
  `portNumber`, the pod port; a `service` never selects an inbound cluster here).
- `match.proxy`: `metadata` is compared with the node metadata shoal's bootstrap sets
  (NAME, NAMESPACE, SERVICE_ACCOUNT, INSTANCE_IPS, CLUSTER_ID); a `proxyVersion` never
  matches (shoal sidecars report no Istio version, and Istio does not match those).

Failure is per proxy and per filter: a filter whose patch value does not parse is skipped
for this proxy, a patch that cannot be applied (a MERGE of mismatched types) is skipped,
and a message naming the filter and patch is added to the result's `problems`; the
other filters still apply. Should applying fail in any other way, the proxy gets its
unpatched resources and a message saying so (never an exception).
What Envoy itself rejects (a value valid for the proto but not for Envoy) is its NACK.
After patching, endpoints and route configurations nobody names are dropped and missing
ones added empty, so the snapshot stays consistent. Inputs are never mutated: changed
messages are copies; unchanged ones are the same (shared) objects.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Protocol, TypeVar

from google.protobuf.message import Message

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.route.v3 import route_pb2

from shoal.mesh.translate import names, protos
from shoal.mesh.translate.envoyfilter import listeners as listener_patches
from shoal.mesh.translate.envoyfilter import routes as route_patches
from shoal.mesh.translate.envoyfilter.patches import (
    GATEWAY, INBOUND, OUTBOUND, Obj, Patch, PatchError, compile_patches, context_matches,
    copy_message, is_merge, merge_patch, select_filters,
)
from shoal.mesh.translate.model import ProxyIdentity

__all__ = ["apply_envoy_filters", "select_filters", "PatchError"]


class ResourceSet(Protocol):
    clusters: tuple[Message, ...]
    endpoints: tuple[Message, ...]
    listeners: tuple[Message, ...]
    routes: tuple[Message, ...]
    problems: tuple[str, ...]


R = TypeVar("R", bound=ResourceSet)


# -- clusters -------------------------------------------------------------------------

def _cluster_context(cluster: Message) -> str:
    inbound = cluster.name.startswith("inbound|") or cluster.name == names.INBOUND_PASSTHROUGH
    return INBOUND if inbound else OUTBOUND


def _cluster_matches(cluster: Message, p: Patch) -> bool:
    match = p.match.get("cluster")
    if not match:
        return True
    if match.get("name"):
        return match["name"] == cluster.name
    parts = cluster.name.split("|")
    if len(parts) != 4:
        direction, port, subset, host = "", 0, "", ""
    else:
        direction, port_s, subset, host = parts
        port = int(port_s) if port_s.isdigit() else 0
    if match.get("subset") and match["subset"] != subset:
        return False
    # inbound clusters carry no host: Istio matches `service` against the services of the
    # pod port; shoal does not know them here, so a service match never selects one
    if match.get("service") and (direction == "inbound" or match["service"] != host):
        return False
    return not match.get("portNumber") or int(match["portNumber"]) == port


def _patch_clusters(clusters: list[Message], patches: list[Patch]) -> list[Message]:
    if not patches:
        return clusters
    out = []
    for original in clusters:
        context = _cluster_context(original)
        relevant = [p for p in patches
                    if context_matches(p, context) and _cluster_matches(original, p)]
        if any(p.operation == "REMOVE" for p in relevant):
            continue
        merges = [p for p in relevant if is_merge(p)]
        if not merges:
            out.append(original)
            continue
        cluster = copy_message(original)
        for p in merges:
            merge_patch(cluster, p)
        out.append(cluster)
    out += [copy_message(p.value) for p in patches if p.operation == "ADD"]
    return out


# -- the entry point ------------------------------------------------------------------

def apply_envoy_filters(resources: R, filters: list[Obj], proxy: ProxyIdentity,
                        root_namespace: str) -> R:
    """`resources` with the EnvoyFilters that select `proxy` applied (see module doc)."""
    selected = select_filters(filters, proxy, root_namespace)
    if not selected:
        return resources
    problems = list(resources.problems)
    by: dict[str, list[Patch]] = {}
    for envoy_filter in selected:
        try:
            patches = compile_patches(envoy_filter, proxy)
        except PatchError as exc:
            problems.append(f"{exc}; the EnvoyFilter is skipped for this proxy")
            continue
        except (TypeError, ValueError, AttributeError) as exc:  # malformed spec
            meta = envoy_filter.get("metadata") or {}
            problems.append(f"EnvoyFilter {meta.get('namespace')}/{meta.get('name')}: "
                            f"malformed spec ({exc}); skipped for this proxy")
            continue
        for p in patches:
            if p.context != GATEWAY:
                by.setdefault(p.apply_to, []).append(p)
    if not by:
        return dataclasses.replace(resources, problems=tuple(problems))
    try:
        listeners = listener_patches.patch_listeners(list(resources.listeners), by, problems)
        routes = [route_patches.patch_route_configuration(rc, OUTBOUND, by, problems)
                  for rc in resources.routes]
        clusters = _patch_clusters(list(resources.clusters), by.get("CLUSTER", []))
        endpoints = list(resources.endpoints)
        if not _same(clusters, resources.clusters):
            endpoints = _consistent_endpoints(clusters, endpoints)
        routes = _consistent_routes(listeners, routes)
    except Exception as exc:  # as Istio does after a panic: serve the unpatched config
        return dataclasses.replace(resources, problems=tuple(problems) + (
            f"EnvoyFilter patches not applied to this proxy: {type(exc).__name__}: {exc}",))
    return dataclasses.replace(
        resources,
        clusters=_sorted_unique(clusters, resources.clusters),
        endpoints=_sorted_unique(endpoints, resources.endpoints),
        listeners=_sorted_unique(listeners, resources.listeners),
        routes=_sorted_unique(routes, resources.routes),
        problems=tuple(problems))


def _same(messages: list[Message], before: tuple[Message, ...]) -> bool:
    return len(messages) == len(before) and all(a is b for a, b in zip(messages, before))


def _sorted_unique(messages: list[Message], before: tuple[Message, ...]) -> tuple[Message, ...]:
    """By name (a later ADD of a name wins); `before` itself when nothing changed."""
    if _same(messages, before):
        return before
    by_name: dict[str, Message] = {}
    for m in messages:
        by_name[protos.resource_name(m)] = m
    return tuple(by_name[n] for n in sorted(by_name))


_RDS_NAMES: "collections.OrderedDict[int, tuple[Message, frozenset[str]]]" = \
    collections.OrderedDict()


def _rds_names(listener: Message) -> frozenset[str]:
    """Route configuration names a listener's HTTP connection managers fetch over RDS,
    memoized per message object (the shared outbound listener is unpacked once)."""
    entry = _RDS_NAMES.get(id(listener))
    if entry is not None and entry[0] is listener:
        return entry[1]
    chains = list(listener.filter_chains)
    if listener.HasField("default_filter_chain"):
        chains.append(listener.default_filter_chain)
    found = set()
    for chain in chains:
        for f in chain.filters:
            hcm = protos.hcm_of(f)
            if hcm is not None and hcm.HasField("rds"):
                found.add(hcm.rds.route_config_name)
    _RDS_NAMES[id(listener)] = (listener, frozenset(found))  # holding it keeps the id unique
    if len(_RDS_NAMES) > 256:
        _RDS_NAMES.popitem(last=False)
    return frozenset(found)


def _consistent_endpoints(clusters: list[Message], endpoints: list[Message]) -> list[Message]:
    """Endpoint assignments exactly as the patched clusters name them over EDS: orphans
    dropped, missing ones added empty (so the snapshot stays consistent)."""
    eds = {c.eds_cluster_config.service_name or c.name for c in clusters
           if c.type == cluster_pb2.Cluster.EDS}
    endpoints = [e for e in endpoints if e.cluster_name in eds]
    have = {e.cluster_name for e in endpoints}
    return endpoints + [endpoint_pb2.ClusterLoadAssignment(cluster_name=n)
                        for n in sorted(eds - have)]


def _consistent_routes(listeners: list[Message], routes: list[Message]) -> list[Message]:
    """Route configurations exactly as the patched listeners name them over RDS."""
    rds = set().union(*(_rds_names(listener) for listener in listeners))
    routes = [r for r in routes if r.name in rds]
    have = {r.name for r in routes}
    return routes + [route_pb2.RouteConfiguration(name=n) for n in sorted(rds - have)]
