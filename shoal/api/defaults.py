"""Defaulting: fill in what Kubernetes fills in, so stored objects look like Kubernetes'.

`apply_defaults(obj)` returns a new object (the input is never mutated) with:
- `null` values removed everywhere (Kubernetes JSON treats null as absent);
- metadata.namespace "default" for namespaced kinds when absent, and no namespace for
  cluster-scoped kinds (as the Kubernetes API server clears it);
- the kind's own defaults (`shoal.api.builtin.*` for built-ins, the `defaulter` given to
  `kinds.register` for later kinds).

It is exactly idempotent (`apply_defaults(apply_defaults(x)) == apply_defaults(x)`),
because the API server defaults on every write, and never adds `status` nor the fields
the server owns (uid, creationTimestamp, resourceVersion, generation).

Raises `errors.BadRequest` for a body that is not an object or has a missing/unknown
apiVersion/kind. A body of the wrong shape (say `spec: "x"`) is returned with whatever
defaults apply; `validation.validate` then reports the shape. Pure; thread-safe.
"""

from __future__ import annotations

from typing import Any

from shoal.api import kinds

__all__ = ["apply_defaults", "preserve_allocated"]


def apply_defaults(obj: dict[str, Any]) -> dict[str, Any]:
    reg = kinds.registration_of(obj)
    out = _pruned(obj)
    meta = out.get("metadata")
    if meta is None:
        meta = out["metadata"] = {}
    if isinstance(meta, dict):
        if reg.type.namespaced:
            if not meta.get("namespace"):
                meta["namespace"] = "default"
        else:
            meta.pop("namespace", None)
    if reg.defaulter is not None:
        reg.defaulter(out)
    return out


def preserve_allocated(new: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    """For the API server on update: a copy of `new` that keeps what the server allocated
    on the stored `old` object when `new` leaves it out, as Kubernetes does (a Service's
    clusterIP/clusterIPs and nodePorts): the kind strategy's `prepare_for_update`."""
    out = _pruned(new)
    if isinstance(old, dict):
        kinds.registration_of(out).strategy.prepare_for_update(out, old)
    return out


def _pruned(value: Any) -> Any:
    """A deep copy of JSON data without null members of objects."""
    if isinstance(value, dict):
        return {k: _pruned(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_pruned(v) for v in value]
    return value
