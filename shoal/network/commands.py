"""The one place shoal.network runs programs that change the kernel's network state.

We drive iproute2 (`ip`) and iptables (`iptables-restore --noflush`) as processes rather
than pyroute2: the commands are the ones an operator types to inspect the result, `ip
-batch` sends a whole sandbox's links/addresses/routes in one process, and iptables has
no stable library interface at all (the nft variant is what runs here). Every call is an
asyncio subprocess, so nothing blocks the event loop; small sysfs/procfs writes go
through `asyncio.to_thread`.

Failures become `CommandError(argv, returncode, stderr)` here and nowhere else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from shoal.network.errors import CommandError


async def run(argv: Sequence[str], *, stdin: str | None = None, check: bool = True) -> tuple[int, str, str]:
    """Run argv; return (returncode, stdout, stderr). Raise CommandError when check and rc != 0."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate(stdin.encode() if stdin is not None else None)
    rc = proc.returncode if proc.returncode is not None else -1
    if check and rc != 0:
        raise CommandError(argv, rc, err.decode(errors="replace"))
    return rc, out.decode(errors="replace"), err.decode(errors="replace")


async def ip_batch(lines: Sequence[str], *, netns: str | None = None) -> None:
    """Run several `ip` commands in one process (`ip [-n NETNS] -batch -`)."""
    argv = ["ip"] + (["-n", netns] if netns else []) + ["-batch", "-"]
    await run(argv, stdin="\n".join(lines) + "\n")


async def iptables_restore(rules: str, *, attempts: int = 3) -> None:
    """Apply rules with `iptables-restore --noflush`: one atomic transaction per table.

    Only the chains declared in `rules` are flushed and refilled; the rest of the host's
    ruleset is untouched. A concurrent writer (another program committing its own
    transaction) can make a commit fail transiently; we retry a few times.
    """
    for attempt in range(attempts):
        try:
            await run(["iptables-restore", "-w", "5", "--noflush"], stdin=rules)
            return
        except CommandError:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.05 * (attempt + 1))


async def iptables(*args: str, check: bool = True) -> int:
    """One `iptables -w` call (used only for the jump rules in built-in chains)."""
    rc, _, _ = await run(["iptables", "-w", "5", *args], check=check)
    return rc


async def chains(table: str) -> set[str]:
    """Names of every chain in table (built-in and user-defined)."""
    _, out, _ = await run(["iptables-save", "-t", table])
    return {line[1:].split()[0] for line in out.splitlines() if line.startswith(":")}


def _sysctl_path(name: str) -> Path:
    """`net.ipv4.conf.<dev>.x` -> /proc/sys/net/ipv4/conf/<dev>/x (a device name may hold dots)."""
    parts = name.split(".")
    if parts[:3] == ["net", "ipv4", "conf"] and len(parts) > 5:
        parts = parts[:3] + [".".join(parts[3:-1]), parts[-1]]
    return Path("/proc/sys", *parts)


async def write_sysctl(name: str, value: str) -> None:
    """Set a sysctl by dotted name, e.g. `net.ipv4.ip_forward`."""
    await asyncio.to_thread(_sysctl_path(name).write_text, value)


async def read_sysctl(name: str) -> str | None:
    """Read a sysctl by dotted name; None when it does not exist on this kernel."""
    path = _sysctl_path(name)
    try:
        return (await asyncio.to_thread(path.read_text)).strip()
    except FileNotFoundError:
        return None
