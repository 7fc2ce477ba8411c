"""`mounts`: runc's default pseudo-filesystems, /etc/hosts, /etc/resolv.conf, the caller's."""

from __future__ import annotations

from typing import Any

from shoal.runtime.errors import SpecError
from shoal.runtime.intent import NETWORK_HOST, ContainerIntent, Mount


def default_mounts(*, privileged: bool, host_network: bool) -> list[dict[str, Any]]:
    sys_opts = ["nosuid", "noexec", "nodev", "rw" if privileged else "ro"]
    result: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
    ]
    if host_network:
        # A sysfs mount needs a network namespace of its own; bind the host's read-only.
        result.append({"destination": "/sys", "type": "bind", "source": "/sys", "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]})
    else:
        result.append({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": sys_opts})
        result.append({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                       "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]})
    return result


def user_mount(mount: Mount, index: int) -> dict[str, Any]:
    field = f"mounts[{index}]"
    if not mount.destination.startswith("/"):
        raise SpecError(f"{field}.destination", f"must be an absolute path, got {mount.destination!r}")
    options = list(mount.options)
    if mount.type == "bind":
        if not str(mount.source).startswith("/"):
            raise SpecError(f"{field}.source", f"a bind mount needs an absolute host path, got {mount.source!r}")
        if not any(o in ("bind", "rbind") for o in options):
            options.insert(0, "rbind")
        if not any(o in ("private", "rprivate", "shared", "rshared", "slave", "rslave") for o in options):
            options.append("rprivate")
    if mount.read_only and "ro" not in options:
        options.append("ro")
    return {"destination": mount.destination, "type": mount.type, "source": str(mount.source), "options": options}


def build_mounts(intent: ContainerIntent) -> list[dict[str, Any]]:
    result = default_mounts(privileged=intent.security.privileged, host_network=intent.network == NETWORK_HOST)
    user = [user_mount(m, i) for i, m in enumerate(intent.mounts)]
    taken = {m["destination"].rstrip("/") for m in user}
    for destination, source in (("/etc/hosts", intent.etc_hosts), ("/etc/resolv.conf", intent.resolv_conf)):
        if source is not None and destination not in taken:
            result.append({"destination": destination, "type": "bind", "source": str(source),
                           "options": ["rbind", "rprivate", "nosuid", "nodev", "noexec"]})
    # a caller's mount at a default destination (e.g. its own /dev/shm) replaces the default
    result = [m for m in result if m["destination"] not in taken]
    return result + user
