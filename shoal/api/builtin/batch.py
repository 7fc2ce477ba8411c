"""batch/v1 Jobs: defaults (`SetDefaults_Job`), the generated selector (the Job strategy's
PrepareForCreate) and validation (`ValidateJob`, `ValidateJobUpdate`), as Kubernetes
1.31 does them. CronJobs, which embed a Job template, are in `cronjobs`. Pure; see the
package docstring.

The generated selector: unless `spec.manualSelector` is true, the server labels the pod
template with the Job's uid and name (`batch.kubernetes.io/controller-uid`,
`batch.kubernetes.io/job-name` and their legacy unprefixed twins) and selects on
`batch.kubernetes.io/controller-uid`; a client selector that is not exactly that is
refused ("`selector` not auto-generated").

Not implemented (refused with the field path rather than ignored): backoffLimitPerIndex,
maxFailedIndexes, successPolicy and managedBy.
"""

from __future__ import annotations

from typing import Any

from shoal.api import errors, names
from shoal.api import strategy as strategies
from shoal.api.builtin import fields as f
from shoal.api.builtin import pods
from shoal.api.builtin.fields import Errs, as_dict, as_list, set_default

CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
JOB_NAME = "batch.kubernetes.io/job-name"
LEGACY_CONTROLLER_UID = "controller-uid"
LEGACY_JOB_NAME = "job-name"
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
"""Annotation and label carrying an Indexed Job pod's index."""
COMPLETION_INDEX_ENV = "JOB_COMPLETION_INDEX"
CRONJOB_SCHEDULED = "batch.kubernetes.io/cronjob-scheduled-timestamp"

COMPLETION_MODES = ("NonIndexed", "Indexed")
RESTART_POLICIES = ("OnFailure", "Never")
FAILURE_ACTIONS = ("FailJob", "FailIndex", "Ignore", "Count")
EXIT_CODE_OPERATORS = ("In", "NotIn")
CONDITION_STATUSES = ("True", "False", "Unknown")
MAX_INDEXED_COMPLETIONS = 100_000
_UNSUPPORTED_FIELDS = ("backoffLimitPerIndex", "maxFailedIndexes", "successPolicy", "managedBy")
_MUTABLE_WHILE_SUSPENDED = ("nodeSelector", "tolerations", "affinity", "schedulingGates")


# -- defaults ---------------------------------------------------------------------------


def default_job(obj: dict[str, Any]) -> None:
    spec = f.child_dict(obj, "spec")
    if spec is None:
        return
    default_job_spec(spec)
    meta = f.child_dict(obj, "metadata")
    labels = as_dict(as_dict(as_dict(spec.get("template")).get("metadata")).get("labels"))
    if meta is not None and labels and not meta.get("labels"):
        meta["labels"] = dict(labels)


def default_job_spec(spec: dict[str, Any], *, template_only: bool = False) -> None:
    """SetDefaults_Job's spec part; `template_only` (a CronJob's jobTemplate) defaults
    only the pod template, as Kubernetes does for templates."""
    template = spec.get("template")
    if isinstance(template, dict):
        pods.default_pod_template(template)
    if template_only:
        return
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
    set_default(spec, "parallelism", 1)
    set_default(spec, "backoffLimit", 6)
    set_default(spec, "completionMode", "NonIndexed")
    set_default(spec, "suspend", False)
    policy = spec.get("podFailurePolicy")
    for rule in as_list(as_dict(policy).get("rules")):
        for pattern in as_list(as_dict(rule).get("onPodConditions")):
            if isinstance(pattern, dict):
                set_default(pattern, "status", "True")
    set_default(spec, "podReplacementPolicy",
                "Failed" if isinstance(policy, dict) else "TerminatingOrFailed")


def generate_selector(job: dict[str, Any]) -> None:
    """Label the template with the Job's uid and name and select on the uid, unless
    spec.manualSelector is true (Kubernetes' generateSelectorIfNeeded)."""
    spec, meta = job.get("spec"), job.get("metadata")
    if not isinstance(spec, dict) or not isinstance(meta, dict) or spec.get("manualSelector") is True:
        return
    uid, name = meta.get("uid"), meta.get("name")
    if not uid or not isinstance(name, str):
        return
    template = f.child_dict(spec, "template")
    tmeta = f.child_dict(template, "metadata") if template is not None else None
    labels = f.child_dict(tmeta, "labels") if tmeta is not None else None
    if labels is None:
        return
    for key, value in ((CONTROLLER_UID, uid), (JOB_NAME, name),
                       (LEGACY_CONTROLLER_UID, uid), (LEGACY_JOB_NAME, name)):
        labels.setdefault(key, value)
    if spec.get("selector") is None:
        spec["selector"] = {"matchLabels": {CONTROLLER_UID: uid}}


class JobStrategy(strategies.Strategy):
    """A Job's status is the controller's; its selector is generated at create."""

    def prepare_for_create(self, obj: dict[str, Any], subresources: tuple[str, ...]) -> None:
        super().prepare_for_create(obj, subresources)
        generate_selector(obj)


# -- validation -------------------------------------------------------------------------


def validate_job(obj: dict[str, Any], old: dict[str, Any] | None) -> Errs:
    meta = as_dict(obj.get("metadata"))
    spec = as_dict(obj.get("spec"))
    errs = validate_job_spec(spec, "spec", template=False)
    if spec.get("manualSelector") is not True and old is None:
        uid = meta.get("uid")
        selector = spec.get("selector")
        if uid and selector is not None and selector != {"matchLabels": {CONTROLLER_UID: uid}}:
            errs.append(errors.invalid("spec.selector", f._short(selector),
                                       "`selector` not auto-generated"))
    if old is not None:
        errs += _validate_update(spec, as_dict(old.get("spec")), as_dict(old.get("status")))
    return errs


def validate_job_spec(spec: dict[str, Any], path: str, *, template: bool) -> Errs:
    """ValidateJobSpec; `template`: a CronJob's jobTemplate.spec (no selector yet)."""
    errs: Errs = []
    for key in ("parallelism", "completions", "backoffLimit", "ttlSecondsAfterFinished",
                "activeDeadlineSeconds"):
        errs += f.at_least(f"{path}.{key}", spec.get(key), 0)
    for key in _UNSUPPORTED_FIELDS:
        if spec.get(key) is not None:
            errs.append(errors.forbidden(f"{path}.{key}", "not supported by this server (shoal)"))
    mode = spec.get("completionMode")
    errs += f.one_of(f"{path}.completionMode", mode, COMPLETION_MODES)
    if mode == "Indexed":
        completions, parallelism = spec.get("completions"), spec.get("parallelism")
        if completions is None:
            errs.append(errors.required(f"{path}.completions",
                                        "when completion mode is Indexed"))
        elif f.is_int(completions) and completions > MAX_INDEXED_COMPLETIONS:
            errs.append(errors.invalid(f"{path}.completions", completions,
                                       f"must be less than or equal to {MAX_INDEXED_COMPLETIONS} "
                                       "when completion mode is Indexed"))
        if f.is_int(parallelism) and parallelism > MAX_INDEXED_COMPLETIONS:
            errs.append(errors.invalid(f"{path}.parallelism", parallelism,
                                       f"must be less than or equal to {MAX_INDEXED_COMPLETIONS} "
                                       "when completion mode is Indexed"))
    template_obj = as_dict(spec.get("template"))
    labels = as_dict(as_dict(template_obj.get("metadata")).get("labels"))
    selector = spec.get("selector")
    if selector is None:
        if not template:
            errs.append(errors.required(f"{path}.selector"))
    else:
        errs += f.label_selector(f"{path}.selector", selector)
        if not f.selector_is_empty(selector) and not f.selector_matches(selector, labels):
            errs.append(errors.invalid(f"{path}.template.metadata.labels", f._short(labels),
                                       "`selector` does not match template `labels`"))
    if not template_obj:
        errs.append(errors.required(f"{path}.template"))
        return errs
    errs += pods.validate_pod_template(template_obj, f"{path}.template")
    pod_spec = as_dict(template_obj.get("spec"))
    restart = pod_spec.get("restartPolicy")
    rpath = f"{path}.template.spec.restartPolicy"
    if restart is None or restart == "":
        errs.append(errors.required(rpath, 'valid values: "OnFailure", "Never"'))
    elif restart not in RESTART_POLICIES:
        errs.append(errors.unsupported(rpath, restart, list(RESTART_POLICIES)))
    policy = spec.get("podFailurePolicy")
    if isinstance(policy, dict):
        if restart not in (None, "", "Never"):
            errs.append(errors.invalid(rpath, restart, 'only "Never" is supported when '
                                       "podFailurePolicy is specified"))
        errs += _validate_failure_policy(policy, f"{path}.podFailurePolicy", pod_spec)
    return errs


def _validate_failure_policy(policy: dict[str, Any], path: str, pod_spec: dict[str, Any]) -> Errs:
    errs: Errs = []
    rules = as_list(policy.get("rules"))
    if len(rules) > 20:
        errs.append(errors.FieldError(f"{path}.rules", "Too many", "must have at most 20 items",
                                      len(rules), True))
    containers = {c.get("name") for key in ("containers", "initContainers")
                  for c in as_list(pod_spec.get(key)) if isinstance(c, dict)}
    for i, rule in enumerate(rules):
        rule = as_dict(rule)
        rpath = f"{path}.rules[{i}]"
        action = rule.get("action")
        if not action:
            errs.append(errors.required(f"{rpath}.action"))
        else:
            errs += f.one_of(f"{rpath}.action", action, FAILURE_ACTIONS)
            if action == "FailIndex":
                errs.append(errors.invalid(f"{rpath}.action", action,
                                           "requires the backoffLimitPerIndex to be set"))
        codes, conditions = rule.get("onExitCodes"), rule.get("onPodConditions")
        if codes is not None and conditions is not None:
            errs.append(errors.invalid(rpath, "", "specifying both OnExitCodes and "
                                       "OnPodConditions is not supported"))
        elif codes is None and conditions is None:
            errs.append(errors.invalid(rpath, "", "specifying one of OnExitCodes and "
                                       "OnPodConditions is required"))
        if isinstance(codes, dict):
            errs += _validate_exit_codes(codes, f"{rpath}.onExitCodes", containers)
        for j, pattern in enumerate(as_list(conditions)):
            pattern = as_dict(pattern)
            ppath = f"{rpath}.onPodConditions[{j}]"
            errs += f.one_of(f"{ppath}.status", pattern.get("status"), CONDITION_STATUSES)
            kind = pattern.get("type")
            if not kind:
                errs.append(errors.required(f"{ppath}.type"))
            else:
                errs += f.check_format(f"{ppath}.type", kind, names.check_qualified_name)
    return errs


def _validate_exit_codes(codes: dict[str, Any], path: str, containers: set[Any]) -> Errs:
    errs: Errs = []
    name = codes.get("containerName")
    if name is not None and name not in containers:
        errs.append(errors.invalid(f"{path}.containerName", name, "must be one of the container "
                                   "or initContainer names in the pod template"))
    operator = codes.get("operator")
    if not operator:
        errs.append(errors.required(f"{path}.operator"))
    else:
        errs += f.one_of(f"{path}.operator", operator, EXIT_CODE_OPERATORS)
    values = as_list(codes.get("values"))
    if not values:
        errs.append(errors.invalid(f"{path}.values", f._short(values),
                                   "at least one value is required"))
    if len(values) > 255:
        errs.append(errors.FieldError(f"{path}.values", "Too many", "must have at most 255 items",
                                      len(values), True))
    seen: set[int] = set()
    previous = None
    for k, value in enumerate(values):
        vpath = f"{path}.values[{k}]"
        if not f.is_int(value):
            continue
        if value in seen:
            errs.append(errors.duplicate(vpath, value))
        if operator == "In" and value == 0:
            errs.append(errors.invalid(vpath, value, "must not be 0 for the In operator"))
        if previous is not None and previous > value:
            errs.append(errors.invalid(vpath, value, "must be ordered"))
        seen.add(value)
        previous = value
    return errs


def _validate_update(spec: dict[str, Any], old: dict[str, Any], old_status: dict[str, Any]) -> Errs:
    errs: Errs = []
    for key in ("selector", "completionMode", "podFailurePolicy", "manualSelector"):
        errs += f.immutable(f"spec.{key}", spec.get(key), old.get(key))
    completions = spec.get("completions")
    elastic = (spec.get("completionMode") == "Indexed" and completions == spec.get("parallelism"))
    if not elastic:
        errs += f.immutable("spec.completions", completions, old.get("completions"))
    template, old_template = as_dict(spec.get("template")), as_dict(old.get("template"))
    if old.get("suspend") is True and not old_status.get("startTime"):
        template = _masked_template(template)
        old_template = _masked_template(old_template)
    errs += f.immutable("spec.template", template, old_template)
    return errs


def _masked_template(template: dict[str, Any]) -> dict[str, Any]:
    """The template without what a suspended, never-started Job may change."""
    masked = f.clone(template)
    meta = as_dict(masked.get("metadata"))
    meta.pop("labels", None)
    meta.pop("annotations", None)
    spec = as_dict(masked.get("spec"))
    for key in _MUTABLE_WHILE_SUSPENDED:
        spec.pop(key, None)
    return masked
