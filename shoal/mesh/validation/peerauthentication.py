"""PeerAuthentication (security.istio.io v1/v1beta1): Istio's rules on its fields.

`validate_peer_authentication(obj)` is what the API server runs on create/update: the
mTLS mode from Istio's enum, a string-to-string selector, and `portLevelMtls` (ports
1-65535) only with a workload selector. Pure.
"""

from __future__ import annotations

from typing import Any

from shoal.api.errors import FieldError, invalid, required, unsupported

Obj = dict[str, Any]

STRICT, PERMISSIVE, DISABLE, UNSET = "STRICT", "PERMISSIVE", "DISABLE", "UNSET"
MODES = [UNSET, DISABLE, PERMISSIVE, STRICT]


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
