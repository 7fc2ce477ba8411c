"""Field selectors with Kubernetes' syntax, semantics and error messages.

Field selectors (`parse_field_selector`) follow `k8s.io/apimachinery/pkg/fields` (terms
``f=v``, ``f==v``, ``f!=v`` joined by commas; ``\\,``, ``\\=`` and ``\\\\`` escape) and
the per-kind field sets of the Kubernetes registry (Pod ``spec.nodeName``, Event
``involvedObject.name``, ...). A field the kind does not support raises BadRequest
``field label not supported: <field>``, as the Kubernetes API server does.

Pure and immutable: a parsed selector is a frozen value, safe to share between tasks and
threads.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

from shoal.api import errors


def _path(*keys: str) -> Callable[[Mapping], Any]:
    def get(obj: Mapping) -> Any:
        value: Any = obj
        for key in keys:
            if not isinstance(value, Mapping):
                return None
            value = value.get(key)
        return value
    return get


def _event_source(obj: Mapping) -> Any:
    return _path("source", "component")(obj) or obj.get("reportingComponent")


def _first_pod_ip(obj: Mapping) -> Any:
    ips = _path("status", "podIPs")(obj) or []
    return ips[0].get("ip") if ips and isinstance(ips[0], Mapping) else _path("status", "podIP")(obj)


_COMMON_FIELDS: dict[str, Callable[[Mapping], Any]] = {
    "metadata.name": _path("metadata", "name"),
    "metadata.namespace": _path("metadata", "namespace"),
}

_KIND_FIELDS: dict[str, dict[str, Callable[[Mapping], Any]]] = {
    "Pod": {
        "spec.nodeName": _path("spec", "nodeName"),
        "spec.restartPolicy": _path("spec", "restartPolicy"),
        "spec.schedulerName": _path("spec", "schedulerName"),
        "spec.serviceAccountName": _path("spec", "serviceAccountName"),
        "spec.hostNetwork": lambda o: bool(_path("spec", "hostNetwork")(o)),
        "status.phase": _path("status", "phase"),
        "status.podIP": _path("status", "podIP"),
        "status.podIPs": _first_pod_ip,
        "status.nominatedNodeName": _path("status", "nominatedNodeName"),
    },
    "Event": {
        "involvedObject.kind": _path("involvedObject", "kind"),
        "involvedObject.namespace": _path("involvedObject", "namespace"),
        "involvedObject.name": _path("involvedObject", "name"),
        "involvedObject.uid": _path("involvedObject", "uid"),
        "involvedObject.apiVersion": _path("involvedObject", "apiVersion"),
        "involvedObject.resourceVersion": _path("involvedObject", "resourceVersion"),
        "involvedObject.fieldPath": _path("involvedObject", "fieldPath"),
        "reason": _path("reason"),
        "reportingComponent": _path("reportingComponent"),
        "source": _event_source,
        "type": _path("type"),
    },
    "Secret": {"type": _path("type")},
    "Namespace": {"status.phase": _path("status", "phase")},
    "Node": {"spec.unschedulable": lambda o: bool(_path("spec", "unschedulable")(o))},
    "ReplicaSet": {"status.replicas": lambda o: int(_path("status", "replicas")(o) or 0)},
}


def supported_fields(kind: str) -> list[str]:
    """The field labels `parse_field_selector` accepts for `kind`."""
    return [*_COMMON_FIELDS, *_KIND_FIELDS.get(kind, {})]


def _field_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclasses.dataclass(frozen=True)
class FieldTerm:
    field: str
    operator: str  # "=" or "!="
    value: str

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")
        return f"{self.field}{self.operator}{escaped}"


@dataclasses.dataclass(frozen=True)
class FieldSelector:
    """A conjunction of field terms for one kind."""

    kind: str = ""
    terms: tuple[FieldTerm, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.terms

    def matches(self, obj: Mapping) -> bool:
        getters = {**_COMMON_FIELDS, **_KIND_FIELDS.get(self.kind, {})}
        for term in self.terms:
            actual = _field_text(getters[term.field](obj))
            if (actual == term.value) != (term.operator == "="):
                return False
        return True

    def exact_value(self, field: str) -> str | None:
        """The value `field` must equal, if a term requires one (for index lookups, e.g.
        the node agent's spec.nodeName)."""
        for term in self.terms:
            if term.field == field and term.operator == "=":
                return term.value
        return None

    def __str__(self) -> str:
        return ",".join(str(t) for t in self.terms)


def parse_field_selector(text: str | None, kind: str) -> FieldSelector:
    """Parse a `fieldSelector` for objects of `kind`; None or "" selects everything.

    Raises BadRequest: 'invalid selector: ...' for bad syntax, 'field label not
    supported: <field>' for a field the kind does not have."""
    if text is None or not text.strip():
        return FieldSelector(kind)
    terms: list[FieldTerm] = []
    allowed = supported_fields(kind)
    for part in sorted(_split_terms(text)):
        if not part:
            continue
        split = _split_term(part)
        if split is None:
            raise errors.BadRequest(f"invalid selector: '{text}'; can't understand '{part}'")
        field, operator, raw = split
        value = _unescape(raw)
        if field not in allowed:
            raise errors.BadRequest(f"field label not supported: {field}")
        terms.append(FieldTerm(field, "!=" if operator == "!=" else "=", value))
    return FieldSelector(kind, tuple(terms))


def _split_terms(text: str) -> list[str]:
    """Split on commas not escaped by a backslash (fields.splitTerms)."""
    terms, current, escaped = [], [], False
    for ch in text:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\":
            current.append(ch)
            escaped = True
        elif ch == ",":
            terms.append("".join(current))
            current = []
        else:
            current.append(ch)
    terms.append("".join(current))
    return terms


def _split_term(term: str) -> tuple[str, str, str] | None:
    for i in range(len(term)):
        for operator in ("!=", "==", "="):
            if term.startswith(operator, i):
                return term[:i], operator, term[i + len(operator):]
    return None


def _unescape(value: str) -> str:
    if not any(ch in value for ch in "\\,="):
        return value
    out, escaped = [], False
    for ch in value:
        if escaped:
            if ch not in "\\,=":
                raise errors.BadRequest(
                    f"invalid field selector: invalid escape sequence: \\{ch}")
            out.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch in ",=":
            raise errors.BadRequest(
                f"invalid field selector: unescaped character in value: {ch!r}")
        else:
            out.append(ch)
    if escaped:
        raise errors.BadRequest("invalid field selector: invalid escape sequence: \\")
    return "".join(out)
