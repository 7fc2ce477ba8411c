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
Istio. `validate_peer_authentication` is what the API server runs on create/update.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from shoal.api.errors import FieldError, invalid, required, unsupported
from shoal.mesh.meshconfig import MeshConfig
from shoal.mesh.source import PEER_AUTHENTICATIONS, ClusterState

Obj = dict[str, Any]

STRICT, PERMISSIVE, DISABLE, UNSET = "STRICT", "PERMISSIVE", "DISABLE", "UNSET"
MODES = [UNSET, DISABLE, PERMISSIVE, STRICT]


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


def validate_peer_authentication(obj: Obj) -> list[FieldError]:
    """Field errors of a PeerAuthentication, with Kubernetes-style paths."""
    errors: list[FieldError] = []
    spec = obj.get("spec")
    if spec is None:
        return errors  # an empty policy is valid (inherits everything)
    if not isinstance(spec, dict):
        return [invalid("spec", spec, "must be an object")]
    selector = spec.get("selector")
    if selector is not None:
        labels = (selector or {}).get("matchLabels")
        if not isinstance(labels, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
            errors.append(invalid("spec.selector.matchLabels", labels,
                                  "must be a map of string keys to string values"))
    mtls = spec.get("mtls")
    if mtls is not None:
        mode = (mtls or {}).get("mode", UNSET)
        if mode not in MODES:
            errors.append(unsupported("spec.mtls.mode", mode, MODES))
    port_level = spec.get("portLevelMtls")
    if port_level is not None:
        if not selector:
            errors.append(required("spec.selector",
                                   "portLevelMtls requires a workload selector"))
        if not isinstance(port_level, dict):
            errors.append(invalid("spec.portLevelMtls", port_level, "must be a map of port to mtls"))
        else:
            for port, value in port_level.items():
                path = f"spec.portLevelMtls[{port}]"
                if not str(port).isdigit() or not 0 < int(port) < 65536:
                    errors.append(invalid(path, port, "port must be a number in 1-65535"))
                mode = (value or {}).get("mode", UNSET) if isinstance(value, dict) else value
                if mode not in MODES:
                    errors.append(unsupported(f"{path}.mode", mode, MODES))
    return errors
