"""Who is at an address: pods, workloads and services from one `ClusterState`. Pure.

Istio's labels name workloads, not pods: `source_workload` is the pod's controller
(the Deployment behind its ReplicaSet, a StatefulSet, DaemonSet, Job, CronJob), or the
pod itself when it has none; `source_app` / `source_version` come from the pod's
`app` / `version` labels (or `app.kubernetes.io/name` / `app.kubernetes.io/version`);
anything not known is `unknown`, as in Istio. A `WorkloadIndex` is built once per
cluster-state revision and answers by pod IP, by (namespace, pod), by service FQDN and
by the pod and port a service targets.
"""

from __future__ import annotations

import dataclasses

from shoal.mesh.meshconfig import MeshConfig
from shoal.mesh.source import PODS, ClusterState
from shoal.mesh.translate import model

UNKNOWN = "unknown"


@dataclasses.dataclass(frozen=True)
class Workload:
    name: str = UNKNOWN
    namespace: str = UNKNOWN
    app: str = UNKNOWN
    version: str = UNKNOWN
    principal: str = UNKNOWN
    """The SPIFFE ID of the pod's service account."""


@dataclasses.dataclass(frozen=True)
class Service:
    fqdn: str = UNKNOWN
    name: str = UNKNOWN
    namespace: str = UNKNOWN


UNKNOWN_WORKLOAD = Workload()
UNKNOWN_SERVICE = Service()


def workload_name(pod: dict) -> str:
    """The workload a pod belongs to (Istio's `workload` label)."""
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    for ref in meta.get("ownerReferences") or []:
        if not ref.get("controller", True):
            continue
        kind, name = ref.get("kind", ""), ref.get("name", "")
        if kind == "ReplicaSet":
            template_hash = labels.get("pod-template-hash")
            if template_hash and name.endswith("-" + template_hash):
                return name[: -len(template_hash) - 1]
            return name
        if kind == "Job" and name.rpartition("-")[2].isdigit() and "-" in name:
            return name.rpartition("-")[0]  # a CronJob's Job: <cronjob>-<schedule time>
        if name:
            return name
    return meta.get("name", UNKNOWN)


def pod_workload(pod: dict, trust_domain: str) -> Workload:
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    labels = meta.get("labels") or {}
    namespace = meta.get("namespace") or "default"
    account = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    return Workload(
        name=workload_name(pod), namespace=namespace,
        app=labels.get("app") or labels.get("app.kubernetes.io/name") or UNKNOWN,
        version=labels.get("version") or labels.get("app.kubernetes.io/version") or UNKNOWN,
        principal=f"spiffe://{trust_domain}/ns/{namespace}/sa/{account}",
    )


class WorkloadIndex:
    """Lookups over one cluster state; immutable once built."""

    def __init__(self, state: ClusterState, mesh: MeshConfig) -> None:
        self.revision = state.revision
        self._by_ip: dict[str, Workload] = {}
        self._by_pod: dict[tuple[str, str], Workload] = {}
        for pod in state.list(PODS):
            workload = pod_workload(pod, mesh.trust_domain)
            meta = pod["metadata"]
            self._by_pod[(workload.namespace, meta["name"])] = workload
            ip = model.pod_ip(pod)
            # a finished pod's IP may already belong to a new pod: running pods win
            if ip and (ip not in self._by_ip or (pod.get("status") or {}).get("phase") == "Running"):
                self._by_ip[ip] = workload
        self._services: dict[str, Service] = {}
        self._targets: dict[tuple[str, int], list[Service]] = {}
        for svc in model.mesh_services(state, mesh):
            service = Service(svc.fqdn, svc.name, svc.namespace)
            self._services[svc.fqdn] = service
            for endpoints in svc.endpoints.values():
                for endpoint in endpoints:
                    targets = self._targets.setdefault((endpoint.ip, endpoint.port), [])
                    if service not in targets:
                        targets.append(service)

    def at_ip(self, ip: str) -> Workload:
        return self._by_ip.get(ip, UNKNOWN_WORKLOAD)

    def pod(self, namespace: str, name: str) -> Workload | None:
        return self._by_pod.get((namespace, name))

    def service(self, fqdn: str) -> Service:
        return self._services.get(fqdn, UNKNOWN_SERVICE)

    def service_targeting(self, ip: str, port: int, authority: str = "") -> Service:
        """The service whose endpoints include ip:port; with several, the one the
        request's authority names (name, name.ns, FQDN, with or without port), else
        the first by FQDN."""
        services = self._targets.get((ip, port), [])
        if not services:
            return UNKNOWN_SERVICE
        host = authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority
        for service in services:
            if host in (service.name, f"{service.name}.{service.namespace}", service.fqdn,
                        f"{service.name}.{service.namespace}.svc"):
                return service
        return min(services, key=lambda s: s.fqdn)
