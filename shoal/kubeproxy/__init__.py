"""shoal.kubeproxy: the kube-proxy role (Services and Endpoints -> node rules and DNS).

Why a package of its own: kube-proxy reads the API through the controllers' shared
`Informer` (shoal.controllers.engine) and writes through `shoal.network` (ServiceProxy,
the DNS directory). The network layer sits below the API and the controllers, so the
role cannot live there without a protocol for informers; it is no part of the kubelet
either (shoal.node runs pods). It sits beside controllers/ and node/ in the layer order:
it imports network, api and controllers, and nothing above (mesh, cli) imports into it
except the daemon, which builds it.

    sync = ServiceSync(client, ServiceProxy(settings), directory, shared=manager.informer)
    await sync.start(); ...; await sync.stop()
    policies = PolicySync(client, NetworkPolicyRules(settings),
                          cluster_dns=ClusterDns(gateway, settings.dns_port), shared=manager.informer)

Modules: `servicesync` (Services/Endpoints -> proxy rules + DNS), `policysync` and the
pure `policyplan` (NetworkPolicies/Pods/Namespaces -> filter rules), `resync` (the
level-based loop both share).
"""

from shoal.kubeproxy.policyplan import ClusterDns
from shoal.kubeproxy.policysync import PolicySync
from shoal.kubeproxy.servicesync import ServiceSync

__all__ = ["ClusterDns", "PolicySync", "ServiceSync"]
