"""Every kernel object name shoal.network creates, derived from settings and pod keys.

Names are deterministic, so a restarted daemon finds what its predecessor created
without reading anything, and instance-scoped (the bridge name is mixed into every hash),
so two shoal instances on one machine - or a test and the daemon - never share a netns,
a veth or an iptables chain.

- netns:        `<netns_prefix><12 hex>`   e.g. `shoal-3f2a9c81d0e4`
- host veth:    `vsh<12 hex>`              (15 characters: the kernel's limit)
- chains:       `<chain_prefix>-<ROLE>` and `<chain_prefix>-SVC-<hash>` /
  `<chain_prefix>-SEP-<hash>`, at most 28 characters (iptables' limit)
"""

from __future__ import annotations

import base64
import hashlib

MAX_CHAIN_LEN = 28
MASQUERADE_MARK = 0x4000
"""Packet mark bit meaning "masquerade in POSTROUTING" (the bit kube-proxy uses)."""


def _digest(*parts: str) -> bytes:
    return hashlib.sha256("\x00".join(parts).encode()).digest()


def netns_name(prefix: str, bridge: str, pod_key: str) -> str:
    return prefix + _digest(bridge, pod_key).hex()[:12]


def veth_name(bridge: str, pod_key: str) -> str:
    return "vsh" + _digest(bridge, pod_key, "veth").hex()[:12]


def chain(prefix: str, role: str) -> str:
    name = f"{prefix}-{role}"
    if len(name) > MAX_CHAIN_LEN:
        raise ValueError(f"chain_prefix: {prefix!r} makes chain {name!r} longer than {MAX_CHAIN_LEN} characters")
    return name


def hashed_chain(prefix: str, kind: str, *parts: str) -> str:
    """`<prefix>-<kind>-<base32 hash>`, the hash as long as the 28-character limit allows."""
    head = f"{prefix}-{kind}-"
    room = min(16, MAX_CHAIN_LEN - len(head))
    if room < 6:
        raise ValueError(f"chain_prefix: {prefix!r} is too long to name per-service chains (max 14 characters)")
    return head + base64.b32encode(_digest(*parts)).decode()[:room]


def owns_chain(prefix: str, name: str) -> bool:
    return name.startswith(prefix + "-")
