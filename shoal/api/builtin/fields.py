"""Small pure helpers shared by the built-in defaulters and validators.

Accessors (`as_dict`, `as_list`) turn values of the wrong JSON type into empty ones, so
semantic checks never crash on input the structural schema already rejected; checks
return lists of `FieldError`s at the path they are given.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Iterable

from shoal.api import errors, names, selectors
from shoal.api.errors import FieldError

Errs = list[FieldError]


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def is_int(value: Any) -> bool:
    return type(value) is int


def set_default(obj: dict[str, Any], key: str, value: Any) -> None:
    """Set obj[key] when it is missing or null (null means absent in Kubernetes JSON)."""
    if obj.get(key) is None:
        obj[key] = value


def child_dict(obj: dict[str, Any], key: str) -> dict[str, Any] | None:
    """obj[key] if it is an object (creating it when absent); None if it has the wrong type."""
    value = obj.get(key)
    if value is None:
        value = obj[key] = {}
    return value if isinstance(value, dict) else None


def check_format(path: str, value: Any, checker: Callable[[str], list[str]]) -> Errs:
    if not isinstance(value, str):
        return []
    return [errors.invalid(path, value, msg) for msg in checker(value)]


def required_str(path: str, value: Any) -> Errs:
    return [errors.required(path)] if value is None or value == "" else []


def at_least(path: str, value: Any, minimum: int) -> Errs:
    if is_int(value) and value < minimum:
        return [errors.invalid(path, value, f"must be greater than or equal to {minimum}")]
    return []


def between(path: str, value: Any, low: int, high: int) -> Errs:
    if is_int(value) and not low <= value <= high:
        return [errors.invalid(path, value, f"must be between {low} and {high}, inclusive")]
    return []


def one_of(path: str, value: Any, allowed: Iterable[str]) -> Errs:
    allowed = list(allowed)
    if value is not None and value not in allowed:
        return [errors.unsupported(path, value, allowed)]
    return []


def port_number(path: str, value: Any) -> Errs:
    if value is None or value == 0:
        return [errors.required(path)]
    if is_int(value):
        return [errors.invalid(path, value, m) for m in names.check_port_number(value)]
    return []


def port_or_name(path: str, value: Any) -> Errs:
    """An IntOrString port: a number 1-65535 or an IANA_SVC_NAME."""
    if value is None or value == 0 or value == "":
        return [errors.required(path)]
    if is_int(value):
        return [errors.invalid(path, value, m) for m in names.check_port_number(value)]
    return check_format(path, value, names.check_iana_svc_name)


def labels(path: str, value: Any) -> Errs:
    """Label keys are qualified names; values at most 63 characters of [-_.A-Za-z0-9]."""
    errs: Errs = []
    for k, v in as_dict(value).items():
        errs += [errors.invalid(path, k, m) for m in names.check_qualified_name(str(k))]
        errs += check_format(path, v, names.check_label_value)
    return errs


def label_selector(path: str, value: Any) -> Errs:
    """A metav1.LabelSelector (matchLabels + matchExpressions), checked by
    `shoal.api.selectors` (one implementation of selector rules for the whole API)."""
    if not isinstance(value, dict):
        return []  # wrong types are reported by the structural schema
    return selectors.label_selector_errors(value, path)


def selector_is_empty(value: Any) -> bool:
    sel = as_dict(value)
    return not sel.get("matchLabels") and not sel.get("matchExpressions")


def selector_matches(value: Any, target: dict[str, Any]) -> bool:
    """Whether a valid LabelSelector matches a label set (empty matches everything)."""
    if not isinstance(value, dict) or selectors.label_selector_errors(value, "selector"):
        return True  # an invalid selector is reported on its own; do not pile on
    return selectors.selector_from_spec(value).matches(target)


def immutable(path: str, new: Any, old: Any) -> Errs:
    if new != old:
        return [errors.invalid(path, _short(new), "field is immutable")]
    return []


def _short(value: Any) -> Any:
    """A value fit for an error message: containers as compact JSON-ish text."""
    if isinstance(value, (dict, list)):
        text = json.dumps(value, sort_keys=True, separators=(",", ":"))
        return text if len(text) <= 200 else text[:197] + "..."
    return value


def clone(value: Any) -> Any:
    """A deep copy of JSON data (much faster than copy.deepcopy)."""
    if isinstance(value, dict):
        return {k: clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clone(v) for v in value]
    return value


def first_difference(new: Any, old: Any, path: str) -> str | None:
    """The path of the first place two JSON values differ, or None when equal."""
    if isinstance(new, dict) and isinstance(old, dict):
        for k in sorted(set(new) | set(old)):
            diff = first_difference(new.get(k), old.get(k), f"{path}.{k}")
            if diff:
                return diff
        return None
    if isinstance(new, list) and isinstance(old, list) and len(new) == len(old):
        for i, (a, b) in enumerate(zip(new, old)):
            diff = first_difference(a, b, f"{path}[{i}]")
            if diff:
                return diff
        return None
    return None if new == old else path
