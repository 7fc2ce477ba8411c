"""Capabilities, no_new_privileges, masked and read-only paths.

Defaults are Docker's: its 14 default capabilities, no_new_privileges on (shoal's safer
default), runc's masked and read-only /proc and /sys paths. `privileged` gives every
capability and drops the masks (seccomp is dropped in `oci_spec`).
"""

from __future__ import annotations

from typing import Any, Iterable

from shoal.runtime.errors import SpecError
from shoal.runtime.intent import ContainerIntent, Security

# moby oci/caps/defaults.go
DEFAULT_CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)

ALL_CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
    "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)

# runc's defaults (`runc spec`), which containerd and CRI-O use too.
DEFAULT_MASKED_PATHS = (
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi",
)
DEFAULT_READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")


def normalize_capability(name: str, field: str) -> str:
    """Kubernetes writes NET_ADMIN, Docker CAP_NET_ADMIN; both are accepted; ALL is kept."""
    upper = name.strip().upper()
    if upper == "ALL":
        return upper
    cap = upper if upper.startswith("CAP_") else f"CAP_{upper}"
    if cap not in ALL_CAPABILITIES:
        raise SpecError(field, f"unknown capability {name!r}")
    return cap


def effective_capabilities(security: Security) -> tuple[str, ...]:
    """Docker's order of operations: start from defaults, drop, then add; ALL in either."""
    if security.privileged:
        return ALL_CAPABILITIES
    add = [normalize_capability(c, f"securityContext.capabilities.add[{i}]") for i, c in enumerate(security.cap_add)]
    drop = [normalize_capability(c, f"securityContext.capabilities.drop[{i}]") for i, c in enumerate(security.cap_drop)]
    caps: list[str] = [] if "ALL" in drop else [c for c in DEFAULT_CAPABILITIES if c not in drop]
    for cap in ALL_CAPABILITIES if "ALL" in add else add:
        if cap not in caps:
            caps.append(cap)
    return tuple(caps)


def capability_sets(caps: Iterable[str]) -> dict[str, Any]:
    """Bounding, effective and permitted; no ambient or inheritable (as Docker/containerd)."""
    caps = list(caps)
    return {"bounding": caps, "effective": list(caps), "permitted": list(caps)}


def no_new_privileges(security: Security) -> bool:
    return bool(security.no_new_privileges) and not security.privileged


def masked_paths(intent: ContainerIntent) -> list[str]:
    if intent.security.privileged:
        return []
    return list(DEFAULT_MASKED_PATHS if intent.masked_paths is None else intent.masked_paths)


def readonly_paths(intent: ContainerIntent) -> list[str]:
    if intent.security.privileged:
        return []
    return list(DEFAULT_READONLY_PATHS if intent.readonly_paths is None else intent.readonly_paths)
