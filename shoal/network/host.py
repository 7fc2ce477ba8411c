"""The host side of pod networking: bridge, gateway address, routes, sysctls, base chains.

Layout on the host (defaults; every value comes from `Settings`):

    shoal0               Linux bridge, address 10.42.0.1/16 (first IP of pod_cidr), a fixed
                         MAC (a bridge otherwise takes the lowest port MAC, which changes
                         as pods come and go and leaves stale ARP entries in every pod)
    10.42.0.0/16         dev shoal0 (the connected route)
    blackhole 10.42.0.0/16 metric 4242
    10.43.0.0/16         dev shoal0 src 10.42.0.1
    blackhole 10.43.0.0/16 metric 4242

Why the service range is routed to the bridge and not only blackholed: a host process
(the daemon, `curl` on the host) resolves its route at connect() time, before the nat
OUTPUT hook can DNAT a ClusterIP; with only a blackhole route that connect fails. Routed
to the bridge, the host reaches ClusterIPs like any pod. Whatever is not DNATed to an
endpoint - a ClusterIP with no ready endpoint, an address no Service holds - is
REJECTed in our filter FORWARD/OUTPUT chains, so a client gets "connection refused" at
once, as with kube-proxy, instead of a hang. TCP is rejected with a TCP reset, other
protocols with icmp-port-unreachable: ICMP errors to a pod are rate-limited per
destination, and the ICMP redirect the host sends when a packet leaves by the interface
it came in on (pod -> bridge -> bridge) spends that budget first, so an ICMP-only
REJECT is silently swallowed for TCP and the client would hang in SYN retries.

Why no packet for either range can leave by the default route: both ranges have a route
that is more specific than the default route, so the default route never applies to
them. The connected/bridge routes vanish when the bridge goes down or is deleted; the
`blackhole ... metric 4242` routes under them stay, so even then packets are dropped here.
(A blackhole with a *higher* metric loses to the live bridge route of the same prefix,
which is why both can coexist.)

Sysctls set (and left set on teardown, since other software may rely on them too):

- `net.ipv4.ip_forward=1`: pods' traffic is routed through the host.
- `net.ipv4.conf.<bridge>.route_localnet=1`: a NodePort/hostPort reached on 127.0.0.1 is
  DNATed to a pod; the kernel would drop a 127.0.0.1-sourced packet leaving a real
  interface (a "martian") without it. We masquerade those packets, so the pod sees the
  gateway address as the source.
- `net.bridge.bridge-nf-call-iptables=1` when the kernel has br_netfilter (built in
  here; `modprobe` is absent): bridged pod-to-pod frames then pass conntrack, which is
  what un-NATs the reply of pod A -> ClusterIP -> pod B on the same bridge. Without
  br_netfilter, `ServiceProxy` masquerades every pod-sourced service connection instead
  (the reply then comes back through the host), trading away the client source IP.

Base chains (P = chain_prefix), written here; the proxy and hostports own the rest:

    nat    PREROUTING  -> P-PREROUTING:  -j P-SERVICES; dst-type LOCAL -j P-HOSTPORTS
    nat    OUTPUT      -> P-OUTPUT:      the same, for host-originated traffic
    nat    POSTROUTING -> P-POSTROUTING: masquerade pod egress (-s pod_cidr ! -o bridge),
                                         masquerade packets carrying MASQUERADE_MARK
    nat    P-MARK-MASQ: set MASQUERADE_MARK
    filter FORWARD     -> P-FORWARD:     reject the service range (tcp-reset/icmp); network
                                         policies (-j P-POLICY, see policy.py); accept from the
                                         bridge, and to it when established or DNATed
    filter OUTPUT      -> P-OUTPUT:      reject the service range
    filter INPUT       -> P-INPUT:       pods' packets to the cluster DNS -j P-POLICY

Concurrency: `setup` and `teardown` are idempotent and may be re-run; callers serialize
them (PodNetwork holds a lock).
"""

from __future__ import annotations

import hashlib
import ipaddress
from pathlib import Path

from shoal.config import Settings
from shoal.network import commands, names, rules

BLACKHOLE_METRIC = 4242

JUMPS = (
    ("nat", "PREROUTING", "PREROUTING"),
    ("nat", "OUTPUT", "OUTPUT"),
    ("nat", "POSTROUTING", "POSTROUTING"),
    ("filter", "FORWARD", "FORWARD"),
    ("filter", "OUTPUT", "OUTPUT"),
    ("filter", "INPUT", "INPUT"),
)


def gateway(settings: Settings) -> str:
    return str(ipaddress.IPv4Network(settings.pod_cidr).network_address + 1)


def bridge_mac(bridge: str) -> str:
    raw = bytearray(hashlib.sha256(f"shoal-bridge/{bridge}".encode()).digest()[:6])
    raw[0] = (raw[0] & 0xFC) | 0x02  # locally administered, unicast
    return ":".join(f"{b:02x}" for b in raw)


def render_base_rules(settings: Settings, *, existing_nat: set[str],
                      existing_filter: frozenset[str] | set[str] = frozenset()) -> list[rules.TableRules]:
    """Base chains; the proxy's, hostports' and policies' entry chains are created only
    if missing, so re-running setup never empties them."""
    p = settings.chain_prefix
    ch = lambda role: names.chain(p, role)  # noqa: E731
    mark = f"{names.MASQUERADE_MARK:#x}"
    nat = rules.TableRules("nat")
    for role in ("PREROUTING", "OUTPUT", "POSTROUTING", "MARK-MASQ"):
        nat.declare(ch(role))
    for role in ("SERVICES", "HOSTPORTS"):
        if ch(role) not in existing_nat:
            nat.declare(ch(role))
    for entry in ("PREROUTING", "OUTPUT"):
        nat.append(ch(entry), *rules.comment("services"), "-j", ch("SERVICES"))
        nat.append(ch(entry), "-m", "addrtype", "--dst-type", "LOCAL", *rules.comment("hostports"),
                   "-j", ch("HOSTPORTS"))
    nat.append(ch("MARK-MASQ"), "-j", "MARK", "--or-mark", mark)
    nat.append(ch("POSTROUTING"), "-s", settings.pod_cidr, "!", "-o", settings.bridge,
               *rules.comment("pod egress"), "-j", "MASQUERADE")
    nat.append(ch("POSTROUTING"), "-m", "mark", "!", "--mark", f"{mark}/{mark}", "-j", "RETURN")
    nat.append(ch("POSTROUTING"), "-j", "MARK", "--xor-mark", mark)
    nat.append(ch("POSTROUTING"), *rules.comment("service and hostport masquerade"), "-j", "MASQUERADE")

    filt = rules.TableRules("filter")
    filt.declare(ch("FORWARD"))
    filt.declare(ch("OUTPUT"))
    filt.declare(ch("INPUT"))
    if ch("POLICY") not in existing_filter:
        filt.declare(ch("POLICY"))
    note = rules.comment("no endpoint for this service address")
    rejects = (
        ("-p", "tcp", "-d", settings.service_cidr, *note, "-j", "REJECT", "--reject-with", "tcp-reset"),
        ("-d", settings.service_cidr, *note, "-j", "REJECT", "--reject-with", "icmp-port-unreachable"),
    )
    for reject in rejects:
        filt.append(ch("FORWARD"), *reject)
    filt.append(ch("FORWARD"), *rules.comment("network policies"), "-j", ch("POLICY"))
    filt.append(ch("FORWARD"), "-i", settings.bridge, "-j", "ACCEPT")
    filt.append(ch("FORWARD"), "-o", settings.bridge, "-m", "conntrack", "--ctstate",
                "RELATED,ESTABLISHED,DNAT", "-j", "ACCEPT")
    for reject in rejects:
        filt.append(ch("OUTPUT"), *reject)
    if settings.dns_port:
        for proto in ("udp", "tcp"):
            filt.append(ch("INPUT"), "-i", settings.bridge, "-d", f"{gateway(settings)}/32", "-p", proto,
                        "-m", proto, "--dport", str(settings.dns_port),
                        *rules.comment("network policies: egress to the cluster DNS"), "-j", ch("POLICY"))
    return [nat, filt]


def _route_lines(settings: Settings, verb: str) -> list[str]:
    gw = gateway(settings)
    return [
        f"route {verb} blackhole {settings.pod_cidr} metric {BLACKHOLE_METRIC}",
        f"route {verb} {settings.service_cidr} dev {settings.bridge} src {gw}",
        f"route {verb} blackhole {settings.service_cidr} metric {BLACKHOLE_METRIC}",
    ]


async def setup(settings: Settings) -> None:
    """Bridge, gateway address, routes, sysctls, base chains and jumps. Idempotent."""
    br = settings.bridge
    prefix_len = ipaddress.IPv4Network(settings.pod_cidr).prefixlen
    if not Path(f"/sys/class/net/{br}").exists():
        await commands.run(["ip", "link", "add", br, "address", bridge_mac(br), "type", "bridge"])
    await commands.ip_batch([
        f"addr replace {gateway(settings)}/{prefix_len} dev {br}",
        f"link set {br} up",
        *_route_lines(settings, "replace"),
    ])
    await commands.write_sysctl("net.ipv4.ip_forward", "1")
    await commands.write_sysctl(f"net.ipv4.conf.{br}.route_localnet", "1")
    if await commands.read_sysctl("net.bridge.bridge-nf-call-iptables") is not None:
        await commands.write_sysctl("net.bridge.bridge-nf-call-iptables", "1")
    existing = await rules.owned_chains(settings.chain_prefix, "nat")
    existing_filter = await rules.owned_chains(settings.chain_prefix, "filter")
    await rules.apply(render_base_rules(settings, existing_nat=existing, existing_filter=existing_filter))
    for table, builtin, role in JUMPS:
        await rules.install_jump(table, builtin, names.chain(settings.chain_prefix, role), settings.chain_prefix)


async def bridge_netfilter_enabled() -> bool:
    return await commands.read_sysctl("net.bridge.bridge-nf-call-iptables") == "1"


async def teardown(settings: Settings) -> None:
    """Remove jumps, every chain named `<chain_prefix>-*`, our routes and the bridge."""
    p = settings.chain_prefix
    for table, builtin, role in JUMPS:
        await rules.remove_jump(table, builtin, names.chain(p, role), p)
    for table in ("nat", "filter"):
        await rules.remove_owned(p, table)
    for line in _route_lines(settings, "del"):
        await commands.run(["ip", *line.split()], check=False)
    if Path(f"/sys/class/net/{settings.bridge}").exists():
        await commands.run(["ip", "link", "del", settings.bridge], check=False)
