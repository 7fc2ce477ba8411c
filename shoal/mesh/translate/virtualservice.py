"""Istio VirtualServices as the sidecars see them: which apply to which service and client.

`VirtualServiceIndex` (one per cluster state), as Istio defines it for sidecars:

- `gateways` absent means `[mesh]`; a VirtualService whose gateways omit `mesh` does
  not apply to sidecars. A match whose own `gateways` omit `mesh` is skipped.
- `exportTo` absent or `*`: visible in every namespace; `.`: its own namespace only;
  `~`: nowhere; else the listed namespaces (`.` inside the list = its own).
- `hosts`: a name without a dot is a short name, resolved against the VirtualService's
  namespace (`reviews` -> `reviews.NS.svc.<cluster domain>`); names with dots are taken
  as written; `*.suffix` matches every service FQDN ending in `.suffix`, `*` matches
  all. An exact host beats wildcards; of the wildcards, the longest wins.
- Several VirtualServices for one host are merged: their rules are concatenated in
  creation order (creationTimestamp, then namespace/name), so an earlier object's
  catch-all rule hides later rules (Istio's sidecar merge; shoal does not refuse
  the conflict, `shoal mesh analyze` reports it).
- `delegate`: the rule is replaced by the delegate VirtualService's rules (which must
  have no hosts and be exported to the root's namespace), each match merged with the
  root's (`merge_delegate`, Istio's rules: conflicting matches drop the delegate rule,
  unset delegate fields inherit the root's).

Routes depend on the client proxy only through `sourceNamespace` and `sourceLabels`:
`ClientKey` is (namespace, the client's values for the label keys any sourceLabels
names), so route configs are memoized per key, not per proxy.

Pure; built once per cluster state and shared by every proxy's translation.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Mapping

from shoal.mesh.meshconfig import MeshConfig
from shoal.mesh.source import VIRTUAL_SERVICES, ClusterState
from shoal.mesh.translate import names

Obj = dict[str, Any]

MESH_GATEWAY = "mesh"


@dataclasses.dataclass(frozen=True)
class ClientKey:
    """What of a client proxy its routes depend on (see module docstring)."""

    namespace: str
    labels: tuple[tuple[str, str], ...] = ()

    def has_labels(self, wanted: Mapping[str, str] | None) -> bool:
        return not wanted or dict(wanted).items() <= dict(self.labels).items()


@dataclasses.dataclass(frozen=True)
class VirtualService:
    """A VirtualService that applies to sidecars, hosts resolved, delegates expanded."""

    namespace: str
    name: str
    hosts: tuple[str, ...]
    export_to: frozenset[str] | None
    """Namespaces that see it; None: every namespace."""
    http: tuple[Obj, ...]
    tcp: tuple[Obj, ...]
    tls: tuple[Obj, ...]

    def visible_to(self, namespace: str) -> bool:
        return self.export_to is None or namespace in self.export_to

    @property
    def config_path(self) -> str:
        """Istio's route metadata `istio.config` (config_dump shows the source object)."""
        return (f"/apis/networking.istio.io/v1/namespaces/{self.namespace}"
                f"/virtual-service/{self.name}")


def resolve_host(host: str, namespace: str, cluster_domain: str) -> str:
    """Istio's short-name rule: a dotless name is NAME.NAMESPACE.svc.DOMAIN."""
    if host == "*" or "." in host:
        return host
    return names.fqdn(host, namespace, cluster_domain)


def resolve_destinations(rule: Obj, namespace: str, cluster_domain: str) -> Obj:
    """A copy of an http/tcp/tls rule with its destination and mirror hosts resolved
    against the namespace of the VirtualService that wrote them (a delegate's own)."""
    def dest(d: Obj) -> Obj:
        return {**d, "host": resolve_host(d.get("host", ""), namespace, cluster_domain)}
    out = dict(rule)
    if rule.get("route"):
        out["route"] = [{**r, "destination": dest(r["destination"])} if r.get("destination") else r
                        for r in rule["route"]]
    if rule.get("mirror"):
        out["mirror"] = dest(rule["mirror"])
    if rule.get("mirrors"):
        out["mirrors"] = [{**m, "destination": dest(m["destination"])} if m.get("destination")
                          else m for m in rule["mirrors"]]
    return out


def host_matches(pattern: str, fqdn: str) -> bool:
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        return fqdn.endswith(pattern[1:])
    return pattern == fqdn


def _export_to(values: list[str] | None, namespace: str) -> frozenset[str] | None:
    if not values or "*" in values:
        return None
    return frozenset(namespace if v == "." else v for v in values if v != "~")


def _created(obj: Obj) -> tuple[str, str, str]:
    meta = obj.get("metadata") or {}
    return (meta.get("creationTimestamp") or "", meta.get("namespace") or "default",
            meta.get("name", ""))


class VirtualServiceIndex:
    """The VirtualServices of one cluster state that apply to sidecars, by host.

    Built once per state (proxy-independent); `for_service` and `client_key` are cheap.
    """

    def __init__(self, state: ClusterState, mesh: MeshConfig) -> None:
        self.mesh = mesh
        objects = sorted(state.list(VIRTUAL_SERVICES), key=_created)
        by_name = {(_created(o)[1], _created(o)[2]): o for o in objects}
        self.virtual_services: list[VirtualService] = []
        self._exact: dict[str, list[VirtualService]] = {}
        self._wildcards: list[tuple[str, VirtualService]] = []
        label_keys: set[str] = set()
        for obj in objects:
            vs = self._parse(obj, by_name)
            if vs is None:
                continue
            self.virtual_services.append(vs)
            for host in vs.hosts:
                if host.startswith("*"):
                    self._wildcards.append((host, vs))
                else:
                    self._exact.setdefault(host, []).append(vs)
            for rule in vs.http + vs.tcp + vs.tls:
                for match in rule.get("match") or ():
                    label_keys.update((match.get("sourceLabels") or {}).keys())
        self.label_keys = tuple(sorted(label_keys))
        self.has_l4_rules = any(vs.tcp or vs.tls for vs in self.virtual_services)

    def _parse(self, obj: Obj, by_name: Mapping[tuple[str, str], Obj]) -> VirtualService | None:
        _, namespace, name = _created(obj)
        spec = obj.get("spec") or {}
        if not spec.get("hosts") or MESH_GATEWAY not in (spec.get("gateways") or [MESH_GATEWAY]):
            return None  # a delegate (no hosts) or a gateway-only VirtualService
        domain = self.mesh.cluster_domain
        http: list[Obj] = []
        for rule in spec.get("http") or ():
            delegate = rule.get("delegate")
            if not delegate:
                http.append(resolve_destinations(rule, namespace, domain))
                continue
            target = by_name.get((delegate.get("namespace") or namespace, delegate.get("name", "")))
            if target is None or (target.get("spec") or {}).get("hosts"):
                continue  # Istio drops a rule whose delegate is missing or not a delegate
            target_ns = _created(target)[1]
            exported = _export_to((target.get("spec") or {}).get("exportTo"), target_ns)
            if exported is not None and namespace not in exported:
                continue
            leaves = [resolve_destinations(r, target_ns, domain)
                      for r in target["spec"].get("http") or () if not r.get("delegate")]
            http += merge_delegate(rule, leaves)
        return VirtualService(
            namespace=namespace, name=name,
            hosts=tuple(resolve_host(h, namespace, domain) for h in spec["hosts"]),
            export_to=_export_to(spec.get("exportTo"), namespace),
            http=tuple(http),
            tcp=tuple(resolve_destinations(r, namespace, domain) for r in spec.get("tcp") or ()),
            tls=tuple(resolve_destinations(r, namespace, domain) for r in spec.get("tls") or ()))

    def for_service(self, fqdn: str, namespace: str) -> list[VirtualService]:
        """VirtualServices for `fqdn` visible to a client in `namespace`, in merge order."""
        exact = [vs for vs in self._exact.get(fqdn, ()) if vs.visible_to(namespace)]
        if exact:
            return exact
        best: list[tuple[str, VirtualService]] = [
            (pattern, vs) for pattern, vs in self._wildcards
            if host_matches(pattern, fqdn) and vs.visible_to(namespace)]
        if not best:
            return []
        longest = max(len(p) for p, _ in best)
        return [vs for p, vs in best if len(p) == longest]

    def client_key(self, namespace: str, labels: Mapping[str, str]) -> ClientKey:
        return ClientKey(namespace, tuple((k, labels[k]) for k in self.label_keys if k in labels))


def source_matches(match: Obj | None, client: ClientKey) -> bool:
    """Istio's sourceMatch: match gateways (if any) include mesh, else sourceLabels and
    sourceNamespace fit the client."""
    if not match:
        return True
    if match.get("gateways"):
        return MESH_GATEWAY in match["gateways"]
    return client.has_labels(match.get("sourceLabels")) and \
        match.get("sourceNamespace", "") in ("", client.namespace)


# -- delegate merge (Istio's rules) ------------------------------------------------

_STRING_FIELDS = ("uri", "scheme", "method", "authority")
_MAP_FIELDS = ("headers", "withoutHeaders", "queryParams", "sourceLabels")
_INHERITED = ("rewrite", "directResponse", "timeout", "retries", "fault", "mirror",
              "mirrorPercent", "mirrorPercentage", "corsPolicy", "mirrors", "headers")


def _string_conflict(root: Obj | None, leaf: Obj | None) -> bool:
    if not root or not leaf:
        return False
    if "regex" in root or "regex" in leaf:
        return True
    if "exact" in root:
        return leaf.get("exact") != root["exact"]
    if "prefix" in root:
        value = leaf.get("prefix", leaf.get("exact"))
        return value is None or not value.startswith(root["prefix"])
    return True


def _match_conflict(root: Obj, leaf: Obj) -> bool:
    if any(_string_conflict(root.get(f), leaf.get(f)) for f in _STRING_FIELDS):
        return True
    for field in ("headers", "withoutHeaders", "queryParams"):
        mine = root.get(field) or {}
        if any(_string_conflict(mine.get(k), v) for k, v in (leaf.get(field) or {}).items()):
            return True
    if bool(root.get("ignoreUriCase")) != bool(leaf.get("ignoreUriCase")):
        return True
    if root.get("port") and leaf.get("port") and root["port"] != leaf["port"]:
        return True
    if root.get("sourceNamespace") and leaf.get("sourceNamespace") != root["sourceNamespace"]:
        return True
    root_labels = root.get("sourceLabels") or {}
    if any(k in root_labels and root_labels[k] != v
           for k, v in (leaf.get("sourceLabels") or {}).items()):
        return True
    if root.get("gateways") and leaf.get("gateways"):
        return not set(leaf["gateways"]) <= set(root["gateways"])
    return False


def _merge_match(root: Obj, leaf: Obj) -> Obj:
    out = dict(leaf)
    if root.get("name"):
        out["name"] = f"{root['name']}-{leaf['name']}" if leaf.get("name") else root["name"]
    for field in _STRING_FIELDS + ("port", "sourceNamespace", "gateways"):
        if not out.get(field) and root.get(field):
            out[field] = root[field]
    for field in _MAP_FIELDS:
        merged = {**(root.get(field) or {}), **(leaf.get(field) or {})}
        if merged:
            out[field] = merged
    return out


def merge_delegate(root: Obj, delegate_rules: Iterable[Obj]) -> list[Obj]:
    """The delegate's rules with the root rule's matches and settings merged in."""
    out = []
    for leaf in delegate_rules:
        root_matches, leaf_matches = root.get("match") or [], leaf.get("match") or []
        if not root_matches:
            matches = leaf_matches
        elif not leaf_matches:
            matches = root_matches
        else:
            matches = []
            for sub in leaf_matches:
                found = [_merge_match(r, sub) for r in root_matches if not _match_conflict(r, sub)]
                if not found:
                    matches = []
                    break
                matches += found
            if not matches:
                continue  # conflict: Istio ignores this delegate rule
        merged = dict(leaf)
        merged.pop("match", None)
        if matches:
            merged["match"] = matches
        if root.get("name"):
            merged["name"] = f"{root['name']}-{leaf['name']}" if leaf.get("name") else root["name"]
        for field in _INHERITED:
            if field not in merged and field in root:
                merged[field] = root[field]
        out.append(merged)
    return out
