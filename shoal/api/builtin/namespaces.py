"""Namespaces: the `kubernetes.io/metadata.name` label Kubernetes adds (and keeps equal to
the name), and finalizer names. Pure; see the package docstring.
"""

from __future__ import annotations

from typing import Any

from shoal.api import errors, names
from shoal.api.builtin import fields as f
from shoal.api.builtin.fields import Errs, as_dict, as_list

NAME_LABEL = "kubernetes.io/metadata.name"


def default_namespace(obj: dict[str, Any]) -> None:
    meta = as_dict(obj.get("metadata"))
    name = meta.get("name")
    if isinstance(name, str) and name:
        labels = f.child_dict(meta, "labels")
        if labels is not None:
            labels[NAME_LABEL] = name


def validate_namespace(obj: dict[str, Any], old: dict[str, Any] | None) -> Errs:
    errs: Errs = []
    for i, fin in enumerate(as_list(as_dict(obj.get("spec")).get("finalizers"))):
        errs += f.check_format(f"spec.finalizers[{i}]", fin, names.check_qualified_name)
    meta = as_dict(obj.get("metadata"))
    label = as_dict(meta.get("labels")).get(NAME_LABEL)
    if label is not None and meta.get("name") and label != meta.get("name"):
        errs.append(errors.invalid(f"metadata.labels[{NAME_LABEL}]", label,
                                   "must equal the namespace name"))
    return errs
