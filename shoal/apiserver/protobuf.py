"""Kubernetes protobuf bodies (`application/vnd.kubernetes.protobuf`) to and from the JSON shape.

kubectl sends its typed commands (`create namespace|deployment|configmap|secret`, `run`,
`expose`, delete options) as protobuf and does not fall back to JSON. A body is the
Kubernetes envelope (k8s.io/apimachinery/pkg/runtime/serializer/protobuf): the 4 magic
bytes `k8s\\x00`, then a `runtime.Unknown{typeMeta{apiVersion, kind}, raw,
contentEncoding, contentType}` whose `raw` is the object's message. `decode_body` turns
that into exactly the dict the JSON body of the same Go object would be, so everything
after the HTTP layer sees one shape:

- field names are the proto field names (Kubernetes names them as their JSON tags);
- int64 are numbers, `IntOrString` an int or a str, `Quantity` its string,
  `Time` RFC 3339 in seconds, `MicroTime` RFC 3339 with microseconds, `[]byte` base64,
  `FieldsV1` and `RawExtension` the embedded JSON object;
- embedded structs tagged `json:",inline"` (`Volume.volumeSource`, `Probe.handler`,
  `LocalObjectReference` in key selectors; `go_fields.INLINE_FIELDS`) put their fields
  in the parent object;
- Go pointers (`go_fields.POINTER_FIELDS`, from gogoproto's nullable hint) appear when
  they are on the wire, zero or not (`replicas: 0`, `automountServiceAccountToken: false`); Go values
  follow `omitempty`: zero scalars, empty lists and maps are left out, structs are always
  rendered (`"status": {}`), a zero Time is left out (Go renders it `null`);
- fields this schema does not know are dropped, as a Kubernetes API server of the same
  version does with protobuf.

`encode_body` is the inverse (JSON shape to envelope), used by tests and by any client
that wants to speak protobuf. Both are pure functions over bytes and dicts; they hold no
state and are safe from any thread or task. Bad input raises `MalformedBody` (a 400
`BadRequest`) with a message that names what is wrong.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
from types import ModuleType
from typing import Any

from google.protobuf import message as _message
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from shoal import timestamps
from shoal.api import errors
from shoal.apiserver.k8sproto import (
    apps_v1_pb2,
    autoscaling_v1_pb2,
    batch_v1_pb2,
    core_v1_pb2,
    go_fields,
    intstr_pb2,
    meta_v1_pb2,
    resource_pb2,
    runtime_pb2,
)

MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"

# apiVersion -> module holding that group version's kinds.
_GROUP_VERSIONS: dict[str, ModuleType] = {
    "v1": core_v1_pb2,
    "apps/v1": apps_v1_pb2,
    "autoscaling/v1": autoscaling_v1_pb2,
    "batch/v1": batch_v1_pb2,
    "meta.k8s.io/v1": meta_v1_pb2,
}
# metav1 option kinds are registered in every group version (AddToGroupVersion), so a
# DeleteOptions body says apiVersion "v1" or "apps/v1" as often as "meta.k8s.io/v1".
_OPTION_KINDS = ("DeleteOptions", "CreateOptions", "UpdateOptions", "PatchOptions",
                 "GetOptions", "ListOptions")

_TIME = meta_v1_pb2.Time.DESCRIPTOR.full_name
_MICRO_TIME = meta_v1_pb2.MicroTime.DESCRIPTOR.full_name
_DURATION = meta_v1_pb2.Duration.DESCRIPTOR.full_name
_FIELDS_V1 = meta_v1_pb2.FieldsV1.DESCRIPTOR.full_name
_INT_OR_STRING = intstr_pb2.IntOrString.DESCRIPTOR.full_name
_QUANTITY = resource_pb2.Quantity.DESCRIPTOR.full_name
_RAW_EXTENSION = runtime_pb2.RawExtension.DESCRIPTOR.full_name
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


class MalformedBody(errors.BadRequest):
    """A protobuf request body that cannot be read; the message names the problem."""


def message_class(api_version: str, kind: str) -> type[_message.Message]:
    """The generated class for `kind` in `api_version`; MalformedBody if not served."""
    module = meta_v1_pb2 if kind in _OPTION_KINDS else _GROUP_VERSIONS.get(api_version)
    cls = getattr(module, kind, None) if module is not None and kind[:1].isupper() else None
    if cls is None or not isinstance(cls, type) or not issubclass(cls, _message.Message):
        raise MalformedBody(
            f"the protobuf body is of kind {kind!r} in apiVersion {api_version!r}, which "
            f"this server cannot read as protobuf (apiVersions: {', '.join(_GROUP_VERSIONS)})"
        )
    return cls


# -- decode ----------------------------------------------------------------------------


def decode_body(raw: bytes) -> dict[str, Any]:
    """A Kubernetes protobuf envelope -> the object's JSON-shaped dict (apiVersion and
    kind first). Raises MalformedBody naming the problem."""
    if not raw.startswith(MAGIC):
        raise MalformedBody(
            f"the request body is not a Kubernetes protobuf object: it must start with the "
            f"4 bytes 'k8s\\x00', got {raw[:4]!r}"
        )
    unknown = runtime_pb2.Unknown()
    try:
        unknown.ParseFromString(raw[len(MAGIC):])
    except _message.DecodeError as exc:
        raise MalformedBody(f"the protobuf envelope (runtime.Unknown) is malformed: {exc}") from None
    api_version, kind = unknown.typeMeta.apiVersion, unknown.typeMeta.kind
    if not kind:
        raise MalformedBody("the protobuf envelope has no typeMeta.kind")
    if unknown.contentEncoding:
        raise MalformedBody(
            f"the protobuf envelope's contentEncoding {unknown.contentEncoding!r} is not "
            "supported; send the object unencoded"
        )
    head: dict[str, Any] = {"apiVersion": api_version, "kind": kind} if api_version else {"kind": kind}
    ctype = unknown.contentType.split(";")[0].strip()
    if ctype == "application/json":
        try:
            obj = json.loads(unknown.raw)
        except ValueError as exc:
            raise MalformedBody(f"the JSON object inside the protobuf envelope is not valid JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise MalformedBody("the JSON inside the protobuf envelope must be an object")
        return {**head, **obj}
    if ctype not in ("", MEDIA_TYPE):
        raise MalformedBody(f"the protobuf envelope's contentType {ctype!r} is not supported")
    msg = message_class(api_version, kind)()
    try:
        msg.ParseFromString(unknown.raw)
    except _message.DecodeError as exc:
        raise MalformedBody(f"the protobuf {kind} ({api_version or 'no apiVersion'}) is malformed: {exc}") from None
    return {**head, **message_to_dict(msg)}


def message_to_dict(msg: _message.Message) -> dict[str, Any]:
    """One message -> its Kubernetes JSON object (see the module docstring)."""
    out: dict[str, Any] = {}
    for field in msg.DESCRIPTOR.fields:
        name = field.name
        if _is_map(field):
            entries = getattr(msg, name)
            if entries:
                value_field = field.message_type.fields_by_name["value"]
                out[name] = {k: _value(value_field, entries[k]) for k in sorted(entries)}
            continue
        if field.is_repeated:
            items = getattr(msg, name)
            if items:
                out[name] = [_value(field, item) for item in items]
            continue
        pointer = field.full_name in go_fields.POINTER_FIELDS
        present = msg.HasField(name)
        if pointer and not present:
            continue
        value = getattr(msg, name)
        if field.full_name in go_fields.INLINE_FIELDS:
            out.update(message_to_dict(value))
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            rendered = _value(field, value)
            if rendered is not None:
                out[name] = rendered
        elif pointer or value:  # Go values are `omitempty`: zero scalars stay out
            out[name] = _value(field, value)
    return out


def _is_map(field: FieldDescriptor) -> bool:
    return (field.type == FieldDescriptor.TYPE_MESSAGE
            and field.message_type.GetOptions().map_entry)


def _value(field: FieldDescriptor, value: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_BYTES:
        return base64.b64encode(value).decode()
    if field.type != FieldDescriptor.TYPE_MESSAGE:
        return value
    kind = field.message_type.full_name
    if kind in (_TIME, _MICRO_TIME):
        if not value.seconds and not value.nanos:
            return None  # the zero time: Go renders null
        return format_time(value.seconds, value.nanos, micro=kind == _MICRO_TIME)
    if kind == _INT_OR_STRING:
        return value.strVal if value.type == 1 else value.intVal
    if kind == _QUANTITY:
        return value.string or "0"
    if kind == _DURATION:
        return format_duration(value.duration)
    if kind in (_FIELDS_V1, _RAW_EXTENSION):
        return _embedded(field, value.Raw if kind == _FIELDS_V1 else value.raw)
    return message_to_dict(value)


def _embedded(field: FieldDescriptor, raw: bytes) -> Any:
    if not raw:
        return None
    if raw.startswith(MAGIC):
        return decode_body(raw)
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise MalformedBody(f"{field.full_name}: the embedded object is not JSON: {exc}") from None


def format_time(seconds: int, nanos: int, *, micro: bool = False) -> str:
    """metav1.Time (RFC 3339, seconds) or MicroTime (6 fraction digits), in UTC."""
    try:
        t = _EPOCH + datetime.timedelta(seconds=seconds, microseconds=nanos // 1000)
    except OverflowError:
        raise MalformedBody(f"time out of range: {seconds} seconds since the epoch") from None
    return timestamps.format_micro_time(t) if micro else timestamps.format_time(t)


def format_duration(nanos: int) -> str:
    """metav1.Duration as Go's time.Duration.String() renders it ("1h2m3.5s", "300ms")."""
    if nanos == 0:
        return "0s"
    sign, n = ("-", -nanos) if nanos < 0 else ("", nanos)
    if n < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if n >= size:
                return sign + _trim(n / size) + unit
    hours, rest = divmod(n, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    secs = _trim(rest / 1_000_000_000) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{secs}"
    if minutes:
        return f"{sign}{minutes}m{secs}"
    return sign + secs


def _trim(x: float) -> str:
    return f"{x:.9f}".rstrip("0").rstrip(".")


# -- encode ----------------------------------------------------------------------------


def encode_body(obj: dict[str, Any]) -> bytes:
    """A JSON-shaped object (with apiVersion and kind) -> a Kubernetes protobuf envelope.
    Raises MalformedBody naming the first field that does not fit the schema."""
    api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
    msg = message_class(api_version, kind)()
    dict_to_message({k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}, msg, "")
    unknown = runtime_pb2.Unknown(raw=msg.SerializeToString())
    unknown.typeMeta.apiVersion = api_version
    unknown.typeMeta.kind = kind
    return MAGIC + unknown.SerializeToString()


def dict_to_message(data: dict[str, Any], msg: _message.Message, path: str) -> None:
    """Fill `msg` from its JSON object; `path` prefixes field names in errors."""
    if not isinstance(data, dict):
        raise MalformedBody(f"{path or '<root>'}: expected an object, got {type(data).__name__}")
    fields = msg.DESCRIPTOR.fields_by_name
    inline = [f for f in msg.DESCRIPTOR.fields if f.full_name in go_fields.INLINE_FIELDS]
    inlined: dict[str, dict[str, Any]] = {}
    for name, value in data.items():
        where = f"{path}.{name}" if path else name
        field = fields.get(name)
        if field is None or field in inline:
            owner = next((f for f in inline if _accepts(f.message_type, name)), None)
            if owner is None:
                raise MalformedBody(f"{where}: unknown field in {msg.DESCRIPTOR.name}")
            inlined.setdefault(owner.name, {})[name] = value
            continue
        if value is None:
            continue
        if _is_map(field):
            if not isinstance(value, dict):
                raise MalformedBody(f"{where}: expected an object")
            target = getattr(msg, name)
            value_field = field.message_type.fields_by_name["value"]
            for k, v in value.items():
                if value_field.type == FieldDescriptor.TYPE_MESSAGE:
                    _fill(value_field, v, target[k], f"{where}[{k}]")
                else:
                    target[k] = _scalar(value_field, v, f"{where}[{k}]")
        elif field.is_repeated:
            if not isinstance(value, list):
                raise MalformedBody(f"{where}: expected a list")
            target = getattr(msg, name)
            for i, item in enumerate(value):
                if field.type == FieldDescriptor.TYPE_MESSAGE:
                    _fill(field, item, target.add(), f"{where}[{i}]")
                else:
                    target.append(_scalar(field, item, f"{where}[{i}]"))
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            sub = getattr(msg, name)
            sub.SetInParent()
            _fill(field, value, sub, where)
        else:
            setattr(msg, name, _scalar(field, value, where))
    for name, part in inlined.items():
        sub = getattr(msg, name)
        sub.SetInParent()
        dict_to_message(part, sub, path)


def _accepts(desc: Descriptor, name: str) -> bool:
    """Whether JSON key `name` belongs to `desc`, directly or through its inline fields."""
    if name in desc.fields_by_name:
        return desc.fields_by_name[name].full_name not in go_fields.INLINE_FIELDS
    return any(_accepts(f.message_type, name) for f in desc.fields
               if f.full_name in go_fields.INLINE_FIELDS)


def _fill(field: FieldDescriptor, value: Any, sub: _message.Message, where: str) -> None:
    kind = field.message_type.full_name
    if kind in (_TIME, _MICRO_TIME):
        sub.seconds, sub.nanos = parse_time(value, where)
    elif kind == _INT_OR_STRING:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise MalformedBody(f"{where}: expected an integer or a string")
        if isinstance(value, str):
            sub.type, sub.strVal = 1, value
        else:
            sub.type, sub.intVal = 0, value
    elif kind == _QUANTITY:
        sub.string = str(value)
    elif kind == _DURATION:
        raise MalformedBody(f"{where}: encoding durations is not supported")
    elif kind == _FIELDS_V1:
        sub.Raw = json.dumps(value, separators=(",", ":")).encode()
    elif kind == _RAW_EXTENSION:
        sub.raw = json.dumps(value, separators=(",", ":")).encode()
    else:
        dict_to_message(value, sub, where)


def _scalar(field: FieldDescriptor, value: Any, where: str) -> Any:
    t = field.type
    if t == FieldDescriptor.TYPE_BYTES:
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise MalformedBody(f"{where}: expected base64 data") from None
    if t == FieldDescriptor.TYPE_BOOL:
        if not isinstance(value, bool):
            raise MalformedBody(f"{where}: expected a boolean, got {value!r}")
        return value
    if t == FieldDescriptor.TYPE_STRING:
        if not isinstance(value, str):
            raise MalformedBody(f"{where}: expected a string, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedBody(f"{where}: expected an integer, got {value!r}")
    return value


def parse_time(text: Any, where: str) -> tuple[int, int]:
    """RFC 3339 -> (seconds, nanos) since the epoch."""
    try:
        t = timestamps.parse_time(str(text))
    except ValueError:
        raise MalformedBody(f"{where}: expected an RFC 3339 time, got {text!r}") from None
    delta = t - _EPOCH
    seconds = delta.days * 86400 + delta.seconds
    return seconds, delta.microseconds * 1000


def descriptor_of(api_version: str, kind: str) -> Descriptor:
    """The message descriptor for a kind (for callers that introspect the schema)."""
    return message_class(api_version, kind).DESCRIPTOR
