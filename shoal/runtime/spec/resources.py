"""`linux.resources`: devices, memory, cpu quota/period/shares, pids — kubelet's arithmetic."""

from __future__ import annotations

from typing import Any

from shoal.runtime.errors import SpecError
from shoal.runtime.intent import Resources

CPU_PERIOD_US = 100_000
MIN_QUOTA_US = 1_000
MIN_SHARES = 2
MAX_SHARES = 262_144
SHARES_PER_CPU = 1024


def milli_cpu_to_shares(milli: int) -> int:
    """kubelet's MilliCPUToShares."""
    if milli <= 0:
        return MIN_SHARES
    return max(MIN_SHARES, min(MAX_SHARES, milli * SHARES_PER_CPU // 1000))


def milli_cpu_to_quota(milli: int, period: int = CPU_PERIOD_US) -> int:
    """kubelet's MilliCPUToQuota: quota over `period`, at least 1 ms."""
    return max(MIN_QUOTA_US, milli * period // 1000)


def build_resources(res: Resources, *, privileged: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "devices": [{"allow": True, "access": "rwm"}] if privileged else [{"allow": False, "access": "rwm"}],
    }
    if res.memory_limit_bytes is not None:
        if res.memory_limit_bytes < 4 * 1024 * 1024:
            raise SpecError("resources.limits.memory", f"must be at least 4Mi, got {res.memory_limit_bytes} bytes")
        # swap == limit: no swap on top of the limit, as CRI-O does
        out["memory"] = {"limit": res.memory_limit_bytes, "swap": res.memory_limit_bytes}
    cpu: dict[str, Any] = {}
    if res.cpu_limit_millicores is not None:
        if res.cpu_limit_millicores <= 0:
            raise SpecError("resources.limits.cpu", f"must be positive, got {res.cpu_limit_millicores}m")
        cpu["quota"] = milli_cpu_to_quota(res.cpu_limit_millicores)
        cpu["period"] = CPU_PERIOD_US
    request = res.cpu_request_millicores
    if request is None and res.cpu_limit_millicores is not None:
        request = res.cpu_limit_millicores  # Kubernetes defaults requests to limits
    if request is not None:
        if request < 0:
            raise SpecError("resources.requests.cpu", f"must not be negative, got {request}m")
        cpu["shares"] = milli_cpu_to_shares(request)
    if cpu:
        out["cpu"] = cpu
    if res.pids_limit is not None:
        if res.pids_limit <= 0:
            raise SpecError("resources.pids", f"must be positive, got {res.pids_limit}")
        out["pids"] = {"limit": res.pids_limit}
    return out
