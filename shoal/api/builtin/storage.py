"""PersistentVolumeClaims: defaults (volumeMode Filesystem), validation (access modes,
requested storage) and the update rule (spec is immutable except growing
`resources.requests` and binding `volumeName` once). Pure; see the package docstring.
"""

from __future__ import annotations

from typing import Any

from shoal.api import errors
from shoal.api.builtin import fields as f
from shoal.api.builtin.fields import Errs, as_dict, as_list, set_default
from shoal.api.builtin.pods import validate_resource_list
from shoal.api.quantity import QuantityError, parse_quantity
from shoal.api.strategy import Strategy

ACCESS_MODES = ("ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod")
VOLUME_MODES = ("Block", "Filesystem")


def default_pvc(obj: dict[str, Any]) -> None:
    spec = f.child_dict(obj, "spec")
    if spec is not None:
        set_default(spec, "volumeMode", "Filesystem")


def validate_pvc(obj: dict[str, Any], old: dict[str, Any] | None) -> Errs:
    spec = as_dict(obj.get("spec"))
    errs: Errs = []
    modes = as_list(spec.get("accessModes"))
    if not modes:
        errs.append(errors.required("spec.accessModes", "at least 1 access mode is required"))
    for i, mode in enumerate(modes):
        errs += f.one_of(f"spec.accessModes[{i}]", mode, ACCESS_MODES)
    if "ReadWriteOncePod" in modes and len(modes) > 1:
        errs.append(errors.forbidden("spec.accessModes",
                                     "may not use ReadWriteOncePod with other access modes"))
    resources = as_dict(spec.get("resources"))
    requests, errs_r = validate_resource_list(resources.get("requests"), "spec.resources.requests")
    errs += errs_r
    _, errs_l = validate_resource_list(resources.get("limits"), "spec.resources.limits")
    errs += errs_l
    storage = as_dict(resources.get("requests")).get("storage")
    if storage is None:
        errs.append(errors.required("spec.resources.requests[storage]"))
    elif "storage" in requests and requests["storage"] <= 0:
        errs.append(errors.invalid("spec.resources.requests[storage]", storage,
                                   "must be greater than zero"))
    errs += f.one_of("spec.volumeMode", spec.get("volumeMode"), VOLUME_MODES)
    errs += f.label_selector("spec.selector", spec.get("selector"))
    if old is not None:
        errs += _validate_update(spec, as_dict(old.get("spec")))
    return errs


def _validate_update(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    errs: Errs = []
    new_storage = as_dict(as_dict(new.get("resources")).get("requests")).get("storage")
    old_storage = as_dict(as_dict(old.get("resources")).get("requests")).get("storage")
    try:
        if parse_quantity(new_storage) < parse_quantity(old_storage):
            errs.append(errors.forbidden("spec.resources.requests[storage]",
                                         "field can not be less than previous value"))
    except QuantityError:
        pass
    masked_new, masked_old = f.clone(new), f.clone(old)
    for spec in (masked_new, masked_old):
        as_dict(spec.get("resources")).pop("requests", None)
        spec.pop("volumeAttributesClassName", None)
    if not old.get("volumeName"):
        masked_new.pop("volumeName", None)
        masked_old.pop("volumeName", None)
    diff = f.first_difference(masked_new, masked_old, "spec")
    if diff:
        errs.append(errors.forbidden(
            "spec", "spec is immutable after creation except resources.requests, "
                    f"volumeAttributesClassName and volumeName (set once); changed: {diff}"))
    return errs


class PvcStrategy(Strategy):
    """A new claim is Pending until the storage controller binds it."""

    def prepare_for_create(self, obj: dict[str, Any], subresources: tuple[str, ...]) -> None:
        obj["status"] = {"phase": "Pending"}
