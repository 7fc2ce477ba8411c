"""PolicySync: keep the node's NetworkPolicy rules in step with the API's
NetworkPolicies, Pods and Namespaces.

Three informers hold the picture; on any change (a policy written, a pod getting its IP
or new labels, a namespace relabelled, a pod gone) the shared `Resync` loop plans every
isolated pod's allow lists (`policyplan.plan_policies`, pure) and applies them with one
`iptables-restore` (`NetworkPolicyRules.sync`), skipped when the plan equals the one
last applied (most pod changes are status updates that change no rule). Deleting the last policy leaves an empty
P-POLICY chain (everything passes); `shoal down` removes the chains with every other
chain of the instance.

The cluster DNS (on the bridge gateway) is a peer shaped like CoreDNS' pod
(`policyplan.ClusterDns`), so egress policies govern DNS as in Kubernetes.
"""

from __future__ import annotations

from typing import Any, Callable

from shoal.controllers.informer import Informer
from shoal.kubeproxy.policyplan import ClusterDns, plan_policies
from shoal.kubeproxy.resync import Resync
from shoal.network import NetworkPolicyRules

NETWORK_POLICIES = "networkpolicies.networking.k8s.io"


class PolicySync:
    def __init__(self, client: Any, rules: NetworkPolicyRules, *, cluster_dns: ClusterDns | None = None,
                 debounce_seconds: float = 0.05, retry_seconds: float = 2.0,
                 shared: Callable[[str], Informer] | None = None) -> None:
        """`shared`: informers somebody else runs (the daemon's controller manager)."""
        self._rules = rules
        self._cluster_dns = cluster_dns
        make = shared or (lambda resource: Informer(client, resource, retry_delay=retry_seconds))
        self._policies, self._pods, self._namespaces = make(NETWORK_POLICIES), make("pods"), make("namespaces")
        self._resync = Resync("netpol", [self._policies, self._pods, self._namespaces], self._apply,
                              run_informers=shared is None, debounce_seconds=debounce_seconds,
                              retry_seconds=retry_seconds)
        self._applied: list | None = None
        self.synced = self._resync.synced
        """Set after the first successful sync."""

    async def start(self) -> None:
        await self._resync.start()

    async def stop(self) -> None:
        await self._resync.stop()

    async def _apply(self) -> None:
        plan = plan_policies(self._policies.lister.list(), self._pods.lister.list(),
                             self._namespaces.lister.list(), cluster_dns=self._cluster_dns)
        if plan == self._applied:
            return  # most pod changes (status, probes) change no rule
        await self._rules.sync(plan)
        self._applied = plan
