"""hostPort rules (the CNI `portmap` role): pure rendering of the `<P>-HOSTPORTS` chain.

The chain is reached from nat PREROUTING and OUTPUT for packets to a local address
(`-m addrtype --dst-type LOCAL`), so a hostPort answers on every host address, 127.0.0.1
included, or on `host_ip` only when the mapping names one. Each mapping marks the packet
for masquerade (so replies come back through the host, and 127.0.0.1 sources become the
gateway address) and DNATs it to `pod_ip:container_port`.

The whole chain is re-rendered from every sandbox's mappings on each sandbox create or
delete and applied in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterable

from shoal.network import names, rules
from shoal.network.model import Sandbox


def render_hostports(chain_prefix: str, sandboxes: Iterable[Sandbox]) -> list[rules.TableRules]:
    nat = rules.TableRules("nat")
    chain = nat.declare(names.chain(chain_prefix, "HOSTPORTS"))
    mark_masq = names.chain(chain_prefix, "MARK-MASQ")
    for sb in sorted(sandboxes, key=lambda s: s.pod_key):
        for m in sb.port_mappings:
            proto = m.protocol.lower()
            match = ["-p", proto, "-m", proto, "--dport", str(m.host_port)]
            if m.host_ip:
                match = ["-d", f"{m.host_ip}/32", *match]
            note = rules.comment(f"{sb.pod_key} hostPort {m.host_port}/{m.protocol}")
            nat.append(chain, *match, *note, "-j", mark_masq)
            nat.append(chain, *match, *note, "-j", "DNAT", "--to-destination", f"{sb.ip}:{m.container_port}")
    return [nat]
