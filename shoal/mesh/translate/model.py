"""The mesh's view of Kubernetes objects: services, their ports and endpoints, proxies.

Pure functions from `ClusterState` dicts to small frozen values the builders use, so
the builders never dig through Kubernetes dicts themselves.

Protocol of a port (Istio's rules): `appProtocol` first, else the port name's prefix
before the first '-' (`http`, `http-web`, `grpc-api`, `http2`, `tcp-db`). HTTP-family
ports (http, http2, grpc, grpc-web, h2c) get an HTTP connection manager; of those,
http2/grpc/h2c speak HTTP/2 upstream. Anything else is opaque TCP.

Endpoints come from the service's Endpoints object when there is one (what the
endpoints controller writes); without one, from the ready pods the selector matches
(so the mesh works before an endpoints controller exists). An endpoint is "meshed"
(reached over mTLS) when its pod carries a sidecar: the `sidecar.istio.io/status`
annotation the injector writes or a container named `istio-proxy`, and its
PeerAuthentication does not DISABLE mTLS on that port (Istio's auto-mTLS).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable

from shoal.mesh.meshconfig import MeshConfig
from shoal.mesh.source import ENDPOINTS, PODS, SERVICES, ClusterState
from shoal.mesh.translate import names
from shoal.mesh.translate.peerauth import DISABLE, effective_mtls

Obj = dict[str, Any]

SIDECAR_CONTAINER = "istio-proxy"
STATUS_ANNOTATION = "sidecar.istio.io/status"
HTTP_PROTOCOLS = {"http", "http2", "grpc", "grpc-web", "h2c"}
H2_PROTOCOLS = {"http2", "grpc", "h2c"}


def port_protocol(name: str | None, app_protocol: str | None = None) -> str:
    """'http', 'http2', 'grpc', 'grpc-web', 'h2c', 'tcp', 'tls', ... (lower case)."""
    if app_protocol:
        proto = app_protocol.lower()
        if proto in ("kubernetes.io/h2c", "h2c"):
            return "h2c"
        if proto in ("kubernetes.io/ws", "kubernetes.io/wss"):
            return "http"
        return proto
    prefix = (name or "").lower().split("-", 1)[0]
    return prefix if prefix else "tcp"


def is_http(protocol: str) -> bool:
    return protocol in HTTP_PROTOCOLS


@dataclasses.dataclass(frozen=True)
class Endpoint:
    ip: str
    port: int
    meshed: bool
    """True when the pod behind it has a sidecar (mTLS); False: plaintext."""
    labels: tuple[tuple[str, str], ...] = ()
    """The pod's labels, sorted (DestinationRule subsets select by them); () without a pod."""


@dataclasses.dataclass(frozen=True)
class ServicePort:
    name: str
    port: int
    target_port: int | str
    protocol: str

    @property
    def http(self) -> bool:
        return is_http(self.protocol)

    @property
    def h2(self) -> bool:
        return self.protocol in H2_PROTOCOLS


@dataclasses.dataclass(frozen=True)
class MeshService:
    name: str
    namespace: str
    vip: str | None
    """ClusterIP; None for headless services (no outbound filter chain)."""
    fqdn: str
    ports: tuple[ServicePort, ...]
    endpoints: dict[int, tuple[Endpoint, ...]]
    """Service port -> endpoints, sorted."""
    service_accounts: tuple[str, ...]
    """SPIFFE IDs a client accepts from this service's servers, sorted."""


@dataclasses.dataclass(frozen=True)
class ContainerPort:
    port: int
    name: str
    protocol: str


@dataclasses.dataclass(frozen=True)
class ProxyIdentity:
    """Who a sidecar is: the pod it sits in."""

    pod: str
    namespace: str
    service_account: str
    ip: str
    ports: tuple[ContainerPort, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()

    @property
    def node_id(self) -> str:
        return node_id(self.ip, self.pod, self.namespace)

    @property
    def label_dict(self) -> dict[str, str]:
        return dict(self.labels)


def node_id(ip: str, pod: str, namespace: str, cluster_domain: str = "cluster.local") -> str:
    """Istio's sidecar node id: sidecar~IP~POD.NS~NS.svc.cluster.local."""
    return f"sidecar~{ip}~{pod}.{namespace}~{namespace}.svc.{cluster_domain}"


def parse_node_id(value: str) -> tuple[str, str, str]:
    """(ip, pod, namespace) from an Istio-style node id; ValueError names the value."""
    parts = value.split("~")
    if len(parts) != 4 or parts[0] != "sidecar" or "." not in parts[2]:
        raise ValueError(f"node id {value!r}: expected sidecar~IP~POD.NAMESPACE~DOMAIN")
    pod, _, namespace = parts[2].rpartition(".")
    return parts[1], pod, namespace


def has_sidecar(pod: Obj) -> bool:
    annotations = pod.get("metadata", {}).get("annotations") or {}
    if STATUS_ANNOTATION in annotations:
        return True
    spec = pod.get("spec", {})
    return any(c.get("name") == SIDECAR_CONTAINER
               for c in (spec.get("initContainers") or []) + (spec.get("containers") or []))


def pod_ip(pod: Obj) -> str | None:
    return (pod.get("status") or {}).get("podIP")


def pod_ready(pod: Obj) -> bool:
    status = pod.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return status.get("phase", "Running") == "Running"


def selects(selector: dict[str, str] | None, labels: dict[str, str]) -> bool:
    """Kubernetes equality selector; an empty or missing selector selects nothing here."""
    if not selector:
        return False
    return selector.items() <= labels.items()


class PodLabelIndex:
    """Pods of one namespace indexed by (label, value), so an equality selector costs
    the size of its smallest label's set instead of a scan of every pod. `select`
    answers exactly as `selects` over the pods, in their original order."""

    def __init__(self, pods: Iterable[Obj]) -> None:
        self._pods = list(pods)
        self._by_label: dict[tuple[str, str], list[int]] = {}
        for i, pod in enumerate(self._pods):
            for item in (pod["metadata"].get("labels") or {}).items():
                self._by_label.setdefault(item, []).append(i)

    def select(self, selector: dict[str, str] | None) -> list[Obj]:
        if not selector:
            return []
        try:
            candidates = [self._by_label.get(item, ()) for item in selector.items()]
        except TypeError:  # a value that is not a string (unhashable): scan
            return [p for p in self._pods if selects(selector, p["metadata"].get("labels") or {})]
        smallest = min(candidates, key=len)
        return [self._pods[i] for i in smallest
                if selector.items() <= (self._pods[i]["metadata"].get("labels") or {}).items()]


def proxy_identity(pod: Obj, state: ClusterState | None = None) -> ProxyIdentity:
    """The identity of the sidecar in `pod`: service account, IP, app ports, labels."""
    meta, spec = pod.get("metadata", {}), pod.get("spec", {})
    namespace = meta.get("namespace", "default")
    ports: dict[int, ContainerPort] = {}
    for container in spec.get("containers", []):
        if container.get("name") == SIDECAR_CONTAINER:
            continue
        for p in container.get("ports") or []:
            if (p.get("protocol") or "TCP") != "TCP":
                continue
            number = int(p["containerPort"])
            ports[number] = ContainerPort(number, p.get("name", ""), port_protocol(p.get("name")))
    labels = meta.get("labels") or {}
    if state is not None:
        # A Service's port protocol (name/appProtocol) wins over the container port's
        # name; when several Services target one port, the oldest Service decides
        # (creationTimestamp, then name), as in Istio.
        claimed: set[int] = set()
        services = sorted(state.list(SERVICES, namespace),
                          key=lambda s: (s["metadata"].get("creationTimestamp") or "",
                                         s["metadata"]["name"]))
        for svc in services:
            if not selects(svc.get("spec", {}).get("selector"), labels):
                continue
            for sp in svc["spec"].get("ports") or []:
                target = _resolve_target(sp.get("targetPort", sp["port"]), pod)
                if target is None or target in claimed:
                    continue
                claimed.add(target)
                proto = port_protocol(sp.get("name"), sp.get("appProtocol"))
                name = ports[target].name if target in ports else sp.get("name", "")
                ports[target] = ContainerPort(target, name, proto)
    return ProxyIdentity(
        pod=meta["name"],
        namespace=namespace,
        service_account=spec.get("serviceAccountName") or spec.get("serviceAccount") or "default",
        ip=pod_ip(pod) or "",
        ports=tuple(sorted(ports.values(), key=lambda p: p.port)),
        labels=tuple(sorted(labels.items())),
    )


def _resolve_target(target: int | str, pod: Obj) -> int | None:
    """A service targetPort as a number on this pod (named ports looked up)."""
    if isinstance(target, int) or str(target).isdigit():
        return int(target)
    for container in pod.get("spec", {}).get("containers", []):
        for p in container.get("ports") or []:
            if p.get("name") == target:
                return int(p["containerPort"])
    return None


def mesh_services(state: ClusterState, mesh: MeshConfig) -> list[MeshService]:
    """Every Service in the cluster, as the outbound side needs it. Sorted by FQDN."""
    services = []
    pods_by_ns: dict[str, list[Obj]] = {}
    for p in state.list(PODS):
        pods_by_ns.setdefault(p["metadata"].get("namespace", "default"), []).append(p)
    by_ip_ns = {ns: {pod_ip(p): p for p in pods if pod_ip(p)} for ns, pods in pods_by_ns.items()}
    by_label_ns = {ns: PodLabelIndex(pods) for ns, pods in pods_by_ns.items()}
    no_pods = PodLabelIndex(())
    for svc in state.list(SERVICES):
        meta, spec = svc["metadata"], svc.get("spec", {})
        ns = meta.get("namespace", "default")
        if spec.get("type") == "ExternalName":
            continue
        vip = spec.get("clusterIP")
        if vip in (None, "", "None"):
            vip = None
        ports = tuple(
            ServicePort(
                name=p.get("name", ""),
                port=int(p["port"]),
                target_port=p.get("targetPort", p["port"]),
                protocol=port_protocol(p.get("name"), p.get("appProtocol")),
            )
            for p in spec.get("ports") or [] if (p.get("protocol") or "TCP") == "TCP"
        )
        selector = spec.get("selector")
        selected = by_label_ns.get(ns, no_pods).select(selector)
        by_ip = by_ip_ns.get(ns, {})
        endpoints = _endpoints(state, mesh, svc, ports, selected, by_ip)
        accounts = sorted({
            f"spiffe://{mesh.trust_domain}/ns/{ns}/sa/"
            f"{pod['spec'].get('serviceAccountName') or 'default'}"
            for pod in _endpoint_pods(state, svc, selected, by_ip)
        })
        services.append(MeshService(
            name=meta["name"], namespace=ns, vip=vip,
            fqdn=names.fqdn(meta["name"], ns, mesh.cluster_domain),
            ports=ports, endpoints=endpoints, service_accounts=tuple(accounts),
        ))
    return sorted(services, key=lambda s: s.fqdn)


def _endpoint_pods(state: ClusterState, svc: Obj, selected: list[Obj],
                   by_ip: dict[str | None, Obj]) -> list[Obj]:
    ns = svc["metadata"].get("namespace", "default")
    eps = state.get(ENDPOINTS, ns, svc["metadata"]["name"])
    if eps is None:
        return selected
    pods = []
    for subset in eps.get("subsets") or []:
        for addr in subset.get("addresses") or []:
            ref = addr.get("targetRef") or {}
            pod = state.get(PODS, ns, ref["name"]) if ref.get("kind") == "Pod" else None
            pod = pod or by_ip.get(addr.get("ip"))
            if pod is not None:
                pods.append(pod)
    return pods


def _endpoints(
    state: ClusterState, mesh: MeshConfig, svc: Obj, ports: tuple[ServicePort, ...], selected: list[Obj],
    by_ip: dict[str | None, Obj],
) -> dict[int, tuple[Endpoint, ...]]:
    ns = svc["metadata"].get("namespace", "default")
    eps = state.get(ENDPOINTS, ns, svc["metadata"]["name"])
    result: dict[int, set[Endpoint]] = {p.port: set() for p in ports}

    def meshed(pod: Obj | None, port: int) -> bool:
        # mTLS only to a sidecar that accepts it on that port (Istio's auto-mTLS also
        # honours the server's PeerAuthentication DISABLE)
        if pod is None or not has_sidecar(pod):
            return False
        labels = pod["metadata"].get("labels") or {}
        return effective_mtls(state, mesh, ns, labels).for_port(port) != DISABLE
    if eps is not None:
        for subset in eps.get("subsets") or []:
            for sp in ports:
                number = _subset_port(subset, sp, len(ports))
                if number is None:
                    continue
                for addr in subset.get("addresses") or []:
                    pod = by_ip.get(addr.get("ip"))
                    result[sp.port].add(Endpoint(addr["ip"], number, meshed(pod, number),
                                                 _labels(pod)))
    else:
        for pod in selected:
            ip = pod_ip(pod)
            if not ip or not pod_ready(pod) or pod["metadata"].get("deletionTimestamp"):
                continue
            for sp in ports:
                number = _resolve_target(sp.target_port, pod)
                if number is not None:
                    result[sp.port].add(Endpoint(ip, number, meshed(pod, number), _labels(pod)))
    return {port: tuple(sorted(eps_, key=lambda e: (e.ip, e.port)))
            for port, eps_ in result.items()}


def _labels(pod: Obj | None) -> tuple[tuple[str, str], ...]:
    if pod is None:
        return ()
    return tuple(sorted((pod["metadata"].get("labels") or {}).items()))


def _subset_port(subset: Obj, sp: ServicePort, port_count: int) -> int | None:
    for p in subset.get("ports") or []:
        if p.get("name", "") == sp.name or (port_count == 1 and not sp.name):
            return int(p["port"])
    if port_count == 1 and subset.get("ports"):
        return int(subset["ports"][0]["port"])
    return None
