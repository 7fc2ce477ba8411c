"""Values exchanged with shoal.network: sandboxes, port mappings, and the service views
the daemon feeds to the proxy and the DNS server.

Everything here is a frozen dataclass: plain data, no I/O, safe to share between tasks.

The service views carry *resolved* numbers. `targetPort` by name is resolved by the caller
(the daemon, from each pod's container ports) into `EndpointView.target_ports`, keyed by
the service port's name, so two pods may serve one named port on different numbers, as
in Kubernetes. Only ready endpoints should be given a role in the data plane; a view may
carry unready ones (`ready=False`), which the proxy and DNS ignore.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

PROTOCOLS = ("TCP", "UDP", "SCTP")


@dataclasses.dataclass(frozen=True)
class PortMapping:
    """A hostPort: traffic to `host_port` on the host reaches `container_port` in the pod.

    `host_ip` empty means every local address (127.0.0.1 included), as Kubernetes does.
    """

    host_port: int
    container_port: int
    protocol: str = "TCP"
    host_ip: str = ""

    def __post_init__(self) -> None:
        for field in ("host_port", "container_port"):
            value = getattr(self, field)
            if not isinstance(value, int) or not 0 < value < 65536:
                raise ValueError(f"{field}: expected a port 1-65535, got {value!r}")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol: expected one of {', '.join(PROTOCOLS)}, got {self.protocol!r}")


@dataclasses.dataclass(frozen=True)
class Sandbox:
    """A pod's network, IPC and UTS namespaces, ready for containers to join by path.

    Containers join with OCI `linux.namespaces`: `{"type": "network", "path": netns_path}`,
    `{"type": "ipc", "path": ipc_ns_path}`, `{"type": "uts", "path": uts_ns_path}`.
    The UTS namespace already carries the pod's hostname.
    """

    pod_key: str
    netns_name: str
    netns_path: str
    ip: str
    gateway: str
    prefix_len: int
    ipc_ns_path: str
    uts_ns_path: str
    veth_host: str
    hostname: str = ""
    port_mappings: tuple[PortMapping, ...] = ()
    netns_iptables: str = ""
    """iptables-restore input applied inside the netns when it is made (e.g. mesh capture)."""

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        data["port_mappings"] = [dataclasses.asdict(m) for m in self.port_mappings]
        return data

    @classmethod
    def from_json(cls, data: Mapping) -> "Sandbox":
        values = dict(data)
        values["port_mappings"] = tuple(PortMapping(**m) for m in values.get("port_mappings", ()))
        return cls(**values)


@dataclasses.dataclass(frozen=True)
class ServicePort:
    """One port of a Service. `name` may be empty only when the service has one port."""

    port: int
    protocol: str = "TCP"
    name: str = ""
    node_port: int | None = None

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol: expected one of {', '.join(PROTOCOLS)}, got {self.protocol!r}")


@dataclasses.dataclass(frozen=True)
class EndpointView:
    """One backend of a Service: a pod IP and, per service port name, the resolved port."""

    ip: str
    target_ports: Mapping[str, int]
    ready: bool = True
    hostname: str = ""
    """Pod's spec.hostname when set with a matching subdomain: gets `HOST.SVC.NS.svc` in DNS."""
    pod_name: str = ""


@dataclasses.dataclass(frozen=True)
class ServiceView:
    """What the data plane needs of one Service and its Endpoints.

    `cluster_ip` None means headless (`clusterIP: None`): no iptables rules, and DNS
    answers with the ready endpoints' IPs. `external_name` set means type ExternalName:
    no address, no rules; DNS answers the service name with a CNAME to it.
    """

    namespace: str
    name: str
    cluster_ip: str | None
    ports: tuple[ServicePort, ...] = ()
    endpoints: tuple[EndpointView, ...] = ()
    external_name: str | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def headless(self) -> bool:
        return self.cluster_ip is None

    def ready_endpoints(self) -> tuple[EndpointView, ...]:
        return tuple(e for e in self.endpoints if e.ready)
