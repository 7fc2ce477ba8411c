"""The kube-proxy role: Services to iptables DNAT rules (render is pure, sync applies).

Chains (nat table, P = chain_prefix), the same shape as kube-proxy's iptables mode:

    P-SERVICES   one rule per ClusterIP:port -> P-SVC-<h>; last rule: dst-type LOCAL -> P-NODEPORTS
    P-NODEPORTS  one pair per NodePort: -j P-MARK-MASQ, -j P-SVC-<h>
    P-SVC-<h>    per service port: one rule per ready endpoint, `-m statistic --mode
                 random --probability 1/(n-i)`, so each of n endpoints gets 1/n of the
                 new connections; the last rule is unconditional
    P-SEP-<h>    per endpoint: `-s <pod ip> -j P-MARK-MASQ` (hairpin: a pod reaching
                 itself through its Service must not see its own address as the source),
                 then DNAT to ip:targetPort

A ClusterIP with no ready endpoint gets no rule here; its packets keep the service
address and hit the REJECT of the whole service range in the filter chains made by
`shoal.network.host` (fast "connection refused", like kube-proxy's REJECT). Headless
services (cluster_ip None) get no rules at all. NodePort traffic is always masqueraded
(externalTrafficPolicy: Cluster); from 127.0.0.1 that is required (see host.py,
route_localnet). When the kernel has no br_netfilter, every connection from the pod range
is masqueraded too (`masquerade_pod_traffic`), so replies between pods on one bridge
come back through the host's conntrack.

`sync(services)` renders every service and applies it in one `iptables-restore
--noflush` transaction: P-SERVICES, P-NODEPORTS and every P-SVC/P-SEP chain are
flushed and refilled, chains of vanished services are deleted in the same transaction.
Only chains with our prefix are touched. The daemon calls `sync` with the full list
whenever Services or Endpoints change (level-based: the list is the desired state).

Known limit: conntrack entries of removed endpoints are not flushed, so an established
flow (or a UDP "flow") to a deleted pod lingers until it times out.

Concurrency: `sync` calls are serialized by a lock; `render` is pure and thread-safe.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence

from shoal.config import Settings
from shoal.network import host, names, rules
from shoal.network.model import ServiceView


class ServiceProxy:
    """Programs ClusterIP and NodePort DNAT rules for the services given to `sync`."""

    def __init__(self, settings: Settings, *, masquerade_pod_traffic: bool | None = None) -> None:
        """masquerade_pod_traffic None: decided at first sync (True iff br_netfilter is off)."""
        self._settings = settings
        self.masquerade_pod_traffic = masquerade_pod_traffic
        self._lock = asyncio.Lock()

    def render(self, services: Sequence[ServiceView], *, existing_chains: Iterable[str] = ()) -> str:
        """iptables-restore input (for --noflush) programming exactly `services`.

        `existing_chains`: our chains now in the kernel; those no longer needed are deleted.
        """
        return rules.render(self._tables(services, existing_chains))

    def _tables(self, services: Sequence[ServiceView], existing_chains: Iterable[str]) -> list[rules.TableRules]:
        p = self._settings.chain_prefix
        mark_masq = names.chain(p, "MARK-MASQ")
        nat = rules.TableRules("nat")
        services_chain = nat.declare(names.chain(p, "SERVICES"))
        nodeports_chain = nat.declare(names.chain(p, "NODEPORTS"))
        for svc in sorted(services, key=lambda s: s.key):
            if svc.headless or svc.external_name:
                continue
            ready = svc.ready_endpoints()
            for sp in svc.ports:
                backends = sorted({(e.ip, e.target_ports[sp.name]) for e in ready if sp.name in e.target_ports})
                if not backends:
                    continue
                proto = sp.protocol.lower()
                label = f"{svc.key}:{sp.name}" if sp.name else svc.key
                svc_chain = nat.declare(names.hashed_chain(p, "SVC", svc.key, sp.name, sp.protocol))
                nat.append(services_chain, "-d", f"{svc.cluster_ip}/32", "-p", proto, "-m", proto,
                           "--dport", str(sp.port), *rules.comment(f"{label} cluster IP"), "-j", svc_chain)
                if sp.node_port is not None:
                    match = ("-p", proto, "-m", proto, "--dport", str(sp.node_port), *rules.comment(f"{label} node port"))
                    nat.append(nodeports_chain, *match, "-j", mark_masq)
                    nat.append(nodeports_chain, *match, "-j", svc_chain)
                if self.masquerade_pod_traffic:
                    nat.append(svc_chain, "-s", self._settings.pod_cidr, "-j", mark_masq)
                n = len(backends)
                for i, (ip, port) in enumerate(backends):
                    sep = nat.declare(names.hashed_chain(p, "SEP", svc.key, sp.name, sp.protocol, ip, str(port)))
                    odds = () if i == n - 1 else ("-m", "statistic", "--mode", "random",
                                                  "--probability", f"{1.0 / (n - i):.10f}")
                    nat.append(svc_chain, *rules.comment(f"{label} -> {ip}:{port}"), *odds, "-j", sep)
                    nat.append(sep, "-s", f"{ip}/32", *rules.comment(label), "-j", mark_masq)
                    nat.append(sep, "-p", proto, "-m", proto, *rules.comment(label),
                               "-j", "DNAT", "--to-destination", f"{ip}:{port}")
        nat.append(services_chain, "-m", "addrtype", "--dst-type", "LOCAL",
                   *rules.comment("node ports"), "-j", nodeports_chain)
        dynamic = (f"{p}-SVC-", f"{p}-SEP-")
        nat.delete = sorted(c for c in set(existing_chains) if c.startswith(dynamic) and c not in nat.chains)
        return [nat]

    async def sync(self, services: Sequence[ServiceView]) -> None:
        """Make the kernel's rules match `services`, atomically."""
        async with self._lock:
            if self.masquerade_pod_traffic is None:
                self.masquerade_pod_traffic = not await host.bridge_netfilter_enabled()
            existing = await rules.owned_chains(self._settings.chain_prefix, "nat")
            await rules.apply(self._tables(services, existing))
