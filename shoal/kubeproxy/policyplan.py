"""NetworkPolicies, Pods and Namespaces -> what each pod may send and receive (pure).

`plan_policies(policies, pods, namespaces, cluster_dns=)` returns one
`shoal.network.policy.PodPolicy` per pod that a policy isolates, with Kubernetes'
semantics (the "Network Policies" concept page and the API reference):

- A policy selects the pods of its own namespace matching `spec.podSelector` ({}: all).
  A selected pod is isolated for each type in `spec.policyTypes` (defaulted by the API:
  [Ingress], plus Egress when egress rules exist); isolated means only what some rule
  of some policy of that type allows passes (policies are additive, never deny).
- A rule allows traffic from/to any of its peers (none listed: any address) on any of
  its ports (none listed: every port). A peer is a podSelector (pods of the policy's
  namespace), a namespaceSelector (every pod of matching namespaces), both (matching
  pods of matching namespaces, an AND), or an ipBlock (cidr less except).
- Named ports resolve per pod from its containers' ports (same protocol): an ingress
  port against the selected pod itself, an egress port against each destination pod
  (so a named egress port only ever reaches pods). A name no pod declares allows nothing.
- Only pods with an IP that are not finished count, as peers or as selected pods;
  hostNetwork pods are never isolated (they share the node's address).

The cluster DNS runs on the node but is a pod in Kubernetes (CoreDNS, in kube-system,
labelled k8s-app=kube-dns, ports dns/UDP and dns-tcp/TCP 53). `cluster_dns` makes it a
peer of that shape, so Kubernetes' usual "allow DNS" policies work unchanged; it is
never isolated itself.

Deterministic: the same objects always give the same result, in the same order.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

from shoal.api import selectors
from shoal.network import Allow, Peer, PodPolicy, PortMatch

Obj = Mapping[str, Any]
KUBE_DNS_LABELS = {"k8s-app": "kube-dns"}


@dataclasses.dataclass(frozen=True)
class ClusterDns:
    """Where the cluster DNS answers (the bridge gateway), seen by policies as a pod."""

    ip: str
    port: int = 53
    namespace: str = "kube-system"

    def as_pod(self) -> Obj:
        ports = [{"name": "dns", "containerPort": self.port, "protocol": "UDP"},
                 {"name": "dns-tcp", "containerPort": self.port, "protocol": "TCP"}]
        return {"metadata": {"namespace": self.namespace, "name": "cluster-dns", "labels": dict(KUBE_DNS_LABELS)},
                "spec": {"containers": [{"name": "dns", "ports": ports}]},
                "status": {"podIP": self.ip, "phase": "Running"}}


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _ip(pod: Obj) -> str | None:
    ip = (pod.get("status") or {}).get("podIP")
    if not ip or (pod.get("spec") or {}).get("hostNetwork"):
        return None
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return None
    return ip


def _key(pod: Obj) -> str:
    return f"{_meta(pod).get('namespace', '')}/{_meta(pod).get('name', '')}"


def _selector(spec: Any) -> selectors.LabelSelector:
    try:
        return selectors.selector_from_spec(spec if spec is not None else {})
    except Exception:  # a stored invalid selector selects nothing, it never breaks the sync
        return selectors.NOTHING


def named_port(pod: Obj, name: str, protocol: str) -> int | None:
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == name and (port.get("protocol") or "TCP") == protocol:
                return int(port["containerPort"])
    return None


class _Cluster:
    """The pods and namespace labels a plan is made from."""

    def __init__(self, pods: Iterable[Obj], namespaces: Iterable[Obj], cluster_dns: ClusterDns | None) -> None:
        self.pods = sorted((p for p in pods if _ip(p)), key=_key)
        self.peers = list(self.pods) + ([cluster_dns.as_pod()] if cluster_dns else [])
        self.namespace_labels: dict[str, Mapping[str, str]] = {
            _meta(ns).get("name", ""): _meta(ns).get("labels") or {} for ns in namespaces}
        if cluster_dns is not None:
            self.namespace_labels.setdefault(
                cluster_dns.namespace, {"kubernetes.io/metadata.name": cluster_dns.namespace})

    def peer_pods(self, peer: Obj, namespace: str) -> list[Obj]:
        pod_sel = peer.get("podSelector")
        ns_sel = peer.get("namespaceSelector")
        chosen_pods = _selector(pod_sel) if pod_sel is not None else None
        chosen_ns = _selector(ns_sel) if ns_sel is not None else None
        found = []
        for pod in self.peers:
            ns = _meta(pod).get("namespace", "")
            if chosen_ns is None:
                if ns != namespace:
                    continue
            elif not chosen_ns.matches(self.namespace_labels.get(ns, {})):
                continue
            if chosen_pods is not None and not chosen_pods.matches(_meta(pod).get("labels") or {}):
                continue
            found.append(pod)
        return found

    def pods_in(self, peer: Peer) -> list[Obj]:
        network = ipaddress.ip_network(peer.cidr, strict=False)
        excluded = [ipaddress.ip_network(e, strict=False) for e in peer.excepts]
        found = []
        for pod in self.peers:
            ip = ipaddress.ip_address(_ip(pod))
            if ip in network and not any(ip in e for e in excluded):
                found.append(pod)
        return found


def _ports(rule: Obj) -> list[Obj]:
    return [p for p in rule.get("ports") or [] if isinstance(p, Mapping)]


def _number_match(port: Obj) -> PortMatch | None:
    """The match of a numeric (or absent) port; None for a named one."""
    protocol = port.get("protocol") or "TCP"
    number = port.get("port")
    if number is None:
        return PortMatch(protocol)
    if isinstance(number, int) or (isinstance(number, str) and number.isdigit()):
        end = port.get("endPort")
        return PortMatch(protocol, int(number), int(end) if end is not None else None)
    return None


def _resolve(port: Obj, pod: Obj) -> PortMatch | None:
    protocol = port.get("protocol") or "TCP"
    number = named_port(pod, str(port.get("port")), protocol)
    return PortMatch(protocol, number) if number is not None else None


def _peers_of(rule_peers: list[Obj], namespace: str, cluster: _Cluster) -> tuple[list[Peer], list[Obj]] | None:
    """(address peers, peer pods) of a rule; None when the rule names no peers (any)."""
    if not rule_peers:
        return None
    addresses: list[Peer] = []
    pods: list[Obj] = []
    for peer in rule_peers:
        block = peer.get("ipBlock")
        if block is not None:
            network = ipaddress.ip_network(block["cidr"], strict=False)
            if network.version == 4:  # the pod network is IPv4-only: an IPv6 block matches nothing
                addresses.append(Peer(str(network), tuple(
                    str(ipaddress.ip_network(e, strict=False)) for e in block.get("except") or ())))
        else:
            pods += cluster.peer_pods(peer, namespace)
    return addresses, pods


def _pod_peer(pod: Obj) -> Peer:
    return Peer(f"{_ip(pod)}/32")


def _ingress_allows(rule: Obj, origin: str, namespace: str, target: Obj, cluster: _Cluster) -> list[Allow]:
    ports: list[PortMatch] | None = None
    if _ports(rule):
        ports = [m for m in (_number_match(p) or _resolve(p, target) for p in _ports(rule)) if m is not None]
        if not ports:
            return []
    found = _peers_of(list(rule.get("from") or []), namespace, cluster)
    port_tuple = tuple(dict.fromkeys(ports)) if ports is not None else None
    if found is None:
        return [Allow(None, port_tuple, origin)]
    addresses, pods = found
    peers = tuple(dict.fromkeys([*(_pod_peer(p) for p in pods), *addresses]))
    return [Allow(peers, port_tuple, origin)] if peers else []


def _egress_allows(rule: Obj, origin: str, namespace: str, cluster: _Cluster) -> list[Allow]:
    found = _peers_of(list(rule.get("to") or []), namespace, cluster)
    if found is None:
        addresses, pods, anywhere = [], list(cluster.peers), True
    else:
        (addresses, pods), anywhere = found, False
    numeric = [m for m in (_number_match(p) for p in _ports(rule)) if m is not None]
    named = [p for p in _ports(rule) if _number_match(p) is None]
    allows: list[Allow] = []
    if not _ports(rule) or numeric:
        port_tuple = tuple(dict.fromkeys(numeric)) if _ports(rule) else None
        if anywhere:
            allows.append(Allow(None, port_tuple, origin))
        else:
            peers = tuple(dict.fromkeys([*(_pod_peer(p) for p in pods), *addresses]))
            if peers:
                allows.append(Allow(peers, port_tuple, origin))
    if named:
        destinations = list(pods)
        for block in addresses:
            destinations += cluster.pods_in(block)
        for pod in sorted({_key(p): p for p in destinations}.values(), key=_key):
            resolved = tuple(dict.fromkeys(m for m in (_resolve(p, pod) for p in named) if m is not None))
            if resolved:
                allows.append(Allow((_pod_peer(pod),), resolved, origin))
    return allows


def plan_policies(policies: Iterable[Obj], pods: Iterable[Obj], namespaces: Iterable[Obj], *,
                  cluster_dns: ClusterDns | None = None) -> list[PodPolicy]:
    """One PodPolicy per isolated pod, ordered by pod key (see the module docstring)."""
    cluster = _Cluster(pods, namespaces, cluster_dns)
    ingress: dict[str, list[Allow]] = {}
    egress: dict[str, list[Allow]] = {}
    by_key = {_key(p): p for p in cluster.pods}
    for policy in sorted(policies, key=_key):
        namespace = _meta(policy).get("namespace", "")
        spec = policy.get("spec") or {}
        types = spec.get("policyTypes") or (["Ingress", "Egress"] if spec.get("egress") else ["Ingress"])
        chosen = _selector(spec.get("podSelector"))
        selected = [p for p in cluster.pods if _meta(p).get("namespace") == namespace
                    and chosen.matches(_meta(p).get("labels") or {})]
        name = _key(policy)
        for pod in selected:
            key = _key(pod)
            if "Ingress" in types:
                allows = ingress.setdefault(key, [])
                for i, rule in enumerate(spec.get("ingress") or []):
                    allows += _ingress_allows(rule or {}, f"{name} ingress[{i}]", namespace, pod, cluster)
            if "Egress" in types:
                allows = egress.setdefault(key, [])
                for i, rule in enumerate(spec.get("egress") or []):
                    allows += _egress_allows(rule or {}, f"{name} egress[{i}]", namespace, cluster)
    result = []
    for key in sorted(set(ingress) | set(egress)):
        pod = by_key[key]
        result.append(PodPolicy(
            pod_key=key, ip=_ip(pod) or "",
            ingress=tuple(ingress[key]) if key in ingress else None,
            egress=tuple(egress[key]) if key in egress else None))
    return result
