"""Reading and removing the container's cgroups (v1 hierarchies, and the v2 path if unified).

runc creates `/<parent>/<id>` in every hierarchy and removes it on delete; the parent
stays, so `remove_parent` clears it when the runtime is torn down. Reads are best
effort: a vanished cgroup reads as None.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (FileNotFoundError, ProcessLookupError, OSError):
        return None


def _is_unified() -> bool:
    return (CGROUP_ROOT / "cgroup.controllers").exists()


def stats(cgroup_path: str) -> dict[str, int | None]:
    """memory_bytes (working set, as kubelet: usage - inactive_file), cpu_usage_ns, pids."""
    rel = cgroup_path.strip("/")
    if _is_unified():
        base = CGROUP_ROOT / rel
        usage = _read(base / "memory.current")
        stat = _read(base / "memory.stat") or ""
        inactive = _stat_value(stat, "inactive_file")
        cpu = _stat_value(_read(base / "cpu.stat") or "", "usage_usec")
        pids = _read(base / "pids.current")
        return {
            "memory_bytes": None if usage is None else max(0, int(usage) - (inactive or 0)),
            "cpu_usage_ns": None if cpu is None else cpu * 1000,
            "pids": None if pids is None else int(pids),
        }
    usage = _read(CGROUP_ROOT / "memory" / rel / "memory.usage_in_bytes")
    inactive = _stat_value(_read(CGROUP_ROOT / "memory" / rel / "memory.stat") or "", "total_inactive_file")
    cpu = _read(CGROUP_ROOT / "cpuacct" / rel / "cpuacct.usage")
    pids = _read(CGROUP_ROOT / "pids" / rel / "pids.current")
    return {
        "memory_bytes": None if usage is None else max(0, int(usage) - (inactive or 0)),
        "cpu_usage_ns": None if cpu is None else int(cpu),
        "pids": None if pids is None else int(pids),
    }


def oom_kill_count(cgroup_path: str) -> int:
    """OOM kills recorded by the memory cgroup (while it still exists)."""
    rel = cgroup_path.strip("/")
    if not rel:
        return 0
    text = _read(CGROUP_ROOT / rel / "memory.events") if _is_unified() else _read(
        CGROUP_ROOT / "memory" / rel / "memory.oom_control")
    return _stat_value(text or "", "oom_kill") or 0


def _stat_value(text: str, key: str) -> int | None:
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == key and value.strip().lstrip("-").isdigit():
            return int(value)
    return None


def hierarchies() -> list[Path]:
    if _is_unified():
        return [CGROUP_ROOT]
    result = []
    for entry in sorted(CGROUP_ROOT.iterdir()):
        if entry.is_dir() and not entry.is_symlink() and (entry / "cgroup.procs").exists():
            result.append(entry)
    return result


def existing(cgroup_path: str) -> list[Path]:
    rel = cgroup_path.strip("/")
    return [h / rel for h in hierarchies() if (h / rel).is_dir()]


def remove(cgroup_path: str, *, attempts: int = 1, delay: float = 0.05) -> list[Path]:
    """rmdir the cgroup (and empty children) in every hierarchy; what is left (busy) after
    `attempts` tries: a cgroup whose last task is still exiting refuses rmdir briefly."""
    for attempt in range(attempts):
        for path in existing(cgroup_path):
            for dirpath, _, _ in sorted(os.walk(path, topdown=False), key=lambda t: -len(t[0])):
                try:
                    os.rmdir(dirpath)
                except OSError:
                    pass
        left = existing(cgroup_path)
        if not left:
            return []
        if attempt + 1 < attempts:
            time.sleep(delay)
    return left
