"""A quick dict -> protobuf message parser for the JSON shapes translation writes.

`json_format.ParseDict` is exact but slow (a full recompute at 1,000 services spends
most of its time there). `parse(body, message)` covers what translation emits — message,
repeated and map fields by proto or JSON name, enums by name or number, scalars, bytes
as base64, and the well-known types Envoy config uses (Any with "@type", Duration as
"1.5s", the wrapper types as bare values, Struct/Value/ListValue, Empty) — and raises
`Unsupported` for anything else (an unknown field, a null, a type it does not know), so
`protos.to_proto` falls back to json_format, which then either parses it or raises its
own precise ParseError. The result is the same message json_format builds; the
translation tests check that on every resource they produce.

Pure and thread-safe: the per-descriptor field tables are built once and never mutated
after (a race only builds the same table twice).
"""

from __future__ import annotations

import base64
import dataclasses
import math
import re
from typing import Any

from google.protobuf import descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

_FD = FieldDescriptor
_WRAPPERS = frozenset(f"google.protobuf.{n}Value" for n in (
    "Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes"))
_INTS = frozenset((_FD.TYPE_INT32, _FD.TYPE_INT64, _FD.TYPE_UINT32, _FD.TYPE_UINT64,
                   _FD.TYPE_SINT32, _FD.TYPE_SINT64, _FD.TYPE_FIXED32, _FD.TYPE_FIXED64,
                   _FD.TYPE_SFIXED32, _FD.TYPE_SFIXED64))
_FLOATS = frozenset((_FD.TYPE_DOUBLE, _FD.TYPE_FLOAT))
_TYPE_PREFIX = "type.googleapis.com/"
_DECIMAL = re.compile(r"-?[0-9]+")


class Unsupported(Exception):
    """The body has something this parser does not handle: use json_format."""


@dataclasses.dataclass(frozen=True)
class _Field:
    """What parsing needs of one field, read from its descriptor once."""

    name: str
    descriptor: FieldDescriptor
    shape: str  # "message", "repeated_message", "repeated_scalar", "map", "scalar"
    oneof: str | None


_FIELDS: dict[str, dict[str, _Field]] = {}


def _fields(descriptor: Descriptor) -> dict[str, _Field]:
    table = _FIELDS.get(descriptor.full_name)
    if table is None:
        table = {}
        for field in descriptor.fields:
            message_type = field.message_type
            if message_type is not None and message_type.GetOptions().map_entry:
                shape = "map"
            elif field.is_repeated:
                shape = "repeated_message" if message_type is not None else "repeated_scalar"
            else:
                shape = "message" if message_type is not None else "scalar"
            oneof = field.containing_oneof
            entry = _Field(field.name, field, shape, oneof.name if oneof is not None else None)
            table[field.json_name] = entry
            table[field.name] = entry
        _FIELDS[descriptor.full_name] = table
    return table


def parse(body: Any, message: Message) -> Message:
    """Fill `message` from `body` (a dict in json_format's shape) and return it."""
    try:
        _message(body, message)
    except (ValueError, TypeError) as exc:  # out of range, wrong type for upb
        raise Unsupported(str(exc)) from None
    return message


def _message(body: Any, message: Message) -> None:
    descriptor = message.DESCRIPTOR
    name = descriptor.full_name
    if name.startswith("google.protobuf."):
        _well_known(name, body, message)
        return
    if not isinstance(body, dict):
        raise Unsupported(name)
    fields = _fields(descriptor)
    oneofs: set[str] = set()
    for key, value in body.items():
        field = fields.get(key)
        if field is None or value is None:
            raise Unsupported(f"{name}.{key}")
        if field.oneof is not None:
            if field.oneof in oneofs:
                raise Unsupported(f"{name}.{field.oneof}")  # json_format names the clash
            oneofs.add(field.oneof)
        shape = field.shape
        if shape == "message":
            sub = getattr(message, field.name)
            sub.SetInParent()
            _message(value, sub)
        elif shape == "scalar":
            setattr(message, field.name, _scalar(field.descriptor, value))
        elif shape == "repeated_message":
            if not isinstance(value, list):
                raise Unsupported(field.descriptor.full_name)
            target = getattr(message, field.name)
            for item in value:
                if item is None:
                    raise Unsupported(field.descriptor.full_name)
                _message(item, target.add())
        elif shape == "repeated_scalar":
            if not isinstance(value, list):
                raise Unsupported(field.descriptor.full_name)
            getattr(message, field.name).extend(_scalar(field.descriptor, v) for v in value)
        else:
            _map(getattr(message, field.name), field.descriptor, value)


def _map(target: Any, field: FieldDescriptor, value: Any) -> None:
    if not isinstance(value, dict):
        raise Unsupported(field.full_name)
    key_field = field.message_type.fields_by_name["key"]
    value_field = field.message_type.fields_by_name["value"]
    if key_field.type != _FD.TYPE_STRING:
        raise Unsupported(field.full_name)
    for key, item in value.items():
        if item is None:
            raise Unsupported(field.full_name)
        if value_field.message_type is not None:
            _message(item, target[key])
        else:
            target[key] = _scalar(value_field, item)


def _scalar(field: FieldDescriptor, value: Any) -> Any:
    kind = field.type
    if kind == _FD.TYPE_STRING:
        if not isinstance(value, str):
            raise Unsupported(field.full_name)
        return value
    if kind == _FD.TYPE_BOOL:
        if not isinstance(value, bool):
            raise Unsupported(field.full_name)
        return value
    if kind in _INTS:
        if isinstance(value, str) and _DECIMAL.fullmatch(value):
            return int(value)  # proto3 JSON writes 64-bit integers as strings
        if isinstance(value, bool) or not isinstance(value, int):
            raise Unsupported(field.full_name)  # 5.0, "5e0": json_format's to judge
        return value
    if kind in _FLOATS:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Unsupported(field.full_name)
        return float(value)
    if kind == _FD.TYPE_ENUM:
        if isinstance(value, str):
            number = field.enum_type.values_by_name.get(value)
            if number is None:
                raise Unsupported(field.full_name)
            return number.number
        if isinstance(value, int) and not isinstance(value, bool) \
                and value in field.enum_type.values_by_number:
            return value
        raise Unsupported(field.full_name)
    if kind == _FD.TYPE_BYTES:
        if not isinstance(value, str):
            raise Unsupported(field.full_name)
        return base64.b64decode(value, validate=True)
    raise Unsupported(field.full_name)


def _well_known(name: str, body: Any, message: Message) -> None:
    if name in _WRAPPERS:
        _field_value(message, body)
    elif name == "google.protobuf.Duration":
        if not isinstance(body, str) or not body.endswith("s"):
            raise Unsupported(name)
        try:
            message.FromJsonString(body)
        except ValueError:
            raise Unsupported(name) from None
    elif name == "google.protobuf.Any":
        _any(body, message)
    elif name == "google.protobuf.Struct":
        if not isinstance(body, dict) or not _plain_json(body):
            raise Unsupported(name)
        message.update(body)
    elif name == "google.protobuf.Empty":
        if body != {}:
            raise Unsupported(name)
    else:
        raise Unsupported(name)  # Value, ListValue, Timestamp, FieldMask: json_format


def _field_value(message: Message, value: Any) -> None:
    field = message.DESCRIPTOR.fields_by_name["value"]
    message.value = _scalar(field, value)


def _any(body: Any, message: Message) -> None:
    if not isinstance(body, dict) or not isinstance(body.get("@type"), str):
        raise Unsupported("google.protobuf.Any")
    type_url = body["@type"]
    if not type_url.startswith(_TYPE_PREFIX):
        raise Unsupported(type_url)
    try:
        descriptor = descriptor_pool.Default().FindMessageTypeByName(type_url[len(_TYPE_PREFIX):])
    except KeyError:
        raise Unsupported(type_url) from None
    inner = message_factory.GetMessageClass(descriptor)()
    rest = {k: v for k, v in body.items() if k != "@type"}
    if descriptor.full_name.startswith("google.protobuf."):
        # json_format writes a well-known type inside Any as {"@type": ..., "value": ...}
        if set(rest) != {"value"}:
            raise Unsupported(type_url)
        _well_known(descriptor.full_name, rest["value"], inner)
    else:
        _message(rest, inner)
    message.Pack(inner)


def _plain_json(value: Any) -> bool:
    """What Struct.update maps as json_format does: JSON values, finite numbers."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain_json(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain_json(v) for v in value)
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, (str, bool, int))
