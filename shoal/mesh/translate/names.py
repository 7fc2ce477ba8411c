"""Names of Envoy resources, spelled as Istio spells them (config_dump stays familiar).

    outbound|80||web.default.svc.cluster.local   outbound cluster (EDS) per service port
    outbound|80|v2|web.default.svc.cluster.local outbound cluster of a DestinationRule subset
    inbound|8080||                                inbound cluster per pod port
    80                                            outbound route configuration per port
    virtualOutbound / virtualInbound              listeners on 15001 / 15006
"""

from __future__ import annotations

OUTBOUND_PORT = 15001
INBOUND_PORT = 15006
ADMIN_PORT = 15000
READINESS_PORT = 15021
PROMETHEUS_PORT = 15090

VIRTUAL_OUTBOUND = "virtualOutbound"
VIRTUAL_INBOUND = "virtualInbound"
READINESS_LISTENER = "readiness"
PROMETHEUS_LISTENER = "prometheus"
PASSTHROUGH = "PassthroughCluster"
BLACKHOLE = "BlackHoleCluster"
INBOUND_PASSTHROUGH = "InboundPassthroughClusterIpv4"
ADMIN_CLUSTER = "prometheus_stats"
"""Static cluster to the local admin port (Istio's name); serves /stats/prometheus."""
XDS_CLUSTER = "xds-grpc"

SECRET_DEFAULT = "default"
"""SDS name of the workload's own certificate and key (Istio's name)."""
SECRET_ROOTCA = "ROOTCA"
"""SDS name of the trust bundle used to validate peers (Istio's name)."""

INBOUND_BIND_ADDRESS = "127.0.0.6"
"""Source address of inbound passthrough connections; capture lets it through (Istio)."""

ISTIO_ALPNS = ("istio-peer-exchange", "istio")
"""ALPN a sidecar offers on mTLS; inbound PERMISSIVE tells mesh TLS from app TLS by it."""
INBOUND_MESH_ALPNS = ISTIO_ALPNS + ("istio-http/1.0", "istio-http/1.1", "istio-h2")


def fqdn(name: str, namespace: str, cluster_domain: str) -> str:
    return f"{name}.{namespace}.svc.{cluster_domain}"


def outbound_cluster(port: int, host: str, subset: str = "") -> str:
    """`outbound|PORT|SUBSET|FQDN` (Istio's subset key); SUBSET empty for the whole service."""
    return f"outbound|{port}|{subset}|{host}"


def inbound_cluster(port: int) -> str:
    return f"inbound|{port}||"


def outbound_route(port: int) -> str:
    return str(port)


def outbound_sni(port: int, host: str, subset: str = "") -> str:
    """Istio's SNI for mesh mTLS: outbound_.PORT_.SUBSET_.FQDN (SUBSET may be empty)."""
    return f"outbound_.{port}_.{subset}_.{host}"
