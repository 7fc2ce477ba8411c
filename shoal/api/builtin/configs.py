"""ConfigMaps, Secrets and ServiceAccounts: Secret defaults (type Opaque; `stringData`
merged into `data` base64-encoded, as Kubernetes does on write), key and size validation,
the required keys of typed Secrets, and `immutable` on update.

Secret values never appear in error messages. Pure; see the package docstring.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from shoal.api import errors, names
from shoal.api.builtin import fields as f
from shoal.api.builtin.fields import Errs, as_dict, as_list, set_default

MAX_SIZE = 1024 * 1024  # bytes of data per ConfigMap/Secret, as Kubernetes

_TYPED_SECRET_KEYS = {
    "kubernetes.io/dockercfg": (".dockercfg",),
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
    "kubernetes.io/ssh-auth": ("ssh-privatekey",),
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
}


def default_secret(obj: dict[str, Any]) -> None:
    set_default(obj, "type", "Opaque")
    string_data = obj.get("stringData")
    if isinstance(string_data, dict) and all(isinstance(v, str) for v in string_data.values()):
        data = f.child_dict(obj, "data")
        if data is not None:
            for key, value in string_data.items():
                data[key] = base64.b64encode(value.encode()).decode()
            del obj["stringData"]


def _size_error(path: str, size: int) -> Errs:
    if size > MAX_SIZE:
        return [errors.FieldError(path, "Too long", f"must have at most {MAX_SIZE} bytes")]
    return []


def validate_configmap(obj: dict[str, Any], old: dict[str, Any] | None) -> Errs:
    errs: Errs = []
    data, binary = as_dict(obj.get("data")), as_dict(obj.get("binaryData"))
    size = 0
    for key, value in data.items():
        errs += f.check_format(f"data[{key}]", key, names.check_config_key)
        size += len(value) if isinstance(value, str) else 0
    for key, value in binary.items():
        errs += f.check_format(f"binaryData[{key}]", key, names.check_config_key)
        if key in data:
            errs.append(errors.invalid(f"binaryData[{key}]", key, "duplicate of key present in data"))
        size += len(value) * 3 // 4 if isinstance(value, str) else 0
    errs += _size_error("data", size)
    if old is not None:
        errs += _immutable_data(obj, old, ("data", "binaryData"))
    return errs


def validate_secret(obj: dict[str, Any], old: dict[str, Any] | None) -> Errs:
    errs: Errs = []
    data, string_data = as_dict(obj.get("data")), as_dict(obj.get("stringData"))
    size = 0
    for key, value in data.items():
        errs += f.check_format(f"data[{key}]", key, names.check_config_key)
        if isinstance(value, str):
            try:
                size += len(base64.b64decode(value, validate=True))
            except (binascii.Error, ValueError):
                pass  # reported by the structural schema, without the value
    for key, value in string_data.items():
        errs += f.check_format(f"stringData[{key}]", key, names.check_config_key)
        size += len(value.encode()) if isinstance(value, str) else 0
    errs += _size_error("data", size)

    kind = obj.get("type") or "Opaque"
    present = set(data) | set(string_data)
    for key in _TYPED_SECRET_KEYS.get(kind, ()):
        if key not in present:
            errs.append(errors.required(f"data[{key}]"))
    if kind == "kubernetes.io/basic-auth" and not present & {"username", "password"}:
        errs.append(errors.required("data[username]"))
        errs.append(errors.required("data[password]"))
    if kind == "kubernetes.io/service-account-token":
        annotations = as_dict(as_dict(obj.get("metadata")).get("annotations"))
        key = "kubernetes.io/service-account.name"
        if not annotations.get(key):
            errs.append(errors.required(f"metadata.annotations[{key}]"))
    if kind == "kubernetes.io/dockerconfigjson" and ".dockerconfigjson" in data:
        try:
            json.loads(base64.b64decode(data[".dockerconfigjson"]))
        except (ValueError, TypeError, binascii.Error):
            errs.append(errors.FieldError("data[.dockerconfigjson]", "Invalid value",
                                          "must be valid JSON"))

    if old is not None:
        old_type = old.get("type") or "Opaque"
        if obj.get("type") is not None and obj.get("type") != old_type:
            errs.append(errors.invalid("type", obj.get("type"), "field is immutable"))
        errs += _immutable_data(obj, old, ("data", "stringData"))
    return errs


def _immutable_data(obj: dict[str, Any], old: dict[str, Any], keys: tuple[str, ...]) -> Errs:
    if old.get("immutable") is not True:
        return []
    errs: Errs = []
    if obj.get("immutable") is not True:
        errs.append(errors.forbidden("immutable", "field is immutable when `immutable` is set"))
    for key in keys:
        if (obj.get(key) or {}) != (old.get(key) or {}):
            errs.append(errors.forbidden(key, "field is immutable when `immutable` is set"))
    return errs


def validate_serviceaccount(obj: dict[str, Any], old: dict[str, Any] | None) -> Errs:
    errs: Errs = []
    for key in ("secrets", "imagePullSecrets"):
        for i, ref in enumerate(as_list(obj.get(key))):
            errs += f.required_str(f"{key}[{i}].name", as_dict(ref).get("name"))
    return errs
