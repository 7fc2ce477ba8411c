"""Namespaces: the `kubernetes.io/metadata.name` label Kubernetes adds (and keeps equal to
the name), finalizer names, the namespace strategy (Active on create, Terminating until
emptied on delete) and the one list of namespaces every cluster starts with.
Pure apart from `ensure_namespaces`, which writes through a client.
"""

from __future__ import annotations

import copy
from typing import Any

from shoal.api import errors, names
from shoal.api.builtin import fields as f
from shoal.api.builtin.fields import Errs, as_dict, as_list
from shoal.api.strategy import Strategy

NAME_LABEL = "kubernetes.io/metadata.name"
FINALIZER = "kubernetes"
"""The spec finalizer the namespace controller removes once the namespace is empty."""


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


SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
"""The namespaces every cluster has from the start, as Kubernetes' apiserver creates them."""


class NamespaceStrategy(Strategy):
    """New namespaces are Active and carry the `kubernetes` spec finalizer; deletion
    always waits (phase Terminating) until the namespace controller has emptied it and
    removed that finalizer."""

    def prepare_for_create(self, obj: dict[str, Any], subresources: tuple[str, ...]) -> None:
        spec = obj.setdefault("spec", {})
        if isinstance(spec, dict):
            spec.setdefault("finalizers", [FINALIZER])
        obj["status"] = {"phase": "Active"}

    def merge_subresource(self, subresource: str, current: dict[str, Any],
                          obj: dict[str, Any]) -> dict[str, Any] | None:
        """`finalize` writes spec.finalizers only (Kubernetes' namespaces/finalize)."""
        if subresource != "finalize":
            return super().merge_subresource(subresource, current, obj)
        new = copy.deepcopy(current)
        finalizers = as_dict(obj.get("spec")).get("finalizers")
        spec = new.setdefault("spec", {})
        if finalizers:
            spec["finalizers"] = finalizers
        else:
            spec.pop("finalizers", None)
        return new

    def prepare_for_delete(self, current: dict[str, Any], new: dict[str, Any],
                           grace_seconds: int | None) -> bool:
        new.setdefault("status", {})["phase"] = "Terminating"
        return True

    def finalized(self, obj: dict[str, Any]) -> bool:
        return not as_dict(obj.get("spec")).get("finalizers")


async def ensure_namespaces(client: Any, names_: tuple[str, ...] = SYSTEM_NAMESPACES) -> None:
    """Create the namespaces a cluster always has, if missing. `client` is any
    `shoal.api.client.ApiClient`."""
    for name in names_:
        try:
            await client.create("namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                               "metadata": {"name": name}})
        except errors.AlreadyExists:
            pass
