"""core/v1 Nodes and coordination.k8s.io/v1 Leases: validation and the node strategy.

A Node is cluster-scoped; its spec (taints, unschedulable, podCIDR) belongs to users and
`kubectl taint|cordon`, its status (capacity, allocatable, conditions, addresses,
nodeInfo) to the node agent, written through `nodes/status`. On create the client's
status is kept (a kubelet registers its Node with the status it already knows, as
Kubernetes' node strategy allows); on update only `/status` changes it.

Taints follow `ValidateNodeTaints`: a qualified-name key, a label-value value, one of
the three effects, no key/effect pair twice. Leases follow `ValidateLease`: positive
durations, non-negative transitions. Pure; see the package docstring.
"""

from __future__ import annotations

from typing import Any

from shoal.api import errors, names
from shoal.api.builtin import fields as f
from shoal.api.builtin.fields import Errs, as_dict, as_list
from shoal.api.strategy import Strategy

TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
LEASE_NAMESPACE = "kube-node-lease"
"""Where every node's heartbeat Lease lives (one Lease per node, named after it)."""


def validate_node(obj: dict[str, Any], old: dict[str, Any] | None) -> Errs:
    spec = as_dict(obj.get("spec"))
    errs: Errs = []
    seen: set[tuple[Any, Any]] = set()
    for i, taint in enumerate(as_list(spec.get("taints"))):
        taint = as_dict(taint)
        path = f"spec.taints[{i}]"
        key = taint.get("key")
        if not key:
            errs.append(errors.required(f"{path}.key"))
        else:
            errs += f.check_format(f"{path}.key", key, names.check_qualified_name)
        if taint.get("value"):
            errs += f.check_format(f"{path}.value", taint.get("value"), names.check_label_value)
        if not taint.get("effect"):
            errs.append(errors.required(f"{path}.effect"))
        else:
            errs += f.one_of(f"{path}.effect", taint.get("effect"), TAINT_EFFECTS)
        pair = (key, taint.get("effect"))
        if pair in seen:
            errs.append(errors.duplicate(f"{path}", f"{key}:{taint.get('effect')}"))
        seen.add(pair)
    if old is not None:
        old_cidr = as_dict(old.get("spec")).get("podCIDR")
        if old_cidr and spec.get("podCIDR") != old_cidr:
            errs.append(errors.forbidden("spec.podCIDR", "node updates may not change podCIDR "
                                         "except from \"\" to valid"))
    return errs


class NodeStrategy(Strategy):
    """A registering node agent sends its status with the create; keep it."""

    def prepare_for_create(self, obj: dict[str, Any], subresources: tuple[str, ...]) -> None:
        if not isinstance(obj.get("status"), dict):
            obj["status"] = {}


def validate_lease(obj: dict[str, Any], old: dict[str, Any] | None) -> Errs:
    spec = as_dict(obj.get("spec"))
    errs = []
    for field in ("leaseDurationSeconds",):
        value = spec.get(field)
        if f.is_int(value) and value <= 0:
            errs.append(errors.invalid(f"spec.{field}", value, "must be greater than 0"))
    errs += f.at_least("spec.leaseTransitions", spec.get("leaseTransitions"), 0)
    return errs
