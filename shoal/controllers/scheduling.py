"""Pure scheduling decisions: does a Pod fit a Node, and if not, why (in the words of
Kubernetes' scheduler).

The filters run in the order of the default scheduler's profile and a node fails at the
first filter that refuses it (as the framework's RunFilterPlugins does):

1. NodeUnschedulable: `spec.unschedulable` (kubectl cordon) unless the pod tolerates
   `node.kubernetes.io/unschedulable:NoSchedule` -> "node(s) were unschedulable";
2. TaintToleration: a NoSchedule or NoExecute taint the pod does not tolerate ->
   "node(s) had untolerated taint {key: value}" (PreferNoSchedule only scores);
3. NodeAffinity: spec.nodeSelector and requiredDuringSchedulingIgnoredDuringExecution
   (terms ORed, expressions ANDed; In, NotIn, Exists, DoesNotExist, Gt, Lt; matchFields
   on metadata.name) -> "node(s) didn't match Pod's node affinity/selector";
4. NodePorts: a hostPort another pod on the node holds -> "node(s) didn't have free
   ports for the requested pod ports";
5. NodeResourcesFit: the pod's requests plus those of every pod already on the node
   (not finished) within status.allocatable, and fewer pods than allocatable pods ->
   "Insufficient cpu", "Insufficient memory", "Too many pods" (every short resource).

A pod's requests follow `resource.PodRequests`: the sum of its containers, native
sidecars (init containers with restartPolicy Always) added, at least the largest
regular init container plus the sidecars started before it, plus spec.overhead.

`unschedulable_message` words the failure as the scheduler's FitError does:
"0/1 nodes are available: 1 Insufficient cpu." Everything here is a pure function of
plain dicts; the DaemonSet controller asks `filter_node` too (should a daemon pod run
there).
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any, Iterable, Mapping

from shoal.api.quantity import QuantityError, parse_quantity

Obj = Mapping[str, Any]

UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
HARD_EFFECTS = ("NoSchedule", "NoExecute")
NOT_MATCHED = "node(s) didn't match Pod's node affinity/selector"
UNSCHEDULABLE = "node(s) were unschedulable"
PORTS_TAKEN = "node(s) didn't have free ports for the requested pod ports"
TOO_MANY_PODS = "Too many pods"


def _spec(obj: Obj) -> Mapping[str, Any]:
    return obj.get("spec") or {}


# -- requests ------------------------------------------------------------------------------


def _quantities(values: Mapping[str, Any] | None) -> dict[str, Decimal]:
    out = {}
    for name, value in (values or {}).items():
        try:
            out[name] = parse_quantity(value)
        except (QuantityError, TypeError):
            continue
    return out


def _add(total: dict[str, Decimal], more: Mapping[str, Decimal]) -> None:
    for name, value in more.items():
        total[name] = total.get(name, Decimal(0)) + value


def _requests_of(container: Obj) -> dict[str, Decimal]:
    return _quantities((container.get("resources") or {}).get("requests"))


def pod_requests(pod: Obj) -> dict[str, Decimal]:
    """resource name -> requested amount (cpu in cores, memory in bytes)."""
    spec = _spec(pod)
    total: dict[str, Decimal] = {}
    for c in spec.get("containers") or []:
        _add(total, _requests_of(c))
    sidecars: dict[str, Decimal] = {}
    init_peak: dict[str, Decimal] = {}
    for c in spec.get("initContainers") or []:
        requests = _requests_of(c)
        if c.get("restartPolicy") == "Always":
            _add(sidecars, requests)
            _add(total, requests)
            step = dict(sidecars)
        else:
            step = dict(sidecars)
            _add(step, requests)
        for name, value in step.items():
            init_peak[name] = max(init_peak.get(name, Decimal(0)), value)
    for name, value in init_peak.items():
        total[name] = max(total.get(name, Decimal(0)), value)
    _add(total, _quantities(spec.get("overhead")))
    return total


# -- filters -------------------------------------------------------------------------------


def tolerates(tolerations: Iterable[Mapping[str, Any]], taint: Mapping[str, Any]) -> bool:
    """Kubernetes' Toleration.ToleratesTaint."""
    for tol in tolerations:
        if tol.get("effect") and tol.get("effect") != taint.get("effect"):
            continue
        key = tol.get("key") or ""
        if key and key != taint.get("key"):
            continue
        operator = tol.get("operator") or "Equal"
        if operator == "Exists":
            return True
        if operator == "Equal" and (tol.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def untolerated_taint(pod: Obj, node: Obj, effects: tuple[str, ...] = HARD_EFFECTS
                      ) -> Mapping[str, Any] | None:
    tolerations = _spec(pod).get("tolerations") or []
    for taint in _spec(node).get("taints") or []:
        if taint.get("effect") in effects and not tolerates(tolerations, taint):
            return taint
    return None


def _expression_matches(expr: Mapping[str, Any], value: str | None) -> bool:
    operator, values = expr.get("operator"), list(expr.get("values") or [])
    if operator == "In":
        return value is not None and value in values
    if operator == "NotIn":
        return value is None or value not in values
    if operator == "Exists":
        return value is not None
    if operator == "DoesNotExist":
        return value is None
    if operator in ("Gt", "Lt") and value is not None and len(values) == 1:
        try:
            have, want = int(value), int(values[0])
        except ValueError:
            return False
        return have > want if operator == "Gt" else have < want
    return False


def _term_matches(term: Mapping[str, Any], node: Obj) -> bool:
    expressions = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not expressions and not fields:
        return False  # an empty term matches no objects
    labels = (node.get("metadata") or {}).get("labels") or {}
    name = (node.get("metadata") or {}).get("name")
    return (all(_expression_matches(e, labels.get(e.get("key"))) for e in expressions)
            and all(_expression_matches(e, name if e.get("key") == "metadata.name" else None)
                    for e in fields))


def matches_node_affinity(pod: Obj, node: Obj) -> bool:
    """spec.nodeSelector and required node affinity (GetRequiredNodeAffinity.Match)."""
    labels = (node.get("metadata") or {}).get("labels") or {}
    for key, value in (_spec(pod).get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return False
    required = (((_spec(pod).get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution"))
    if required is None:
        return True
    return any(_term_matches(term, node) for term in required.get("nodeSelectorTerms") or [])


def _host_ports(pod: Obj) -> set[tuple[str, str, int]]:
    ports = set()
    for c in [*(_spec(pod).get("containers") or []), *(_spec(pod).get("initContainers") or [])]:
        for p in c.get("ports") or []:
            if p.get("hostPort"):
                ports.add((p.get("hostIP") or "0.0.0.0", p.get("protocol") or "TCP",
                           int(p["hostPort"])))
    return ports


def _ports_conflict(wanted: set[tuple[str, str, int]], used: set[tuple[str, str, int]]) -> bool:
    for ip, proto, port in wanted:
        for uip, uproto, uport in used:
            if port == uport and proto == uproto and (
                    ip == uip or "0.0.0.0" in (ip, uip)):
                return True
    return False


def occupies_node(pod: Obj) -> bool:
    """A pod whose resources the node still holds: bound and not finished."""
    phase = (pod.get("status") or {}).get("phase")
    return bool(_spec(pod).get("nodeName")) and phase not in ("Succeeded", "Failed")


def insufficient_resources(pod: Obj, node: Obj, on_node: Iterable[Obj]) -> list[str]:
    """NodeResourcesFit's reasons: every resource the node is short of."""
    allocatable = _quantities((node.get("status") or {}).get("allocatable"))
    others = [p for p in on_node if occupies_node(p)]
    reasons = []
    max_pods = allocatable.get("pods")
    if max_pods is not None and len(others) + 1 > max_pods:
        reasons.append(TOO_MANY_PODS)
    wanted = pod_requests(pod)
    used: dict[str, Decimal] = {}
    for other in others:
        _add(used, pod_requests(other))
    for name in sorted(wanted):
        if name == "pods" or wanted[name] <= 0:
            continue
        have = allocatable.get(name)
        if have is None:
            # Kubernetes ignores unknown extended resources only when not requested; a
            # standard resource the node does not report counts as zero.
            have = Decimal(0)
        if used.get(name, Decimal(0)) + wanted[name] > have:
            reasons.append(f"Insufficient {name}")
    return reasons


def filter_node(pod: Obj, node: Obj, on_node: Iterable[Obj] = (), *,
                resources: bool = True) -> list[str]:
    """Why `pod` cannot go to `node` (empty: it fits). `on_node`: the pods bound to it
    (the pod itself is left out). resources=False skips NodePorts and NodeResourcesFit
    (what the DaemonSet controller asks: should a daemon pod run on this node at all)."""
    name = (pod.get("metadata") or {}).get("name")
    uid = (pod.get("metadata") or {}).get("uid")
    others = [p for p in on_node
              if not ((p.get("metadata") or {}).get("uid") == uid
                      and (p.get("metadata") or {}).get("name") == name)]
    if _spec(node).get("unschedulable") and not tolerates(
            _spec(pod).get("tolerations") or [],
            {"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule"}):
        return [UNSCHEDULABLE]
    taint = untolerated_taint(pod, node)
    if taint is not None:
        return [f"node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value') or ''}}}"]
    if not matches_node_affinity(pod, node):
        return [NOT_MATCHED]
    if not resources:
        return []
    wanted_ports = _host_ports(pod)
    if wanted_ports:
        used = set()
        for other in others:
            if occupies_node(other):
                used |= _host_ports(other)
        if _ports_conflict(wanted_ports, used):
            return [PORTS_TAKEN]
    return insufficient_resources(pod, node, others)


def unschedulable_message(reasons_by_node: Mapping[str, list[str]], total_nodes: int) -> str:
    """FitError.Error(): "0/1 nodes are available: 1 Insufficient cpu." (reasons counted
    over nodes, sorted)."""
    counts: Counter[str] = Counter()
    for reasons in reasons_by_node.values():
        counts.update(set(reasons))
    if not counts:
        return f"0/{total_nodes} nodes are available."
    parts = sorted(f"{n} {reason}" for reason, n in counts.items())
    return f"0/{total_nodes} nodes are available: {', '.join(parts)}."
