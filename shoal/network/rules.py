"""iptables-restore input as data, and the few operations on chains shoal owns.

A `TableRules` lists the chains a writer owns in one table: each declared chain is
flushed and refilled in one `iptables-restore --noflush` transaction (atomic per table:
packets see the old rules or the new ones, never a half-written chain), and stale chains
are flushed and deleted in the same transaction. Chains not declared are untouched, and
so is every chain whose name does not start with our `chain_prefix`.

`render` is pure; `apply`, `install_jump`, `remove_owned` are the thin I/O.

Who writes which chains (prefix P):

    nat    P-PREROUTING P-OUTPUT P-POSTROUTING P-MARK-MASQ     host.py (setup_host)
    nat    P-SERVICES P-NODEPORTS P-SVC-* P-SEP-*              proxy.py (ServiceProxy)
    nat    P-HOSTPORTS                                         hostports.py (PodNetwork)
    filter P-FORWARD P-OUTPUT P-INPUT                          host.py
    filter P-POLICY P-NPE-* P-NPI-* P-NPB-*                     policy.py (NetworkPolicyRules)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from shoal.network import commands, names


@dataclasses.dataclass
class TableRules:
    table: str
    chains: list[str] = dataclasses.field(default_factory=list)
    rules: list[str] = dataclasses.field(default_factory=list)
    delete: list[str] = dataclasses.field(default_factory=list)

    def declare(self, chain: str) -> str:
        if chain not in self.chains:
            self.chains.append(chain)
        return chain

    def append(self, chain: str, *spec: str) -> None:
        self.rules.append(" ".join(("-A", chain) + spec))


def render(tables: Iterable[TableRules]) -> str:
    """iptables-restore input for tables (for `--noflush`)."""
    out: list[str] = []
    for t in tables:
        if not (t.chains or t.rules or t.delete):
            continue
        out.append(f"*{t.table}")
        out += [f":{c} - [0:0]" for c in t.chains]
        out += [f":{c} - [0:0]" for c in t.delete if c not in t.chains]
        out += t.rules
        out += [f"-X {c}" for c in t.delete]
        out.append("COMMIT")
    return "\n".join(out) + "\n"


def comment(text: str) -> tuple[str, str, str]:
    safe = "".join(ch if ch.isalnum() or ch in "-_./: " else "_" for ch in text)[:200]
    return ("-m", "comment", f'--comment "{safe}"')


async def apply(tables: Sequence[TableRules]) -> None:
    text = render(tables)
    if text.strip():
        await commands.iptables_restore(text)


async def owned_chains(prefix: str, table: str) -> set[str]:
    return {c for c in await commands.chains(table) if names.owns_chain(prefix, c)}


def _jump_spec(builtin: str, target: str, prefix: str) -> list[str]:
    return [builtin, "-m", "comment", "--comment", f"shoal {prefix}", "-j", target]


async def install_jump(table: str, builtin: str, target: str, prefix: str) -> None:
    """Insert `-j target` at the top of a built-in chain unless it is there already."""
    spec = _jump_spec(builtin, target, prefix)
    if await commands.iptables("-t", table, "-C", *spec, check=False) != 0:
        await commands.iptables("-t", table, "-I", *spec[:1], "1", *spec[1:])


async def remove_jump(table: str, builtin: str, target: str, prefix: str) -> None:
    spec = _jump_spec(builtin, target, prefix)
    while await commands.iptables("-t", table, "-D", *spec, check=False) == 0:
        pass


async def remove_owned(prefix: str, table: str) -> None:
    """Flush and delete every chain of table named `<prefix>-...`, in one transaction."""
    owned = sorted(await owned_chains(prefix, table))
    if owned:
        await apply([TableRules(table, delete=owned)])
