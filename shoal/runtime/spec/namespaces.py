"""`linux.namespaces`: mount, pid, ipc, uts always; network private, joined or host.

A path joins an existing namespace (the pod sandbox's, as Kubernetes shares net, ipc
and uts between a pod's containers); no path creates a new one; leaving a type out
shares the host's (network="host").
"""

from __future__ import annotations

from typing import Any

from shoal.runtime.errors import SpecError
from shoal.runtime.intent import NETWORK_HOST, NETWORK_NONE, ContainerIntent


def _ns(kind: str, path: str | None, field: str) -> dict[str, Any]:
    if path is None:
        return {"type": kind}
    if not str(path).startswith("/"):
        raise SpecError(field, f"expected an absolute namespace path, got {path!r}")
    return {"type": kind, "path": str(path)}


def build_namespaces(intent: ContainerIntent) -> list[dict[str, Any]]:
    result = [
        {"type": "mount"},
        _ns("pid", intent.pid_ns_path, "pid_ns_path"),
        _ns("ipc", intent.ipc_ns_path, "ipc_ns_path"),
        _ns("uts", intent.uts_ns_path, "uts_ns_path"),
    ]
    if intent.network == NETWORK_NONE:
        result.append({"type": "network"})
    elif intent.network != NETWORK_HOST:
        result.append(_ns("network", intent.network, "network"))
    return result
