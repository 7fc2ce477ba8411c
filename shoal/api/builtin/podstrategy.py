"""Pods in the registry: the QoS class (one home for the API and the node) and the pod
strategy (Pending with its QoS class on create; graceful deletion of pods on a node).

`qos_class` follows Kubernetes' `GetPodQOS` (pkg/apis/core/helper/qos): init containers
count like app containers and only positive cpu and memory quantities count; a pod is
BestEffort when no container sets any, Guaranteed when every container sets cpu and
memory limits and the summed requests equal the summed limits (compared as quantities,
so "1" equals "1000m"), Burstable otherwise. The API server stamps it at create and the node agent
reports it in status, both through this function. Pure; see the package docstring.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Mapping

from shoal.api.builtin.fields import as_dict, as_list
from shoal.api.quantity import QuantityError, parse_quantity
from shoal.api.strategy import Strategy

QOS_RESOURCES = ("cpu", "memory")
DEFAULT_GRACE_SECONDS = 30


def qos_class(spec: Mapping[str, Any]) -> str:
    """Guaranteed, Burstable or BestEffort for a pod spec (see the module docstring)."""
    requests: dict[str, Decimal] = {}
    limits: dict[str, Decimal] = {}
    guaranteed = True
    for c in as_list(spec.get("initContainers")) + as_list(spec.get("containers")):
        resources = as_dict(as_dict(c).get("resources"))
        _add_positive(requests, as_dict(resources.get("requests")))
        found = _add_positive(limits, as_dict(resources.get("limits")))
        if not set(QOS_RESOURCES) <= found:
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed and all(limits.get(name) == value for name, value in requests.items()):
        return "Guaranteed"
    return "Burstable"


def _add_positive(totals: dict[str, Decimal], values: dict[str, Any]) -> set[str]:
    """Add the positive cpu/memory quantities of `values` to `totals`; the names added."""
    found = set()
    for name in QOS_RESOURCES:
        try:
            amount = parse_quantity(values[name])
        except (KeyError, QuantityError, TypeError, ValueError, ArithmeticError):
            continue
        if amount > 0:
            totals[name] = totals.get(name, Decimal(0)) + amount
            found.add(name)
    return found


class PodStrategy(Strategy):
    """A new pod is Pending with its QoS class. Deleting a pod bound to a node waits for
    the node agent to stop it within its grace period (deletionGracePeriodSeconds; the
    shortest asked for wins); the agent's final write clears the grace and the pod goes."""

    graceful = True

    def prepare_for_create(self, obj: dict[str, Any], subresources: tuple[str, ...]) -> None:
        obj["status"] = {"phase": "Pending", "qosClass": qos_class(as_dict(obj.get("spec")))}

    def prepare_for_delete(self, current: dict[str, Any], new: dict[str, Any],
                           grace_seconds: int | None) -> bool:
        spec = as_dict(current.get("spec"))
        if not spec.get("nodeName"):
            return False
        grace = spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS)
        grace = grace if grace_seconds is None else grace_seconds
        phase = as_dict(current.get("status")).get("phase")
        if grace <= 0 or phase in ("Succeeded", "Failed"):
            return False
        meta = new["metadata"]
        if meta.get("deletionGracePeriodSeconds") is None or grace < meta["deletionGracePeriodSeconds"]:
            meta["deletionGracePeriodSeconds"] = grace
        return True

    def finalized(self, obj: dict[str, Any]) -> bool:
        return not obj["metadata"].get("deletionGracePeriodSeconds")
