"""Configuration analysis of the traffic kinds, as `istioctl analyze` reports it (pure).

`analyze(state, mesh, namespace=None)` returns `Message`s about VirtualServices and
DestinationRules in `namespace` (None: every namespace), each with Istio's message
code where Istio has one:

    IST0101 ReferencedResourceNotFound (Error)   a VirtualService destination or mirror
            host no Service has; a subset no DestinationRule for that host defines; a
            delegate VirtualService that does not exist
    IST0109 ConflictingMeshGatewayVirtualServiceHosts (Error)   several VirtualServices
            bound to the mesh gateway for one host
    IST0112 VirtualServiceDestinationPortSelectorRequired (Error)   a destination without
            a port to a Service with several ports
    IST0130 VirtualServiceUnreachableRule (Warning)   an http rule after a rule without match
    IST0173 DestinationRuleSubsetNotSelectPods (Error)   a subset whose labels select no
            pod of the Service
    IST0174 UnknownDestinationRuleHost (Warning)   a DestinationRule host no Service has
    SHL0001 NoReachableEndpoints (Warning, shoal's own: Istio has no code for it)   a
            destination that receives traffic but has no ready endpoint

Hosts resolve as in Istio: a name without dots is a Service in the object's namespace
(`reviews` -> `reviews.NS.svc.cluster.local`); any other name is taken as written.
Wildcard hosts are not checked against Services. A reference is *accepted* by the API and
reported here, as Istio does: creating the missing Service or subset clears the message.

Messages print as istioctl prints them
(`Error [IST0101] (VirtualService default/reviews) Referenced host not found: "reviewz"`)
and turn into Istio's `status.validationMessages` entries (`validation_message`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable

from shoal.mesh.meshconfig import MeshConfig
from shoal.mesh.source import (
    DESTINATION_RULES, ENDPOINTS, PODS, SERVICES, VIRTUAL_SERVICES, ClusterState,
)

Obj = dict[str, Any]

ERROR, WARNING, INFO = "Error", "Warning", "Info"
LEVEL_ORDER = {ERROR: 0, WARNING: 1, INFO: 2}
DOCS = "https://istio.io/latest/docs/reference/config/analysis/{code}/"


@dataclasses.dataclass(frozen=True)
class MessageType:
    code: str
    name: str
    level: str

    @property
    def documentation_url(self) -> str:
        return DOCS.format(code=self.code.lower()) if self.code.startswith("IST") else ""


REFERENCED_RESOURCE_NOT_FOUND = MessageType("IST0101", "ReferencedResourceNotFound", ERROR)
CONFLICTING_MESH_GATEWAY_HOSTS = MessageType(
    "IST0109", "ConflictingMeshGatewayVirtualServiceHosts", ERROR)
PORT_SELECTOR_REQUIRED = MessageType(
    "IST0112", "VirtualServiceDestinationPortSelectorRequired", ERROR)
UNREACHABLE_RULE = MessageType("IST0130", "VirtualServiceUnreachableRule", WARNING)
SUBSET_SELECTS_NO_PODS = MessageType("IST0173", "DestinationRuleSubsetNotSelectPods", ERROR)
UNKNOWN_DESTINATION_RULE_HOST = MessageType("IST0174", "UnknownDestinationRuleHost", WARNING)
NO_REACHABLE_ENDPOINTS = MessageType("SHL0001", "NoReachableEndpoints", WARNING)


@dataclasses.dataclass(frozen=True)
class Message:
    type: MessageType
    kind: str
    """VirtualService or DestinationRule."""
    namespace: str
    name: str
    text: str
    field: str = ""
    """The field path the message is about (spec.http[0].route[0].destination.host)."""

    @property
    def origin(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"

    def __str__(self) -> str:
        return f"{self.type.level} [{self.type.code}] ({self.origin}) {self.text}"

    def to_json(self) -> dict[str, Any]:
        """One entry of `istioctl analyze -o json`."""
        return {"code": self.type.code, "name": self.type.name, "level": self.type.level,
                "origin": self.origin, "message": self.text, "reference": self.field,
                "documentationUrl": self.type.documentation_url}

    def validation_message(self) -> dict[str, Any]:
        """The entry Istio writes under `status.validationMessages`."""
        entry: dict[str, Any] = {"type": {"code": self.type.code, "name": self.type.name},
                                 "level": self.type.level.upper()}
        if self.type.documentation_url:
            entry["documentationUrl"] = self.type.documentation_url
        return entry


def sort_key(message: Message) -> tuple:
    return (LEVEL_ORDER[message.type.level], message.type.code, message.kind,
            message.namespace, message.name, message.field, message.text)


# -- the cluster as analysis sees it --------------------------------------------------------

@dataclasses.dataclass
class _Index:
    services: dict[str, Obj]
    """FQDN -> Service."""
    pods: dict[str, list[Obj]]
    """namespace -> pods."""
    pod_by_name: dict[tuple[str, str], Obj]
    """(namespace, name) -> pod."""
    pods_by_label: dict[tuple[str, str, Any], list[Obj]]
    """(namespace, label key, value) -> pods: selectors look up one label, not scan."""
    rules: dict[str, list[Obj]]
    """FQDN -> DestinationRules for that host."""
    state: ClusterState
    mesh: MeshConfig

    def fqdn(self, host: str, namespace: str) -> str:
        if "." in host or host.startswith("*"):
            return host.rstrip(".")
        return f"{host}.{namespace}.svc.{self.mesh.cluster_domain}"

    def service_pods(self, svc: Obj) -> list[Obj]:
        """The pods a Service selects (its endpoints' pods when it has no selector)."""
        ns = _ns(svc)
        selector = (svc.get("spec") or {}).get("selector")
        if selector:
            key, value = next(iter(selector.items()))
            return [p for p in self.pods_by_label.get((ns, key, value), [])
                    if _has_labels(p, selector)]
        names = {(a.get("targetRef") or {}).get("name") for a in self._addresses(svc, ready=True)}
        return [p for n in sorted(n for n in names if n)
                if (p := self.pod_by_name.get((ns, n))) is not None]

    def _addresses(self, svc: Obj, *, ready: bool) -> list[Obj]:
        eps = self.state.get(ENDPOINTS, _ns(svc), svc["metadata"]["name"]) or {}
        key = "addresses" if ready else "notReadyAddresses"
        return [a for s in eps.get("subsets") or [] for a in s.get(key) or []]

    def ready_pods(self, svc: Obj) -> set[str] | None:
        """Names of the pods behind ready endpoint addresses (None: addresses without
        pods, counted as reachable as a whole)."""
        addresses = self._addresses(svc, ready=True)
        names = {(a.get("targetRef") or {}).get("name") for a in addresses}
        return None if addresses and None in names else {n for n in names if n}

    def visible_rules(self, fqdn: str, namespace: str) -> list[Obj]:
        return [r for r in self.rules.get(fqdn, []) if _exported_to(r, namespace)]


def _ns(obj: Obj) -> str:
    return (obj.get("metadata") or {}).get("namespace") or "default"


def _has_labels(pod: Obj, wanted: dict[str, Any]) -> bool:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in wanted.items())


def _exported_to(obj: Obj, namespace: str) -> bool:
    export = (obj.get("spec") or {}).get("exportTo") or ["*"]
    return "*" in export or namespace in export or ("." in export and _ns(obj) == namespace)


def _index(state: ClusterState, mesh: MeshConfig) -> _Index:
    index = _Index({}, {}, {}, {}, {}, state, mesh)
    for svc in state.list(SERVICES):
        index.services[f"{svc['metadata']['name']}.{_ns(svc)}.svc.{mesh.cluster_domain}"] = svc
    for pod in state.list(PODS):
        index.pods.setdefault(_ns(pod), []).append(pod)
        index.pod_by_name[(_ns(pod), pod["metadata"]["name"])] = pod
        for key, value in ((pod.get("metadata") or {}).get("labels") or {}).items():
            index.pods_by_label.setdefault((_ns(pod), key, value), []).append(pod)
    for rule in state.list(DESTINATION_RULES):
        host = (rule.get("spec") or {}).get("host")
        if isinstance(host, str) and host:
            index.rules.setdefault(index.fqdn(host, _ns(rule)), []).append(rule)
    return index


# -- analysis -------------------------------------------------------------------------------

def analyze(state: ClusterState, mesh: MeshConfig = MeshConfig(),
            namespace: str | None = None) -> list[Message]:
    """Every message about the VirtualServices and DestinationRules in `namespace`."""
    index = _index(state, mesh)
    messages: list[Message] = []
    services = state.list(VIRTUAL_SERVICES)
    for vs in services:
        if namespace is None or _ns(vs) == namespace:
            messages += _virtual_service(index, vs)
    messages += [m for m in _conflicting_hosts(index, services)
                 if namespace is None or m.namespace == namespace]
    for rule in state.list(DESTINATION_RULES, namespace):
        messages += _destination_rule(index, rule)
    return sorted(messages, key=sort_key)


def _destinations(spec: Obj) -> Iterable[tuple[str, Obj, int | None, list[Obj]]]:
    """(field path, destination, weight or None for a mirror, sibling destinations)."""
    for kind in ("http", "tcp", "tls"):
        for i, rule in enumerate(spec.get(kind) or []):
            if not isinstance(rule, dict):
                continue
            routes = [r for r in rule.get("route") or [] if isinstance(r, dict)]
            for j, r in enumerate(routes):
                weight = r.get("weight") if len(routes) > 1 else 100
                yield f"spec.{kind}[{i}].route[{j}].destination", r.get("destination") or {}, \
                    weight or 0, routes
            if kind == "http":
                if isinstance(rule.get("mirror"), dict):
                    yield f"spec.http[{i}].mirror", rule["mirror"], None, []
                for j, m in enumerate(rule.get("mirrors") or []):
                    yield (f"spec.http[{i}].mirrors[{j}].destination",
                           (m or {}).get("destination") or {}, None, [])


def _virtual_service(index: _Index, vs: Obj) -> list[Message]:
    ns, name = _ns(vs), vs["metadata"]["name"]
    spec = vs.get("spec") or {}
    out: list[Message] = []

    def report(kind: MessageType, text: str, field: str) -> None:
        out.append(Message(kind, "VirtualService", ns, name, text, field))

    for field, dest, weight, _ in _destinations(spec):
        host = dest.get("host")
        if not isinstance(host, str) or not host or host.startswith("*"):
            continue
        fqdn = index.fqdn(host, ns)
        svc = index.services.get(fqdn)
        if svc is None:
            report(REFERENCED_RESOURCE_NOT_FOUND, f'Referenced host not found: "{host}"',
                   f"{field}.host")
            continue
        subset = dest.get("subset")
        labels: dict[str, Any] | None = {}
        if subset:
            labels = _subset_labels(index.visible_rules(fqdn, ns), subset)
            if labels is None:
                report(REFERENCED_RESOURCE_NOT_FOUND, "Referenced host+subset in "
                       f'destinationrule not found: "{host}+{subset}"', f"{field}.subset")
        ports = [p.get("port") for p in (svc.get("spec") or {}).get("ports") or []]
        if len(ports) > 1 and not (dest.get("port") or {}).get("number"):
            report(PORT_SELECTOR_REQUIRED, f'This VirtualService routes to a service "{host}" '
                   f"that exposes multiple ports {_go_list(ports)}. Specifying a port in the "
                   "destination is required to disambiguate.", f"{field}.port")
        if weight and labels is not None and not _reachable(index, svc, labels):
            which = f'"{host}" subset "{subset}"' if subset else f'"{host}"'
            report(NO_REACHABLE_ENDPOINTS, f"Traffic with weight {weight} goes to {which}, "
                   "which has no ready endpoint: those requests fail with 503.", field)
    out += _unreachable_rules(ns, name, spec)
    for i, rule in enumerate(spec.get("http") or []):
        delegate = (rule or {}).get("delegate") if isinstance(rule, dict) else None
        if isinstance(delegate, dict) and delegate.get("name"):
            target_ns = delegate.get("namespace") or ns
            if index.state.get(VIRTUAL_SERVICES, target_ns, delegate["name"]) is None:
                report(REFERENCED_RESOURCE_NOT_FOUND, "Referenced delegate VirtualService not "
                       f'found: "{target_ns}/{delegate["name"]}"', f"spec.http[{i}].delegate")
    return out


def _go_list(values: list[Any]) -> str:
    return "[" + " ".join(str(v) for v in values) + "]"


def _subset_labels(rules: list[Obj], subset: str) -> dict[str, Any] | None:
    for rule in rules:
        for s in (rule.get("spec") or {}).get("subsets") or []:
            if isinstance(s, dict) and s.get("name") == subset:
                return s.get("labels") or {}
    return None


def _reachable(index: _Index, svc: Obj, labels: dict[str, Any]) -> bool:
    ready = index.ready_pods(svc)
    if ready is None:
        return True
    for pod_name in ready:
        pod = index.pod_by_name.get((_ns(svc), pod_name))
        if (pod is None and not labels) or (pod is not None and _has_labels(pod, labels)):
            return True
    return False


def _unreachable_rules(ns: str, name: str, spec: Obj) -> list[Message]:
    out = []
    rules = [r for r in spec.get("http") or [] if isinstance(r, dict)]
    for i, rule in enumerate(rules[:-1]):
        if not rule.get("match"):
            for j in range(i + 1, len(rules)):
                out.append(Message(UNREACHABLE_RULE, "VirtualService", ns, name,
                                   f"VirtualService rule #{j} not used (only the last rule "
                                   "can have no matches).", f"spec.http[{j}]"))
            break
    return out


def _conflicting_hosts(index: _Index, services: list[Obj]) -> list[Message]:
    by_host: dict[str, list[Obj]] = {}
    for vs in services:
        spec = vs.get("spec") or {}
        gateways = spec.get("gateways") or ["mesh"]
        if "mesh" not in gateways:
            continue
        for host in {index.fqdn(h, _ns(vs)) for h in spec.get("hosts") or [] if isinstance(h, str)}:
            by_host.setdefault(host, []).append(vs)
    out = []
    for host, group in sorted(by_host.items()):
        if len(group) < 2:
            continue
        names = ",".join(f"{_ns(v)}/{v['metadata']['name']}" for v in group)
        for vs in group:
            out.append(Message(
                CONFLICTING_MESH_GATEWAY_HOSTS, "VirtualService", _ns(vs), vs["metadata"]["name"],
                f"The VirtualServices {names} associated with mesh gateway define the same host "
                f"{host} which can lead to undefined behavior. This can be fixed by merging the "
                "conflicting VirtualServices into a single resource.", "spec.hosts"))
    return out


def _destination_rule(index: _Index, rule: Obj) -> list[Message]:
    ns, name = _ns(rule), rule["metadata"]["name"]
    spec = rule.get("spec") or {}
    host = spec.get("host")
    if not isinstance(host, str) or not host or host.startswith("*"):
        return []
    svc = index.services.get(index.fqdn(host, ns))
    if svc is None:
        return [Message(UNKNOWN_DESTINATION_RULE_HOST, "DestinationRule", ns, name,
                        f"The host {host} defined in the DestinationRule does not match any "
                        "services in the mesh.", "spec.host")]
    out = []
    pods = index.service_pods(svc)
    for i, subset in enumerate(spec.get("subsets") or []):
        if not isinstance(subset, dict) or not subset.get("name"):
            continue
        if not any(_has_labels(p, subset.get("labels") or {}) for p in pods):
            out.append(Message(SUBSET_SELECTS_NO_PODS, "DestinationRule", ns, name,
                               f"The Subset {subset['name']} defined in the DestinationRule does "
                               "not select any pods. Which may lead to 503 UH (NoHealthyUpstream).",
                               f"spec.subsets[{i}]"))
    return out


def has_errors(messages: Iterable[Message]) -> bool:
    return any(m.type.level == ERROR for m in messages)
