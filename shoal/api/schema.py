"""Structural schema of API objects: unknown fields and wrong JSON types, with field paths.

We do not hand-write a schema per kind. Built-in kinds use the schema Kubernetes itself
publishes, as carried by the generated models of the `kubernetes` Python client
(`V1Pod.openapi_types` + `V1Pod.attribute_map`). `for_model("V1Pod")` walks it into a tree
of small `Node`s, lazily: a model's fields are compiled the first time an object reaches
them, and every compiled model is cached for the life of the process. `kubernetes.client`
itself (about 1 s to import) is imported on the first compile, never at import of this
module; `warm_up()` does that work ahead of time (the API server may call it in a thread
at start-up).

Kinds registered later (Istio's) describe themselves with `from_fields({...})` (the same
type vocabulary as `openapi_types`, keyed by JSON names) or `from_openapi(crd_schema)`
(a CRD's openAPIV3Schema), or reuse a client model by name.

Leniency follows Kubernetes: `null` is accepted for every field (it means "absent");
Quantity fields accept strings and numbers; IntOrString fields accept both; free-form
`object` fields accept anything. Values of Secret data and of any `bytes` field never
appear in error messages.

`check(node, obj)` returns every problem found as `FieldError`s: `Unknown field` for
undeclared fields (path includes the field), `Invalid value ...: expected integer` for
type mismatches. Pure; the caches are filled idempotently, so concurrent use from
threads at worst compiles a model twice.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import re
from typing import Any, Callable

from shoal.api import errors
from shoal.api.quantity import QUANTITY_FORMAT_ERROR, is_quantity

FieldErrors = list[errors.FieldError]


def _shown(value: Any) -> Any:
    """The value an error shows: scalars as they are, containers by their JSON type."""
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return value


class Node:
    """A schema node; `check` appends the problems of `value` at `path` to `errs`."""

    __slots__ = ()

    def check(self, value: Any, path: str, errs: FieldErrors) -> None:
        raise NotImplementedError


class _Scalar(Node):
    __slots__ = ("accepts", "expected")

    def __init__(self, accepts: Callable[[Any], bool], expected: str) -> None:
        self.accepts = accepts
        self.expected = expected

    def check(self, value: Any, path: str, errs: FieldErrors) -> None:
        if not self.accepts(value):
            errs.append(errors.invalid(path, _shown(value), f"expected {self.expected}"))

    def __repr__(self) -> str:
        return f"<{self.expected}>"


def _is_datetime(v: Any) -> bool:
    if type(v) is not str:
        return False
    try:
        datetime.datetime.fromisoformat(v)
    except ValueError:
        return False
    return True


STRING = _Scalar(lambda v: type(v) is str, "string")
INTEGER = _Scalar(lambda v: type(v) is int, "integer")
BOOLEAN = _Scalar(lambda v: type(v) is bool, "boolean")
NUMBER = _Scalar(lambda v: type(v) in (int, float), "number")
ANY = _Scalar(lambda v: True, "anything")
INT_OR_STRING = _Scalar(lambda v: type(v) in (int, str), "integer or string")
DATETIME = _Scalar(_is_datetime, "date-time string (RFC 3339, e.g. 2024-01-31T12:00:00Z)")


class _Quantity(Node):
    """A resource.Quantity: a string such as "64Mi" or a plain number."""

    __slots__ = ()

    def check(self, value: Any, path: str, errs: FieldErrors) -> None:
        if type(value) not in (str, int, float):
            errs.append(errors.invalid(path, _shown(value), "expected quantity (string or number)"))
        elif not is_quantity(value):
            errs.append(errors.invalid(path, value, QUANTITY_FORMAT_ERROR))


QUANTITY = _Quantity()


class _Bytes(Node):
    """[]byte in JSON: a base64 string. Values are never shown (they are often secrets)."""

    __slots__ = ()

    def check(self, value: Any, path: str, errs: FieldErrors) -> None:
        if type(value) is not str:
            errs.append(errors.FieldError(path, "Invalid value", "expected base64-encoded string"))
            return
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            errs.append(errors.FieldError(
                path, "Invalid value", "illegal base64 data: expected base64-encoded string"))


BYTES = _Bytes()


class Enum(Node):
    """A string restricted to a set of values (CRD `enum`)."""

    __slots__ = ("values",)

    def __init__(self, values: list[Any]) -> None:
        self.values = list(values)

    def check(self, value: Any, path: str, errs: FieldErrors) -> None:
        if value not in self.values:
            errs.append(errors.unsupported(path, _shown(value), [str(v) for v in self.values]))


class ListNode(Node):
    __slots__ = ("item",)

    def __init__(self, item: Node) -> None:
        self.item = item

    def check(self, value: Any, path: str, errs: FieldErrors) -> None:
        if type(value) is not list:
            errs.append(errors.invalid(path, _shown(value), "expected array"))
            return
        item = self.item
        if item is ANY:
            return
        for i, v in enumerate(value):
            if v is not None:
                item.check(v, f"{path}[{i}]", errs)


class MapNode(Node):
    """A JSON object with free keys and typed values (`Dict[str, X]`)."""

    __slots__ = ("value",)

    def __init__(self, value: Node) -> None:
        self.value = value

    def check(self, value: Any, path: str, errs: FieldErrors) -> None:
        if type(value) is not dict:
            errs.append(errors.invalid(path, _shown(value), "expected object"))
            return
        node = self.value
        if node is ANY:
            return
        for k, v in value.items():
            if v is not None:
                node.check(v, f"{path}[{k}]", errs)


class Hidden(Node):
    """Wraps a node whose values are secret: its errors keep path and reason, not value."""

    __slots__ = ("inner",)

    def __init__(self, inner: Node) -> None:
        self.inner = inner

    def check(self, value: Any, path: str, errs: FieldErrors) -> None:
        mine: FieldErrors = []
        self.inner.check(value, path, mine)
        errs.extend(errors.FieldError(e.path, e.type, e.detail) for e in mine)


class ObjectNode(Node):
    """A JSON object with declared fields. `open` objects accept undeclared fields.

    Fields come from `compile_fields()` on first use, so a model's dependencies are only
    loaded when an object actually contains them."""

    __slots__ = ("name", "_fields", "_compile", "open")

    def __init__(
        self, name: str, fields: dict[str, Node] | None = None, *,
        compile_fields: Callable[[], dict[str, Node]] | None = None, open: bool = False,
    ) -> None:
        self.name = name
        self._fields = fields
        self._compile = compile_fields
        self.open = open

    @property
    def fields(self) -> dict[str, Node]:
        if self._fields is None:
            assert self._compile is not None
            self._fields = self._compile()
        return self._fields

    def check(self, value: Any, path: str, errs: FieldErrors) -> None:
        if type(value) is not dict:
            errs.append(errors.invalid(path or "<root>", _shown(value), "expected object"))
            return
        fields = self._fields if self._fields is not None else self.fields
        for k, v in value.items():
            child = fields.get(k)
            if child is None:
                if not self.open:
                    errs.append(errors.unknown_field(f"{path}.{k}" if path else str(k)))
                continue
            if v is not None:
                child.check(v, f"{path}.{k}" if path else k, errs)

    def __repr__(self) -> str:
        return f"<object {self.name}>"


# -- Kubernetes client models -------------------------------------------------------------

# Fields whose Go type the generated client flattens to 'str' / 'Dict[str, str]' /
# 'object' but which Kubernetes decodes leniently: Quantity, IntOrString, secret bytes.
_OVERRIDES: dict[tuple[str, str], Node] = {
    ("V1ResourceRequirements", "limits"): MapNode(QUANTITY),
    ("V1ResourceRequirements", "requests"): MapNode(QUANTITY),
    ("V1VolumeResourceRequirements", "limits"): MapNode(QUANTITY),
    ("V1VolumeResourceRequirements", "requests"): MapNode(QUANTITY),
    ("V1PodSpec", "overhead"): MapNode(QUANTITY),
    ("V1PodStatus", "allocatedResources"): MapNode(QUANTITY),
    ("V1ContainerStatus", "allocatedResources"): MapNode(QUANTITY),
    ("V1PersistentVolumeClaimStatus", "allocatedResources"): MapNode(QUANTITY),
    ("V1PersistentVolumeClaimStatus", "capacity"): MapNode(QUANTITY),
    ("V1EmptyDirVolumeSource", "sizeLimit"): QUANTITY,
    ("V1ResourceFieldSelector", "divisor"): QUANTITY,
    ("V1HTTPGetAction", "port"): INT_OR_STRING,
    ("V1TCPSocketAction", "port"): INT_OR_STRING,
    ("V1RollingUpdateDeployment", "maxSurge"): INT_OR_STRING,
    ("V1RollingUpdateDeployment", "maxUnavailable"): INT_OR_STRING,
    ("V1ServicePort", "targetPort"): INT_OR_STRING,
    ("V1Secret", "stringData"): Hidden(MapNode(STRING)),
}

_SCALARS: dict[str, Node] = {
    "str": STRING, "int": INTEGER, "bool": BOOLEAN, "float": NUMBER, "object": ANY,
    "datetime": DATETIME, "date": DATETIME, "bytes": BYTES, "quantity": QUANTITY,
    "int-or-string": INT_OR_STRING, "any": ANY,
}
_LIST_RE = re.compile(r"^(?:List|list)\[(.*)\]$")
_DICT_RE = re.compile(r"^(?:Dict\[|dict\()\s*str\s*,\s*(.*)[\])]$")

_model_cache: dict[str, ObjectNode] = {}
_client: Any = None


def _kubernetes_client() -> Any:
    global _client
    if _client is None:
        import kubernetes.client  # deferred: ~1 s, paid on first validation only

        _client = kubernetes.client
    return _client


def parse_type(spec: str) -> Node:
    """A node for one `openapi_types` type string: 'str', 'List[V1Container]',
    'Dict[str, str]', 'dict(str, int)', 'V1PodSpec', ..."""
    spec = spec.strip()
    node = _SCALARS.get(spec)
    if node is not None:
        return node
    m = _LIST_RE.match(spec)
    if m:
        return ListNode(parse_type(m.group(1)))
    m = _DICT_RE.match(spec)
    if m:
        return MapNode(parse_type(m.group(1)))
    return for_model(spec)


def for_model(name: str) -> ObjectNode:
    """The (cached, lazily compiled) schema of a `kubernetes.client` model, e.g. 'V1Pod'."""
    node = _model_cache.get(name)
    if node is None:
        node = ObjectNode(name, compile_fields=lambda: _compile_model(name))
        _model_cache[name] = node
    return node


def _compile_model(name: str) -> dict[str, Node]:
    try:
        cls = getattr(_kubernetes_client(), name)
        types, names = cls.openapi_types, cls.attribute_map
    except AttributeError as exc:
        raise ValueError(f"no model {name!r} in the kubernetes client") from exc
    fields: dict[str, Node] = {}
    for attr, type_spec in types.items():
        json_name = names.get(attr, attr)
        override = _OVERRIDES.get((name, json_name))
        fields[json_name] = override if override is not None else parse_type(type_spec)
    return fields


def warm_up(model_names: list[str]) -> None:
    """Compile these models and everything they reach (imports the client once)."""
    seen: set[int] = set()

    def walk(node: Node) -> None:
        if id(node) in seen:
            return
        seen.add(id(node))
        if isinstance(node, ObjectNode):
            for child in node.fields.values():
                walk(child)
        elif isinstance(node, ListNode):
            walk(node.item)
        elif isinstance(node, MapNode):
            walk(node.value)
        elif isinstance(node, Hidden):
            walk(node.inner)

    for name in model_names:
        walk(for_model(name))


# -- schemas of kinds registered later -----------------------------------------------------

def from_fields(fields: dict[str, Any], *, name: str = "object", open: bool = False) -> ObjectNode:
    """An object schema from a declarative mapping of JSON field names to types.

    A type is a type string as in `openapi_types` ('str', 'int', 'bool', 'float',
    'object' (anything), 'int-or-string', 'quantity', 'datetime', 'List[str]',
    'Dict[str, str]', a client model name such as 'V1LabelSelector'), a nested dict (an
    object), a one-element list `[type]` (an array of type), or a `Node`:

        from_fields({"spec": {"hosts": "List[str]", "http": [{"name": "str"}]}})
    """
    return ObjectNode(name, {k: _field_node(v) for k, v in fields.items()}, open=open)


def _field_node(spec: Any) -> Node:
    if isinstance(spec, Node):
        return spec
    if isinstance(spec, str):
        return parse_type(spec)
    if isinstance(spec, dict):
        return from_fields(spec)
    if isinstance(spec, list) and len(spec) == 1:
        return ListNode(_field_node(spec[0]))
    raise ValueError(f"not a schema type: {spec!r}")


def from_openapi(schema: dict[str, Any], *, name: str = "object") -> Node:
    """A node from an OpenAPI v3 schema as found in a CRD's `openAPIV3Schema`.

    Understands type, properties, items, additionalProperties, enum, format (date-time,
    byte), x-kubernetes-int-or-string and x-kubernetes-preserve-unknown-fields; other
    keywords (oneOf, minimum, pattern, ...) are not checked here."""
    if schema.get("x-kubernetes-int-or-string"):
        return INT_OR_STRING
    preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
    kind = schema.get("type")
    if "enum" in schema and kind in ("string", "integer", None):
        return Enum(schema["enum"])
    if kind == "object" or (kind is None and "properties" in schema):
        props = schema.get("properties")
        if props:
            return ObjectNode(
                name,
                {k: from_openapi(v, name=f"{name}.{k}") for k, v in props.items()},
                open=preserve,
            )
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            return MapNode(from_openapi(extra, name=name))
        return MapNode(ANY)
    if kind == "array":
        items = schema.get("items")
        return ListNode(from_openapi(items, name=name) if isinstance(items, dict) else ANY)
    if kind == "string":
        fmt = schema.get("format")
        return DATETIME if fmt == "date-time" else BYTES if fmt == "byte" else STRING
    if kind == "integer":
        return INTEGER
    if kind == "number":
        return NUMBER
    if kind == "boolean":
        return BOOLEAN
    return ANY


def for_kind(spec: Any) -> ObjectNode:
    """The top-level schema of a kind from what `kinds.register(schema=...)` was given:
    None (only apiVersion/kind/metadata are checked, the rest is free), a client model
    name, a `from_fields` mapping, an openAPIV3Schema dict (has "type" or "properties"
    at the top with "openAPIV3Schema"-style keys) or a Node. apiVersion, kind and
    metadata (ObjectMeta) are always declared."""
    if spec is None:
        return ObjectNode("object", _envelope(), open=True)
    if isinstance(spec, str):
        return for_model(spec)
    if isinstance(spec, dict) and ("openAPIV3Schema" in spec or spec.get("type") == "object"):
        node = from_openapi(spec.get("openAPIV3Schema", spec))
    elif isinstance(spec, dict):
        node = from_fields(spec)
    else:
        node = spec
    if not isinstance(node, ObjectNode):
        raise ValueError(f"the schema of a kind must describe an object, not {node!r}")
    return ObjectNode(node.name, {**node.fields, **_envelope()}, open=node.open)


def _envelope() -> dict[str, Node]:
    return {"apiVersion": STRING, "kind": STRING, "metadata": for_model("V1ObjectMeta")}


def check(node: Node, obj: Any) -> FieldErrors:
    """Every structural problem of `obj` against `node`, in document order."""
    errs: FieldErrors = []
    node.check(obj, "", errs)
    return errs
