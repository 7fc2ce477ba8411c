"""EnvoyFilter patches as typed values: selection, parsing, Istio's proto merge, list edits.

Pure helpers shared by the listener, route and cluster patchers (see the package
docstring for the semantics). A `Patch` carries its parsed `value` message; helpers
never mutate their inputs except the target message they are asked to patch.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from typing import Any, Callable, Iterable

from google.protobuf import any_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.message import Message

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
# Imported for their descriptors: TypedStruct typed_configs (as Istio's docs write them).
from udpa.type.v1 import typed_struct_pb2 as udpa_typed_struct_pb2  # noqa: F401
from xds.type.v3 import typed_struct_pb2 as xds_typed_struct_pb2  # noqa: F401

from shoal.mesh.translate.model import ProxyIdentity

Obj = dict[str, Any]

INBOUND, OUTBOUND, ANY, GATEWAY = "SIDECAR_INBOUND", "SIDECAR_OUTBOUND", "ANY", "GATEWAY"
HCM_NAME = "envoy.filters.network.http_connection_manager"

VALUE_TYPES: dict[str, type[Message]] = {
    "LISTENER": listener_pb2.Listener,
    "LISTENER_FILTER": listener_components_pb2.ListenerFilter,
    "FILTER_CHAIN": listener_components_pb2.FilterChain,
    "NETWORK_FILTER": listener_components_pb2.Filter,
    "HTTP_FILTER": hcm_pb2.HttpFilter,
    "ROUTE_CONFIGURATION": route_pb2.RouteConfiguration,
    "VIRTUAL_HOST": route_components_pb2.VirtualHost,
    "HTTP_ROUTE": route_components_pb2.Route,
    "CLUSTER": cluster_pb2.Cluster,
}
ORDERED = {"NETWORK_FILTER", "HTTP_FILTER", "HTTP_ROUTE", "LISTENER_FILTER"}
"""applyTo whose lists have an order; INSERT_* elsewhere is ADD (Istio)."""
OPERATIONS = {"MERGE", "MERGE_AND_REPLACE_LIST", "ADD", "REMOVE", "INSERT_BEFORE",
              "INSERT_AFTER", "INSERT_FIRST", "REPLACE"}

DEPRECATED_NAMES = {
    "envoy.http_connection_manager": HCM_NAME,
    "envoy.tcp_proxy": "envoy.filters.network.tcp_proxy",
    "envoy.router": "envoy.filters.http.router",
    "envoy.cors": "envoy.filters.http.cors",
    "envoy.fault": "envoy.filters.http.fault",
    "envoy.lua": "envoy.filters.http.lua",
    "envoy.ext_authz": "envoy.filters.http.ext_authz",
    "envoy.rate_limit": "envoy.filters.http.ratelimit",
    "envoy.listener.tls_inspector": "envoy.filters.listener.tls_inspector",
    "envoy.listener.original_dst": "envoy.filters.listener.original_dst",
    "envoy.listener.http_inspector": "envoy.filters.listener.http_inspector",
}
"""Names Envoy 1.14 deprecated, as older Istio docs still write them in matches."""

_TYPED_STRUCTS = {"udpa.type.v1.TypedStruct", "xds.type.v3.TypedStruct"}
_REPLACED_ON_MERGE = {
    "google.protobuf.Duration", "google.protobuf.Timestamp", "google.protobuf.BoolValue",
    "google.protobuf.UInt32Value", "google.protobuf.UInt64Value", "google.protobuf.Int32Value",
    "google.protobuf.Int64Value", "google.protobuf.DoubleValue", "google.protobuf.FloatValue",
    "google.protobuf.StringValue",
}


class PatchError(Exception):
    """A patch that cannot be applied to this proxy's config."""


@dataclasses.dataclass(frozen=True)
class Patch:
    origin: str
    """`namespace/name` of the EnvoyFilter and the patch index, for messages."""
    apply_to: str
    context: str
    match: Obj
    operation: str
    value: Message | None


# -- selection and parsing ------------------------------------------------------------

def select_filters(filters: Iterable[Obj], proxy: ProxyIdentity, root_namespace: str) -> list[Obj]:
    """The EnvoyFilters that apply to `proxy`, in application order."""
    labels = proxy.label_dict

    def selected(f: Obj) -> bool:
        selector = ((f.get("spec") or {}).get("workloadSelector") or {}).get("labels") or {}
        return isinstance(selector, dict) and all(labels.get(k) == v for k, v in selector.items())

    def key(f: Obj) -> tuple:
        meta, spec = f.get("metadata") or {}, f.get("spec") or {}
        priority = spec.get("priority")
        return (priority if isinstance(priority, int) else 0,
                str(meta.get("creationTimestamp") or ""), str(meta.get("name") or ""))

    def of(namespace: str) -> list[Obj]:
        return sorted((f for f in filters
                       if (f.get("metadata") or {}).get("namespace", "default") == namespace
                       and selected(f)), key=key)

    if proxy.namespace == root_namespace:
        return of(root_namespace)
    return of(root_namespace) + of(proxy.namespace)


def compile_patches(envoy_filter: Obj, proxy: ProxyIdentity) -> list[Patch]:
    """The filter's patches that can reach this proxy, values parsed; PatchError names the
    filter, the patch and what is wrong."""
    meta = envoy_filter.get("metadata") or {}
    ident = f"{meta.get('namespace', 'default')}/{meta.get('name', '?')}"
    patches = []
    for index, cp in enumerate((envoy_filter.get("spec") or {}).get("configPatches") or []):
        where = f"EnvoyFilter {ident} spec.configPatches[{index}]"
        apply_to = cp.get("applyTo", "")
        patch = cp.get("patch") or {}
        operation = patch.get("operation", "")
        if apply_to not in VALUE_TYPES:
            raise PatchError(f"{where}.applyTo: unsupported value {apply_to!r}")
        if operation not in OPERATIONS:
            raise PatchError(f"{where}.patch.operation: unsupported value {operation!r}")
        match = cp.get("match") or {}
        if not _proxy_matches(match.get("proxy"), proxy):
            continue
        if operation.startswith("INSERT_") and apply_to not in ORDERED:
            operation = "ADD"
        value = None
        if operation != "REMOVE":
            value = parse_value(VALUE_TYPES[apply_to], patch.get("value") or {},
                                f"{where}.patch.value")
        patches.append(Patch(where, apply_to, match.get("context") or ANY, match, operation, value))
    return patches


def _proxy_matches(match: Obj | None, proxy: ProxyIdentity) -> bool:
    if not match:
        return True
    if match.get("proxyVersion"):
        return False
    metadata = {"NAME": proxy.pod, "NAMESPACE": proxy.namespace, "CLUSTER_ID": "shoal",
                "SERVICE_ACCOUNT": proxy.service_account, "INSTANCE_IPS": proxy.ip}
    return all(metadata.get(k) == v for k, v in (match.get("metadata") or {}).items())


def parse_value(cls: type[Message], value: Obj, where: str) -> Message:
    """`value` (Envoy's JSON shape) as a `cls` message; PatchError naming `where`.

    The `value` of a TypedStruct is checked against its `type_url` too (when that type
    is known here): Envoy only warns about unknown fields in dynamic config, so a typo
    there would otherwise be dropped silently."""
    _load_descriptors(value)
    try:
        message = json_format.ParseDict(value, cls())
    except (json_format.ParseError, TypeError, ValueError) as exc:
        raise PatchError(f"{where}: not a valid {cls.DESCRIPTOR.full_name}: {exc}") from None
    _check_typed_structs(value, where)
    return message


def _check_typed_structs(value: Any, where: str) -> None:
    if isinstance(value, list):
        for index, item in enumerate(value):
            _check_typed_structs(item, f"{where}[{index}]")
        return
    if not isinstance(value, dict):
        return
    if str(value.get("@type", "")).rsplit("/", 1)[-1] in _TYPED_STRUCTS:
        name = str(value.get("type_url", "")).rsplit("/", 1)[-1]
        try:
            cls = _message_class(name)
        except PatchError:
            cls = None  # a type shoal does not know: Envoy judges it
        if cls is not None:
            inner = value.get("value") or {}
            _load_descriptors(inner)
            try:
                json_format.ParseDict(inner, cls())
            except (json_format.ParseError, TypeError, ValueError) as exc:
                raise PatchError(f"{where}.value: not a valid {name}: {exc}") from None
        return
    for key, item in value.items():
        _check_typed_structs(item, f"{where}.{key}")


def _type_names(value: Any) -> Iterable[str]:
    if isinstance(value, dict):
        for k, v in value.items():
            if k in ("@type", "type_url", "typeUrl") and isinstance(v, str):
                yield v.rsplit("/", 1)[-1]
            else:
                yield from _type_names(v)
    elif isinstance(value, list):
        for v in value:
            yield from _type_names(v)


def _load_descriptors(value: Any) -> None:
    """Make the descriptor pool know every type a value names: the generated module of
    proto package `a.b.v3` is the Python package `a.b.v3` (xds-protos' layout)."""
    pool = descriptor_pool.Default()
    for name in _type_names(value):
        try:
            pool.FindMessageTypeByName(name)
            continue
        except KeyError:
            pass
        package = name.rpartition(".")[0]
        if not package.startswith(("envoy.", "xds.", "udpa.", "google.")):
            continue
        try:
            module = importlib.import_module(package)
        except ImportError:
            continue  # parsing reports the unknown type
        for info in pkgutil.iter_modules(getattr(module, "__path__", [])):
            if info.name.endswith("_pb2"):
                importlib.import_module(f"{package}.{info.name}")


# -- merging --------------------------------------------------------------------------

def merge(dst: Message, src: Message, replace_lists: bool = False) -> None:
    """Istio's proto merge of src into dst: set scalars overwrite, lists append (or are
    replaced), map entries are replaced, durations and wrappers replaced as a whole."""
    for field, value in src.ListFields():
        target = getattr(dst, field.name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            for key, item in value.items():
                if isinstance(item, Message):
                    target[key].CopyFrom(item)
                else:
                    target[key] = item
        elif field.is_repeated:
            if replace_lists:
                del target[:]
            if field.message_type is not None:
                for item in value:
                    target.add().CopyFrom(item)
            else:
                target.extend(value)
        elif field.message_type is not None:
            if field.message_type.full_name in _REPLACED_ON_MERGE:
                target.CopyFrom(value)
            else:
                target.SetInParent()
                merge(target, value, replace_lists)
        else:
            setattr(dst, field.name, value)


def _message_class(type_url: str) -> type[Message]:
    name = type_url.rsplit("/", 1)[-1]
    _load_descriptors({"@type": name})
    try:
        found = descriptor_pool.Default().FindMessageTypeByName(name)
    except KeyError:
        raise PatchError(f"unknown type {type_url!r}") from None
    return message_factory.GetMessageClass(found)


def _unpack(packed: any_pb2.Any) -> Message:
    message = _message_class(packed.type_url)()
    packed.Unpack(message)
    return message


def pack(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message, deterministic=True)
    return packed


def merge_any(dst: any_pb2.Any, src: any_pb2.Any, replace_lists: bool = False) -> any_pb2.Any:
    """src merged into dst inside the Any: both of one type, or src a TypedStruct of dst's
    type; PatchError otherwise."""
    base = _unpack(dst)
    update = _unpack(src)
    if update.DESCRIPTOR.full_name in _TYPED_STRUCTS and \
            base.DESCRIPTOR.full_name not in _TYPED_STRUCTS:
        if update.type_url.rsplit("/", 1)[-1] != base.DESCRIPTOR.full_name:
            raise PatchError(f"cannot MERGE a TypedStruct of {update.type_url} into "
                             f"{dst.type_url}")
        update = parse_value(type(base), json_format.MessageToDict(update.value),
                             "TypedStruct value")
    if update.DESCRIPTOR.full_name != base.DESCRIPTOR.full_name:
        raise PatchError(f"cannot MERGE typed_config {src.type_url} into {dst.type_url}")
    merge(base, update, replace_lists)
    return pack(base)


def merge_filter(target: Message, patch: Patch) -> None:
    """MERGE into a network or HTTP filter: its typed_config merged inside the Any."""
    value = patch.value
    assert value is not None
    if value.name:
        target.name = value.name
    if value.HasField("typed_config"):
        if target.HasField("typed_config"):
            merged = merge_any(target.typed_config, value.typed_config,
                               patch.operation == "MERGE_AND_REPLACE_LIST")
            target.typed_config.CopyFrom(merged)
        else:
            target.typed_config.CopyFrom(value.typed_config)


def merge_patch(target: Message, patch: Patch) -> None:
    assert patch.value is not None
    merge(target, patch.value, patch.operation == "MERGE_AND_REPLACE_LIST")


def is_merge(patch: Patch) -> bool:
    return patch.operation in ("MERGE", "MERGE_AND_REPLACE_LIST")


def copy_message(message: Message) -> Message:
    clone = type(message)()
    clone.CopyFrom(message)
    return clone


# -- lists of named things (filters, routes) ------------------------------------------

def patch_list(items: list, patches: list[Patch], has_match: Callable[[Patch], bool],
               matches: Callable[[Message, Patch], bool]) -> list:
    """ADD / INSERT_FIRST / INSERT_BEFORE / INSERT_AFTER / REPLACE / REMOVE on an ordered
    list, each patch in turn (Istio's rules for filters and routes)."""
    items = list(items)
    for p in patches:
        value = copy_message(p.value) if p.value is not None else None
        first = next((i for i, item in enumerate(items) if matches(item, p)), None) \
            if has_match(p) else None
        if p.operation == "ADD":
            items.append(value)
        elif p.operation == "INSERT_FIRST":
            if not has_match(p) or first is not None:
                items.insert(0, value)
        elif p.operation == "INSERT_BEFORE":
            if not has_match(p):
                items.insert(0, value)
            elif first is not None:
                items.insert(first, value)
        elif p.operation == "INSERT_AFTER":
            if not has_match(p):
                items.append(value)
            elif first is not None:
                items.insert(first + 1, value)
        elif p.operation == "REPLACE":
            if first is not None:
                items[first] = value
        elif p.operation == "REMOVE" and has_match(p):
            items = [item for item in items if not matches(item, p)]
    return items


def canonical(name: str) -> str:
    return DEPRECATED_NAMES.get(name, name)


def filter_match(p: Patch) -> Obj | None:
    return (((p.match.get("listener") or {}).get("filterChain") or {}).get("filter"))


def sub_filter_match(p: Patch) -> Obj | None:
    return (filter_match(p) or {}).get("subFilter")


def network_filter_matches(item: Message, p: Patch) -> bool:
    match = filter_match(p)
    return match is None or canonical(match.get("name", "")) == item.name


def http_filter_matches(item: Message, p: Patch) -> bool:
    match = sub_filter_match(p)
    return match is None or canonical(match.get("name", "")) == item.name


def context_matches(p: Patch, context: str) -> bool:
    return p.context in (context, ANY)


def apply_guarded(problems: list[str], p: Patch, action: Callable[[], None]) -> None:
    try:
        action()
    except PatchError as exc:
        problems.append(f"{p.origin}: skipped: {exc}")


