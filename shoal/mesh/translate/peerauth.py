"""PeerAuthentication (security.istio.io/v1): which mTLS mode a workload port accepts.

Istio's precedence, most specific first:

1. port level: `spec.portLevelMtls[PORT].mode` of the workload policy (a policy with a
   selector matching the pod's labels, in the pod's namespace);
2. workload: `spec.mtls.mode` of that workload policy;
3. namespace: the selector-less policy in the pod's namespace;
4. mesh: the selector-less policy in the root namespace (`MeshConfig.root_namespace`);
5. `MeshConfig.default_mtls_mode` (STRICT in shoal; Istio's default is PERMISSIVE).

A mode of UNSET (or a missing mode) inherits from the next level down. When several
policies compete at one level, the oldest (creationTimestamp, then name) wins, as in
Istio. `validate_peer_authentication` (what the API server runs on create/update) lives in
`shoal.mesh.validation.peerauthentication` and is re-exported here.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from shoal.mesh.meshconfig import MeshConfig
from shoal.mesh.source import PEER_AUTHENTICATIONS, ClusterState
from shoal.mesh.validation.peerauthentication import (  # re-exported: its old home
    DISABLE, MODES, PERMISSIVE, STRICT, UNSET, validate_peer_authentication)

Obj = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class MtlsPolicy:
    """The effective modes for one workload: a default and per-port overrides."""

    mode: str
    port_modes: tuple[tuple[int, str], ...] = ()

    def for_port(self, port: int) -> str:
        return dict(self.port_modes).get(port, self.mode)


def _mode(policy: Obj | None) -> str | None:
    if policy is None:
        return None
    mode = ((policy.get("spec") or {}).get("mtls") or {}).get("mode") or UNSET
    return None if mode == UNSET else mode


def _oldest(policies: list[Obj]) -> Obj | None:
    if not policies:
        return None
    return min(policies, key=lambda p: (p["metadata"].get("creationTimestamp") or "",
                                        p["metadata"]["name"]))


def _selector(policy: Obj) -> dict[str, str] | None:
    return ((policy.get("spec") or {}).get("selector") or {}).get("matchLabels") or None


def effective_mtls(
    state: ClusterState, mesh: MeshConfig, namespace: str, labels: dict[str, str],
) -> MtlsPolicy:
    """The mTLS modes a workload in `namespace` with `labels` accepts."""
    in_root = state.list(PEER_AUTHENTICATIONS, mesh.root_namespace)
    in_ns = state.list(PEER_AUTHENTICATIONS, namespace)
    mesh_policy = _oldest([p for p in in_root if _selector(p) is None])
    ns_policy = _oldest([p for p in in_ns if _selector(p) is None])
    workload = _oldest([
        p for p in in_ns
        if (sel := _selector(p)) is not None and all(labels.get(k) == v for k, v in sel.items())
    ])
    mode = mesh.default_mtls_mode
    for policy in (mesh_policy, ns_policy if namespace != mesh.root_namespace else None, workload):
        mode = _mode(policy) or mode
    port_modes: list[tuple[int, str]] = []
    if workload is not None:
        for port, value in sorted(((workload.get("spec") or {}).get("portLevelMtls") or {}).items(),
                                  key=lambda kv: int(kv[0])):
            port_mode = (value or {}).get("mode") or UNSET
            if port_mode != UNSET:
                port_modes.append((int(port), port_mode))
    return MtlsPolicy(mode, tuple(port_modes))
