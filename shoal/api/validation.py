"""Validation: every problem of an object, each named by its field path, like Kubernetes.

`validate(obj, old=None)` checks, in order, and collects everything before failing:
1. the envelope: a JSON object with a registered apiVersion/kind (else `BadRequest`);
2. structure against the kind's schema (`shoal.api.schema`): unknown fields at any depth,
   wrong JSON types, malformed quantities/timestamps/base64, status included;
3. metadata (`ValidateObjectMeta`): name or generateName in the kind's name format,
   namespace present exactly for namespaced kinds, label and annotation keys and values,
   finalizers, owner references;
4. the kind's semantic rules (`shoal.api.builtin.*`, or the registered `validator`);
5. on update (`old` is the stored object): immutable fields - metadata.name/namespace here,
   kind-specific ones (selectors, clusterIP, PVC spec, Pod spec, ...) in the kind's rules.
It raises `errors.Invalid(kind, name, [FieldError...], group)` listing all of them.

Call it on the defaulted object (`defaults.apply_defaults` first), as the API server
does; undefaulted objects are accepted where Kubernetes would default the field.

Cost: a typical Pod validates in well under a millisecond once its schema is compiled;
the first validation of a kind imports `kubernetes.client` and compiles its schema
(`warm_up()` does it ahead of time). Pure; thread-safe (see `shoal.api.schema`).
"""

from __future__ import annotations

from typing import Any

from shoal.api import errors, kinds, names, schema
from shoal.api.builtin import fields as f
from shoal.api.builtin.fields import Errs, as_dict, as_list

__all__ = ["validate", "validate_metadata", "warm_up"]

MAX_ANNOTATIONS_SIZE = 256 * 1024


def validate(obj: dict[str, Any], old: dict[str, Any] | None = None) -> None:
    reg = kinds.registration_of(obj)
    rt = reg.type
    errs = schema.check(kinds.schema_of(reg), obj)
    structural = bool(errs)
    errs += validate_metadata(obj.get("metadata"), namespaced=rt.namespaced,
                              name_format=reg.name_format)
    if old is not None:
        errs += _validate_metadata_update(as_dict(obj.get("metadata")),
                                          as_dict(as_dict(old).get("metadata")))
    if reg.validator is not None:
        try:
            errs += reg.validator(obj, old if isinstance(old, dict) else None)
        except (TypeError, AttributeError, KeyError, ValueError):
            # A value of the wrong type tripped the semantic rules; the structural errors
            # already say what is wrong. Without them this is a bug: let it surface.
            if not structural:
                raise
    if errs:
        meta = as_dict(obj.get("metadata"))
        name = meta.get("name") or meta.get("generateName") or ""
        raise errors.Invalid(rt.kind, str(name), _unique(errs), rt.group)


def warm_up() -> None:
    """Import the kubernetes client and compile the schemas of the built-in kinds now
    (about 1-2 s; the API server may run this in a thread at start-up)."""
    schema.warm_up([m for m in kinds.BUILTIN_MODELS if isinstance(m, str)])


def validate_metadata(meta: Any, *, namespaced: bool, name_format: str = "subdomain") -> Errs:
    """ObjectMeta rules (returns FieldErrors under `metadata.`)."""
    meta = as_dict(meta)
    errs: Errs = []
    name, generate = meta.get("name"), meta.get("generateName")
    if not name and not generate:
        errs.append(errors.required("metadata.name", "name or generateName is required"))
    if isinstance(generate, str) and generate and not name:
        errs += [errors.invalid("metadata.generateName", generate, m)
                 for m in names.check_object_name(generate, name_format, prefix=True)]
    if isinstance(name, str) and name:
        errs += [errors.invalid("metadata.name", name, m)
                 for m in names.check_object_name(name, name_format)]
    namespace = meta.get("namespace")
    if namespaced:
        if not namespace:
            errs.append(errors.required("metadata.namespace"))
        else:
            errs += f.check_format("metadata.namespace", namespace, names.check_dns1123_label)
    elif namespace:
        errs.append(errors.forbidden("metadata.namespace", "not allowed on this type"))
    errs += f.labels("metadata.labels", meta.get("labels"))
    annotations = as_dict(meta.get("annotations"))
    size = 0
    for key, value in annotations.items():
        errs += [errors.invalid("metadata.annotations", key, m)
                 for m in names.check_qualified_name(str(key).lower())]
        size += len(str(key)) + (len(value) if isinstance(value, str) else 0)
    if size > MAX_ANNOTATIONS_SIZE:
        errs.append(errors.FieldError("metadata.annotations", "Too long",
                                      f"must have at most {MAX_ANNOTATIONS_SIZE} bytes"))
    for i, fin in enumerate(as_list(meta.get("finalizers"))):
        errs += f.check_format(f"metadata.finalizers[{i}]", fin, names.check_qualified_name)
    controllers = 0
    for i, ref in enumerate(as_list(meta.get("ownerReferences"))):
        ref = as_dict(ref)
        path = f"metadata.ownerReferences[{i}]"
        for key in ("apiVersion", "kind", "name", "uid"):
            errs += f.required_str(f"{path}.{key}", ref.get(key))
        controllers += ref.get("controller") is True
    if controllers > 1:
        errs.append(errors.invalid("metadata.ownerReferences", controllers,
                                   "Only one reference can have Controller set to true"))
    errs += f.at_least("metadata.generation", meta.get("generation"), 0)
    errs += f.at_least("metadata.deletionGracePeriodSeconds",
                       meta.get("deletionGracePeriodSeconds"), 0)
    return errs


def _validate_metadata_update(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    errs: Errs = []
    for key in ("name", "namespace"):
        if old.get(key) and new.get(key) != old.get(key):
            errs.append(errors.invalid(f"metadata.{key}", new.get(key), "field is immutable"))
    return errs


def _unique(errs: Errs) -> Errs:
    seen: set[str] = set()
    out = []
    for e in errs:
        key = str(e)
        if key not in seen:
            seen.add(key)
            out.append(e)
    return out
