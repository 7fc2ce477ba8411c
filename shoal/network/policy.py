"""NetworkPolicy enforcement on the host: resolved per-pod allow lists -> iptables filter
rules (render is pure, sync applies them in one `iptables-restore --noflush`).

The input is already resolved (`shoal.kubeproxy.policyplan` matches selectors, named
ports and namespaces): one `PodPolicy` per pod that some policy isolates, holding the
pod's IP and, per direction, `None` (not isolated: everything passes) or the tuple of
`Allow`s the policies of that direction add up to (policies are additive; an empty tuple
is default deny).

Where packets are judged (filter table, P = chain_prefix):

    FORWARD -> P-FORWARD -> P-POLICY      every routed or bridged packet (br_netfilter:
                                          pod -> pod on the bridge, pod -> ClusterIP after
                                          DNAT, so policies see the endpoint's address and
                                          port, as in Kubernetes)
    INPUT   -> P-INPUT   -> P-POLICY      only pod -> cluster DNS (gateway:dns_port): the
                                          DNS runs on the node, but Kubernetes' DNS is a pod,
                                          so egress policies govern it (no implicit allow)
    P-POLICY      conntrack ESTABLISHED in the reply direction RETURN (replies of allowed
                  connections) and RELATED (their ICMP errors); packets in the original
                  direction are judged every time, so a policy change applies to open
                  connections at their next packet, not only to new ones;
                  -s POD -j P-NPE-<h> for each pod isolated for egress;
                  -d POD -j P-NPI-<h> for each pod isolated for ingress
    P-NPE-<h>     the pod's egress allows, each `-d PEER [-p proto --dport N[:M]] -j RETURN`;
    P-NPI-<h>     its ingress allows with `-s PEER`; both end in REJECT (tcp-reset for TCP,
                  icmp-port-unreachable else), so a denied client fails at once
    P-NPB-<h>     an ipBlock with `except`: excepted ranges RETURN, the block sets
                  POLICY_MARK; the caller RETURNs on the mark (cleared on entry to each
                  per-pod chain, so an egress verdict never leaks into the ingress one)

A packet passes P-POLICY when it RETURNs from it: first the source pod's egress chain,
then the destination pod's ingress chain, so pod -> pod needs both sides to allow it.
A pod always reaches itself (hairpin through its own Service): `-d SELF`/`-s SELF` RETURN
first in its chains, as Kubernetes says a pod cannot block access to itself.

Never judged, as Kubernetes says traffic to and from the node is always allowed: what
the host sends to pods (OUTPUT: probes of unmeshed pods, `kubectl exec`'s port-forward
dials), and pods' traffic to node addresses other than the DNS port. Sidecars reach the
control plane over Unix sockets (xDS, SDS, access logs), which no policy can touch.

`sync(pods)` rewrites P-POLICY and every per-pod/block chain in one transaction and
deletes the chains of pods no longer isolated. P-POLICY itself and the jumps into it are
made by `shoal.network.host` (setup), removed at teardown with every chain of the prefix.

Concurrency: `sync` calls are serialized by a lock; `render` is pure.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterable, Sequence

from shoal.config import Settings
from shoal.network import names, rules
from shoal.network.model import PROTOCOLS

POLICY_MARK = 0x20000
"""Packet mark bit: "an ipBlock with except matched" (apart from MASQUERADE_MARK)."""

INGRESS, EGRESS = "ingress", "egress"


@dataclasses.dataclass(frozen=True)
class PortMatch:
    """A protocol and optionally a port or an inclusive range (`end_port`)."""

    protocol: str = "TCP"
    port: int | None = None
    end_port: int | None = None

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol: expected one of {', '.join(PROTOCOLS)}, got {self.protocol!r}")
        if self.end_port is not None and (self.port is None or self.end_port < self.port):
            raise ValueError(f"end_port {self.end_port} needs a port <= it, got {self.port!r}")

    def spec(self) -> tuple[str, ...]:
        proto = self.protocol.lower()
        if self.port is None:
            return ("-p", proto)
        ports = str(self.port) if self.end_port in (None, self.port) else f"{self.port}:{self.end_port}"
        return ("-p", proto, "-m", proto, "--dport", ports)


@dataclasses.dataclass(frozen=True)
class Peer:
    """An address range (a pod is its /32) less the `excepts` inside it."""

    cidr: str
    excepts: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Allow:
    """Traffic to/from any of `peers` (None: any address) on any of `ports` (None: every
    port and protocol) passes. `origin` names the policy rule, for the rule comments."""

    peers: tuple[Peer, ...] | None = None
    ports: tuple[PortMatch, ...] | None = None
    origin: str = ""


@dataclasses.dataclass(frozen=True)
class PodPolicy:
    """What the policies selecting one pod allow; None for a direction not isolated."""

    pod_key: str
    ip: str
    ingress: tuple[Allow, ...] | None = None
    egress: tuple[Allow, ...] | None = None


def policy_chain(prefix: str) -> str:
    return names.chain(prefix, "POLICY")


class NetworkPolicyRules:
    """Programs the filter rules that enforce the given pods' policies."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = asyncio.Lock()

    def render(self, pods: Sequence[PodPolicy], *, existing_chains: Iterable[str] = ()) -> str:
        """iptables-restore input (for --noflush) enforcing exactly `pods`; chains in
        `existing_chains` that are no longer needed are deleted."""
        return rules.render(self._tables(pods, existing_chains))

    def _tables(self, pods: Sequence[PodPolicy], existing_chains: Iterable[str]) -> list[rules.TableRules]:
        p = self._settings.chain_prefix
        filt = rules.TableRules("filter")
        entry = filt.declare(policy_chain(p))
        filt.append(entry, "-m", "conntrack", "--ctstate", "ESTABLISHED", "--ctdir", "REPLY",
                    *rules.comment("replies of allowed connections"), "-j", "RETURN")
        filt.append(entry, "-m", "conntrack", "--ctstate", "RELATED",
                    *rules.comment("errors about allowed connections"), "-j", "RETURN")
        ordered = sorted(pods, key=lambda pp: pp.pod_key)
        blocks: set[str] = set()
        for direction, match in ((EGRESS, "-s"), (INGRESS, "-d")):
            for pp in ordered:
                allows = getattr(pp, direction)
                if allows is None:
                    continue
                role = "NPE" if direction == EGRESS else "NPI"
                chain = filt.declare(names.hashed_chain(p, role, pp.pod_key))
                filt.append(entry, match, f"{pp.ip}/32", *rules.comment(f"{pp.pod_key} {direction}"),
                            "-j", chain)
                self._pod_chain(filt, chain, pp, direction, allows, blocks)
        dynamic = tuple(f"{p}-{role}-" for role in ("NPE", "NPI", "NPB"))
        filt.delete = sorted(c for c in set(existing_chains) if c.startswith(dynamic) and c not in filt.chains)
        return [filt]

    def _pod_chain(self, filt: rules.TableRules, chain: str, pp: PodPolicy, direction: str,
                   allows: tuple[Allow, ...], blocks: set[str]) -> None:
        p = self._settings.chain_prefix
        mark = f"{POLICY_MARK:#x}"
        peer_flag = "-d" if direction == EGRESS else "-s"
        filt.append(chain, "-j", "MARK", "--set-xmark", f"0x0/{mark}")
        filt.append(chain, peer_flag, f"{pp.ip}/32", *rules.comment("a pod reaches itself"), "-j", "RETURN")
        for allow in allows:
            note = rules.comment(allow.origin or f"{pp.pod_key} {direction}")
            peers: tuple[Peer | None, ...] = allow.peers if allow.peers is not None else (None,)
            ports: tuple[PortMatch | None, ...] = allow.ports if allow.ports is not None else (None,)
            for peer in peers:
                for port in ports:
                    port_spec = port.spec() if port is not None else ()
                    if peer is None:
                        filt.append(chain, *port_spec, *note, "-j", "RETURN")
                    elif not peer.excepts:
                        filt.append(chain, peer_flag, peer.cidr, *port_spec, *note, "-j", "RETURN")
                    else:
                        block = filt.declare(names.hashed_chain(p, "NPB", direction, peer.cidr, *peer.excepts))
                        if block not in blocks:
                            blocks.add(block)
                            for excluded in peer.excepts:
                                filt.append(block, peer_flag, excluded, "-j", "RETURN")
                            filt.append(block, peer_flag, peer.cidr, "-j", "MARK", "--set-xmark", f"{mark}/{mark}")
                        filt.append(chain, *port_spec, *note, "-j", block)
                        filt.append(chain, "-m", "mark", "--mark", f"{mark}/{mark}", "-j", "RETURN")
        deny = rules.comment(f"{pp.pod_key} {direction} not allowed by any policy")
        filt.append(chain, "-p", "tcp", *deny, "-j", "REJECT", "--reject-with", "tcp-reset")
        filt.append(chain, *deny, "-j", "REJECT", "--reject-with", "icmp-port-unreachable")

    async def sync(self, pods: Sequence[PodPolicy]) -> None:
        """Make the kernel's policy rules match `pods`, atomically."""
        async with self._lock:
            existing = await rules.owned_chains(self._settings.chain_prefix, "filter")
            await rules.apply(self._tables(pods, existing))
