"""Istio's standard labels for one access-log record. Pure.

The proxy's own side comes from its pod (the node id names it); the peer from what
Envoy saw: on the inbound side (reporter=destination) the downstream address and its
client certificate, on the outbound side (reporter=source) the upstream host, its
server certificate and the cluster (`outbound|PORT|SUBSET|FQDN`, so VirtualService and
DestinationRule routing are followed to the service actually used). As in Istio:

- `connection_security_policy` is `mutual_tls` or `none` on the destination side (what
  the connection was), `unknown` on the source side;
- a principal is the peer certificate's SPIFFE URI, `unknown` without mTLS (and the
  proxy's own principal only when the connection used mTLS);
- a peer address no pod has, or a pod whose service account is not the certificate's,
  gives `unknown` workload, app and version (a certificate is never contradicted);
- `request_protocol` is `grpc` for `application/grpc*` content, else `http`; `tcp`
  for TCP metrics, which carry no response code or gRPC status;
- `response_flags` are Envoy's short flags (`UH`, `UF`, `URX`, ...), `-` for none.
"""

from __future__ import annotations

from shoal.mesh.telemetry.records import Record
from shoal.mesh.telemetry.workloads import (
    UNKNOWN, UNKNOWN_SERVICE, UNKNOWN_WORKLOAD, Service, Workload, WorkloadIndex,
)
from shoal.mesh.translate import names, telemetry

REQUEST_LABELS = (
    "reporter", "source_workload", "source_workload_namespace", "source_principal",
    "source_app", "source_version", "destination_workload", "destination_workload_namespace",
    "destination_principal", "destination_app", "destination_version", "destination_service",
    "destination_service_name", "destination_service_namespace", "request_protocol",
    "response_code", "grpc_response_status", "response_flags", "connection_security_policy",
)
"""Label names of the request metrics, in the order they are rendered."""
TCP_LABELS = tuple(n for n in REQUEST_LABELS if n not in ("response_code", "grpc_response_status"))

_SPECIAL_CLUSTERS = (names.PASSTHROUGH, names.BLACKHOLE, names.INBOUND_PASSTHROUGH)


def _host(address: str) -> tuple[str, int]:
    ip, _, port = address.rpartition(":")
    return (ip, int(port)) if port.isdigit() else (address, 0)


def _peer(index: WorkloadIndex, ip: str, principal: str) -> Workload:
    workload = index.at_ip(ip) if ip else UNKNOWN_WORKLOAD
    if principal and workload.principal != principal:
        return UNKNOWN_WORKLOAD
    return workload


def _destination_service(record: Record, index: WorkloadIndex) -> Service:
    cluster = record.upstream_cluster
    parts = cluster.split("|")
    if len(parts) == 4 and parts[0] == "outbound":
        found = index.service(parts[3])
        return found if found is not UNKNOWN_SERVICE else Service(parts[3], UNKNOWN, UNKNOWN)
    if cluster in _SPECIAL_CLUSTERS:
        host = record.authority or record.downstream_local or UNKNOWN
        return Service(host, cluster, UNKNOWN)
    return UNKNOWN_SERVICE


def record_labels(record: Record, own: Workload, index: WorkloadIndex) -> dict[str, str]:
    """Every label of REQUEST_LABELS for `record` of the proxy of workload `own`."""
    if record.side == telemetry.INBOUND:
        mtls = bool(record.downstream_peer)
        source = _peer(index, record.downstream_ip, record.downstream_peer)
        source_principal = record.downstream_peer or UNKNOWN
        destination, destination_principal = own, own.principal if mtls else UNKNOWN
        ip, port = _host(record.downstream_local)
        service = index.service_targeting(ip, port, record.authority)
        policy = "mutual_tls" if mtls else "none"
        reporter = "destination"
    else:
        mtls = bool(record.upstream_peer)
        source, source_principal = own, own.principal if mtls else UNKNOWN
        destination = _peer(index, _host(record.upstream_host)[0], record.upstream_peer)
        destination_principal = record.upstream_peer or UNKNOWN
        service = _destination_service(record, index)
        policy = UNKNOWN
        reporter = "source"
    grpc = record.content_type.startswith("application/grpc")
    protocol = "tcp" if record.tcp else "grpc" if grpc else "http"
    return {
        "reporter": reporter,
        "source_workload": source.name,
        "source_workload_namespace": source.namespace,
        "source_principal": source_principal,
        "source_app": source.app,
        "source_version": source.version,
        "destination_workload": destination.name,
        "destination_workload_namespace": destination.namespace,
        "destination_principal": destination_principal,
        "destination_app": destination.app,
        "destination_version": destination.version,
        "destination_service": service.fqdn,
        "destination_service_name": service.name,
        "destination_service_namespace": service.namespace,
        "request_protocol": protocol,
        "response_code": str(record.response_code),
        "grpc_response_status": record.grpc_status if grpc else "",
        "response_flags": record.response_flags or "-",
        "connection_security_policy": policy,
    }


def request_key(labels: dict[str, str]) -> tuple[str, ...]:
    return tuple(labels[name] for name in REQUEST_LABELS)


def tcp_key(labels: dict[str, str]) -> tuple[str, ...]:
    return tuple(labels[name] for name in TCP_LABELS)
