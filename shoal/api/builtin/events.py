"""core/v1 Events: the involved object must be named, and live in the Event's namespace
(Kubernetes' legacy Event rule). Pure; see the package docstring.
"""

from __future__ import annotations

from typing import Any

from shoal.api import errors
from shoal.api.builtin import fields as f
from shoal.api.builtin.fields import Errs, as_dict

EVENT_TYPES = ("Normal", "Warning")


def validate_event(obj: dict[str, Any], old: dict[str, Any] | None) -> Errs:
    errs: Errs = []
    involved = obj.get("involvedObject")
    if involved is None:
        errs.append(errors.required("involvedObject"))
    involved = as_dict(involved)
    if involved:
        errs += f.required_str("involvedObject.kind", involved.get("kind"))
        errs += f.required_str("involvedObject.name", involved.get("name"))
    namespace = as_dict(obj.get("metadata")).get("namespace")
    involved_ns = involved.get("namespace")
    if involved_ns and namespace and involved_ns != namespace:
        errs.append(errors.invalid("involvedObject.namespace", involved_ns,
                                   "does not match event.namespace"))
    errs += f.one_of("type", obj.get("type") or None, EVENT_TYPES)
    errs += f.at_least("count", obj.get("count"), 0)
    return errs
