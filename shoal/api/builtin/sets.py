"""apps/v1 StatefulSets, DaemonSets and ControllerRevisions: defaults
(`SetDefaults_StatefulSet`, `SetDefaults_DaemonSet`) and validation
(`ValidateStatefulSet`, `ValidateDaemonSet`, `ValidateControllerRevision`).

Selector, template and replicas share `workloads.validate_replicated` with Deployments,
so a selector that does not match the template's labels is refused the same way:
``spec.template.metadata.labels: Invalid value: ...: `selector` does not match template
`labels```. A StatefulSet's spec is immutable on update except replicas, ordinals,
template, updateStrategy, persistentVolumeClaimRetentionPolicy and minReadySeconds (the
rule and wording of Kubernetes' ValidateStatefulSetUpdate); a DaemonSet's selector is
immutable. Pure; see the package docstring.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from shoal.api import errors, names
from shoal.api.builtin import fields as f
from shoal.api.builtin import storage, workloads
from shoal.api.builtin.fields import Errs, as_dict, as_list, set_default

POD_MANAGEMENT = ("OrderedReady", "Parallel")
SET_STRATEGIES = ("RollingUpdate", "OnDelete")
RETENTION = ("Retain", "Delete")
_STS_MUTABLE = ("replicas", "ordinals", "template", "updateStrategy",
                "persistentVolumeClaimRetentionPolicy", "minReadySeconds")
_STS_UPDATE_RULE = ("updates to statefulset spec for fields other than 'replicas', 'ordinals', "
                    "'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and "
                    "'minReadySeconds' are forbidden")


# -- defaults ------------------------------------------------------------------------------


def default_statefulset(obj: dict[str, Any]) -> None:
    spec = f.child_dict(obj, "spec")
    if spec is None:
        return
    set_default(spec, "replicas", 1)
    set_default(spec, "podManagementPolicy", "OrderedReady")
    set_default(spec, "revisionHistoryLimit", 10)
    strategy = f.child_dict(spec, "updateStrategy")
    if strategy is not None:
        set_default(strategy, "type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = f.child_dict(strategy, "rollingUpdate")
            if rolling is not None:
                set_default(rolling, "partition", 0)
    retention = f.child_dict(spec, "persistentVolumeClaimRetentionPolicy")
    if retention is not None:
        set_default(retention, "whenDeleted", "Retain")
        set_default(retention, "whenScaled", "Retain")
    for claim in as_list(spec.get("volumeClaimTemplates")):
        if isinstance(claim, dict):
            set_default(claim, "apiVersion", "v1")
            set_default(claim, "kind", "PersistentVolumeClaim")
            storage.default_pvc(claim)
    workloads.default_template(spec)


def default_daemonset(obj: dict[str, Any]) -> None:
    spec = f.child_dict(obj, "spec")
    if spec is None:
        return
    set_default(spec, "revisionHistoryLimit", 10)
    strategy = f.child_dict(spec, "updateStrategy")
    if strategy is not None:
        set_default(strategy, "type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = f.child_dict(strategy, "rollingUpdate")
            if rolling is not None:
                set_default(rolling, "maxUnavailable", 1)
                set_default(rolling, "maxSurge", 0)
    workloads.default_template(spec)


# -- validation ----------------------------------------------------------------------------


def validate_statefulset(obj: dict[str, Any], old: dict[str, Any] | None) -> Errs:
    spec = as_dict(obj.get("spec"))
    errs = workloads.validate_replicated(_with_claim_volumes(spec), "statefulset")
    errs += f.one_of("spec.podManagementPolicy", spec.get("podManagementPolicy"), POD_MANAGEMENT)
    errs += f.at_least("spec.revisionHistoryLimit", spec.get("revisionHistoryLimit"), 0)
    if spec.get("serviceName"):
        errs += f.check_format("spec.serviceName", spec.get("serviceName"),
                               names.check_dns1123_label)
    errs += _validate_set_strategy(as_dict(spec.get("updateStrategy")))
    retention = as_dict(spec.get("persistentVolumeClaimRetentionPolicy"))
    for field in ("whenDeleted", "whenScaled"):
        errs += f.one_of(f"spec.persistentVolumeClaimRetentionPolicy.{field}",
                         retention.get(field), RETENTION)
    errs += f.at_least("spec.ordinals.start", as_dict(spec.get("ordinals")).get("start"), 0)
    errs += _validate_claim_templates(as_list(spec.get("volumeClaimTemplates")))
    if old is not None:
        masked_new = {k: v for k, v in spec.items() if k not in _STS_MUTABLE}
        old_spec = as_dict(old.get("spec"))
        masked_old = {k: v for k, v in old_spec.items() if k not in _STS_MUTABLE}
        if masked_new != masked_old:
            errs.append(errors.forbidden("spec", _STS_UPDATE_RULE))
    return errs


def _with_claim_volumes(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec with one volume per claim template added to the pod template, as the
    controller adds them, so volumeMounts may name the claims (Kubernetes checks the
    union of volumes and claims)."""
    claims = [as_dict(as_dict(c).get("metadata")).get("name")
              for c in as_list(spec.get("volumeClaimTemplates"))]
    pod_spec = as_dict(as_dict(spec.get("template")).get("spec"))
    if not claims or not pod_spec:
        return spec
    volumes = as_list(pod_spec.get("volumes"))
    named = {as_dict(v).get("name") for v in volumes}
    extra = [{"name": n, "persistentVolumeClaim": {"claimName": n}}
             for n in claims if isinstance(n, str) and n and n not in named]
    template = {**spec["template"], "spec": {**pod_spec, "volumes": [*volumes, *extra]}}
    return {**spec, "template": template}


def _validate_set_strategy(strategy: dict[str, Any]) -> Errs:
    path = "spec.updateStrategy"
    kind = strategy.get("type")
    errs = f.one_of(f"{path}.type", kind, SET_STRATEGIES)
    rolling = strategy.get("rollingUpdate")
    if kind == "OnDelete" and rolling is not None:
        errs.append(errors.invalid(f"{path}.rollingUpdate", "",
                                   "only allowed for updateStrategy 'RollingUpdate'"))
    rolling = as_dict(rolling)
    errs += f.at_least(f"{path}.rollingUpdate.partition", rolling.get("partition"), 0)
    unavailable = rolling.get("maxUnavailable")
    errs += workloads.int_or_percent(f"{path}.rollingUpdate.maxUnavailable", unavailable)
    if unavailable == 0 or unavailable == "0%":
        errs.append(errors.invalid(f"{path}.rollingUpdate.maxUnavailable", unavailable,
                                   "must be greater than 0"))
    return errs


def _validate_claim_templates(claims: list[Any]) -> Errs:
    errs: Errs = []
    seen: set[str] = set()
    for i, claim in enumerate(claims):
        claim = as_dict(claim)
        path = f"spec.volumeClaimTemplates[{i}]"
        name = as_dict(claim.get("metadata")).get("name")
        if not name:
            errs.append(errors.required(f"{path}.metadata.name"))
        else:
            errs += f.check_format(f"{path}.metadata.name", name, names.check_dns1123_subdomain)
            if name in seen:
                errs.append(errors.duplicate(f"{path}.metadata.name", name))
            seen.add(name)
        errs += [dataclasses.replace(e, path=f"{path}.{e.path}")
                 for e in storage.validate_pvc(claim, None)]
    return errs


def validate_daemonset(obj: dict[str, Any], old: dict[str, Any] | None) -> Errs:
    spec = as_dict(obj.get("spec"))
    errs = workloads.validate_replicated(spec, "daemonset")
    errs += f.at_least("spec.revisionHistoryLimit", spec.get("revisionHistoryLimit"), 0)
    strategy = as_dict(spec.get("updateStrategy"))
    path = "spec.updateStrategy"
    errs += f.one_of(f"{path}.type", strategy.get("type"), SET_STRATEGIES)
    rolling = as_dict(strategy.get("rollingUpdate"))
    surge, unavailable = rolling.get("maxSurge"), rolling.get("maxUnavailable")
    errs += workloads.int_or_percent(f"{path}.rollingUpdate.maxUnavailable", unavailable)
    errs += workloads.int_or_percent(f"{path}.rollingUpdate.maxSurge", surge)
    if strategy.get("type") == "RollingUpdate" and _zero(surge) and _zero(unavailable):
        errs.append(errors.invalid(f"{path}.rollingUpdate.maxUnavailable", unavailable,
                                   "may not be 0 when `maxSurge` is 0"))
    if old is not None:
        errs += f.immutable("spec.selector", spec.get("selector"),
                            as_dict(old.get("spec")).get("selector"))
    return errs


def _zero(value: Any) -> bool:
    return value in (None, 0, "0%")


def validate_controllerrevision(obj: dict[str, Any], old: dict[str, Any] | None) -> Errs:
    errs = f.at_least("revision", obj.get("revision"), 0)
    if old is not None and obj.get("data") != old.get("data"):
        errs.append(errors.invalid("data", "", "field is immutable"))
    return errs
