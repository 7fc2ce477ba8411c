"""shoal.network: pod sandboxes, the host bridge, service VIPs (kube-proxy role), cluster DNS.

Public API (everything else is private to the package):

    from shoal.network import (PodNetwork, Sandbox, PortMapping, ServiceProxy, ServiceView,
                               ServicePort, EndpointView, ServiceDirectory, ServiceLookup,
                               ClusterDNS, NetworkError)

    net = PodNetwork(settings, Allocations(settings.store_path))
    await net.setup_host()                         # bridge, gateway, sysctls, routes, base chains
    sb = await net.create_sandbox("ns/pod", hostname="pod", port_mappings=[PortMapping(8080, 80)],
                                  netns_iptables="")   # optional rules inside the pod netns
    await net.delete_sandbox("ns/pod"); await net.list_sandboxes(); await net.teardown()
    net.resolv_conf("ns"); net.hosts_file("pod", sb.ip)
    net.allocate_cluster_ip("ns/svc", requested=None); net.release_cluster_ip("ns/svc")
    net.allocate_node_port("ns/svc", requested=None); net.release_node_port("ns/svc", port=None)

    policies = NetworkPolicyRules(settings)        # NetworkPolicy enforcement (filter table)
    await policies.sync([PodPolicy("ns/pod", "10.42.0.5", ingress=(Allow(...),), egress=None)])

    proxy = ServiceProxy(settings)
    proxy.render(views) -> str                     # pure iptables-restore input
    await proxy.sync(views)                        # atomic apply

    views = [service_view(svc_dict, endpoints_dict_or_None), ...]   # Kubernetes-shaped dicts in
    directory = ServiceDirectory(); directory.replace_all(views)
    dns = ClusterDNS(settings, directory, host=net.gateway, port=settings.dns_port)
    await dns.start(); await dns.stop()

How the pieces fit, and why, is written at the top of each module:

- pod_network.py  the facade: sandboxes, locks, re-adoption after restart
- sandboxes.py    netns + veth + ipc/uts namespaces of one pod, and their records
- host.py         bridge, routes (blackholes), sysctls, base iptables chains
- ipam.py         pod IPs, ClusterIPs, NodePorts, hostPorts in the store
- proxy.py        Services -> iptables DNAT (render pure, sync atomic)
- hostports.py    hostPort DNAT (pure)
- policy.py       resolved NetworkPolicies -> iptables filter rules (render pure, sync atomic)
- rules.py        iptables-restore input and the chains we own
- views.py        core/v1 Service + Endpoints dicts -> ServiceView (pure)
- dns_answers.py  cluster DNS records (pure); dns_server.py the UDP/TCP server
- directory.py    ServiceLookup protocol + in-memory ServiceDirectory
- names.py        every kernel object name; commands.py every command we run

Errors: `NetworkError` and its families in errors.py.
State on disk: `<state>/network/` (sandbox records, ipc/uts namespace files); addresses
and ports in the store's allocations table.
Host requirements: root, iproute2, iptables (nft or legacy), util-linux (unshare, umount).
"""

from shoal.network.directory import ServiceDirectory, ServiceLookup
from shoal.network.dns_server import ClusterDNS
from shoal.network.errors import (
    AllocationConflictError,
    AllocationError,
    CommandError,
    NetworkError,
    OutOfRangeError,
    RangeExhaustedError,
    SandboxError,
)
from shoal.network.model import EndpointView, PortMapping, Sandbox, ServicePort, ServiceView
from shoal.network.pod_network import PodNetwork
from shoal.network.policy import Allow, NetworkPolicyRules, Peer, PodPolicy, PortMatch
from shoal.network.proxy import ServiceProxy
from shoal.network.views import service_view

__all__ = [
    "Allow",
    "NetworkPolicyRules",
    "Peer",
    "PodPolicy",
    "PortMatch",
    "AllocationConflictError",
    "AllocationError",
    "ClusterDNS",
    "CommandError",
    "EndpointView",
    "NetworkError",
    "OutOfRangeError",
    "PodNetwork",
    "PortMapping",
    "RangeExhaustedError",
    "Sandbox",
    "SandboxError",
    "ServiceDirectory",
    "ServiceLookup",
    "ServicePort",
    "ServiceProxy",
    "ServiceView",
    "service_view",
]
