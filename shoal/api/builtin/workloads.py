"""apps/v1 Deployments and ReplicaSets: defaults (`SetDefaults_Deployment`,
`SetDefaults_ReplicaSet`) and validation (`ValidateDeployment`, `ValidateReplicaSet`,
selector immutability on update). Pure; see the package docstring.
"""

from __future__ import annotations

from typing import Any

from shoal.api import errors, names
from shoal.api.builtin import fields as f
from shoal.api.builtin import pods
from shoal.api.builtin.fields import Errs, as_dict, set_default

STRATEGIES = ("Recreate", "RollingUpdate")


def default_deployment(obj: dict[str, Any]) -> None:
    spec = f.child_dict(obj, "spec")
    if spec is None:
        return
    set_default(spec, "replicas", 1)
    strategy = f.child_dict(spec, "strategy")
    if strategy is not None:
        set_default(strategy, "type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = f.child_dict(strategy, "rollingUpdate")
            if rolling is not None:
                set_default(rolling, "maxUnavailable", "25%")
                set_default(rolling, "maxSurge", "25%")
    set_default(spec, "revisionHistoryLimit", 10)
    set_default(spec, "progressDeadlineSeconds", 600)
    default_template(spec)


def default_replicaset(obj: dict[str, Any]) -> None:
    spec = f.child_dict(obj, "spec")
    if spec is None:
        return
    set_default(spec, "replicas", 1)
    default_template(spec)


def default_template(spec: dict[str, Any]) -> None:
    """Default a workload's pod template, as every pod-template kind does."""
    template = spec.get("template")
    if isinstance(template, dict):
        pods.default_pod_template(template)


def validate_deployment(obj: dict[str, Any], old: dict[str, Any] | None) -> Errs:
    spec = as_dict(obj.get("spec"))
    errs = validate_replicated(spec, "deployment")
    errs += _validate_strategy(as_dict(spec.get("strategy")), "spec.strategy")
    errs += f.at_least("spec.revisionHistoryLimit", spec.get("revisionHistoryLimit"), 0)
    deadline = spec.get("progressDeadlineSeconds")
    errs += f.at_least("spec.progressDeadlineSeconds", deadline, 0)
    min_ready = spec.get("minReadySeconds")
    if f.is_int(deadline) and f.is_int(min_ready) and deadline <= min_ready:
        errs.append(errors.invalid("spec.progressDeadlineSeconds", deadline,
                                   "must be greater than minReadySeconds"))
    if old is not None:
        errs += f.immutable("spec.selector", spec.get("selector"),
                            as_dict(old.get("spec")).get("selector"))
    return errs


def validate_replicaset(obj: dict[str, Any], old: dict[str, Any] | None) -> Errs:
    spec = as_dict(obj.get("spec"))
    errs = validate_replicated(spec, "replicaset")
    if old is not None:
        errs += f.immutable("spec.selector", spec.get("selector"),
                            as_dict(old.get("spec")).get("selector"))
    return errs


def validate_replicated(spec: dict[str, Any], what: str) -> Errs:
    """What Deployments, ReplicaSets, StatefulSets and DaemonSets share: replicas,
    selector, template (`what` names the kind in the empty-selector message)."""
    errs = f.at_least("spec.replicas", spec.get("replicas"), 0)
    errs += f.at_least("spec.minReadySeconds", spec.get("minReadySeconds"), 0)
    selector = spec.get("selector")
    template = as_dict(spec.get("template"))
    template_labels = as_dict(as_dict(template.get("metadata")).get("labels"))
    if selector is None:
        errs.append(errors.required("spec.selector"))
    else:
        errs += f.label_selector("spec.selector", selector)
        if f.selector_is_empty(selector):
            errs.append(errors.invalid("spec.selector", f._short(selector),
                                       f"empty selector is invalid for {what}"))
        elif not f.selector_matches(selector, template_labels):
            errs.append(errors.invalid("spec.template.metadata.labels", f._short(template_labels),
                                       "`selector` does not match template `labels`"))
    if not template:
        errs.append(errors.required("spec.template"))
        return errs
    errs += pods.validate_pod_template(template, "spec.template")
    restart = as_dict(template.get("spec")).get("restartPolicy")
    if restart is not None and restart != "Always":
        errs.append(errors.unsupported("spec.template.spec.restartPolicy", restart, ["Always"]))
    if as_dict(template.get("spec")).get("activeDeadlineSeconds") is not None:
        errs.append(errors.forbidden("spec.template.spec.activeDeadlineSeconds",
                                     "activeDeadlineSeconds in ReplicaSet is not Supported"))
    return errs


def _validate_strategy(strategy: dict[str, Any], path: str) -> Errs:
    kind = strategy.get("type")
    errs = f.one_of(f"{path}.type", kind, STRATEGIES)
    rolling = strategy.get("rollingUpdate")
    if kind == "Recreate" and rolling is not None:
        errs.append(errors.forbidden(f"{path}.rollingUpdate",
                                     "may not be specified when strategy `type` is 'Recreate'"))
        return errs
    if rolling is None:
        return errs
    rolling = as_dict(rolling)
    rpath = f"{path}.rollingUpdate"
    surge, unavailable = rolling.get("maxSurge"), rolling.get("maxUnavailable")
    errs += int_or_percent(f"{rpath}.maxUnavailable", unavailable)
    errs += int_or_percent(f"{rpath}.maxSurge", surge)
    if _is_zero(surge) and _is_zero(unavailable):
        errs.append(errors.invalid(f"{rpath}.maxUnavailable", unavailable,
                                   "may not be 0 when `maxSurge` is 0"))
    if isinstance(unavailable, str) and unavailable.endswith("%") and not names.check_percent(unavailable):
        if int(unavailable[:-1]) > 100:
            errs.append(errors.invalid(f"{rpath}.maxUnavailable", unavailable,
                                       "must not be greater than 100%"))
    return errs


def int_or_percent(path: str, value: Any) -> Errs:
    if f.is_int(value):
        return f.at_least(path, value, 0)
    if isinstance(value, str):
        return [errors.invalid(path, value, m) for m in names.check_percent(value)]
    return []


def _is_zero(value: Any) -> bool:
    return value == 0 or value == "0%"
