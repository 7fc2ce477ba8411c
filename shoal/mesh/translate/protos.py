"""Dicts in Envoy's JSON shape -> typed protobuf messages, and the type URLs we serve.

Translation builds resources as dicts in the same shape as Envoy's YAML documentation
(easy to read next to Envoy docs and Istio's config_dump), then `to_proto` parses them
into the typed message with protobuf's json_format. Parsing rejects a misspelled field
or a wrong type at translation time, long before Envoy sees it. Every message type a
nested `typed_config` names must be imported here so the descriptor pool knows it.
"""

from __future__ import annotations

import collections
import json
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

# Imported for their descriptors (typed_config "@type" lookups) and message classes.
from envoy.config.bootstrap.v3 import bootstrap_pb2  # noqa: F401
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2  # noqa: F401
from envoy.extensions.filters.listener.original_dst.v3 import original_dst_pb2  # noqa: F401
from envoy.extensions.filters.listener.tls_inspector.v3 import tls_inspector_pb2  # noqa: F401
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2  # noqa: F401
from envoy.extensions.transport_sockets.raw_buffer.v3 import raw_buffer_pb2  # noqa: F401
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2, tls_pb2  # noqa: F401
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2  # noqa: F401

from shoal.mesh.errors import TranslateError
from shoal.mesh.translate import fastparse

_PREFIX = "type.googleapis.com/"
CLUSTER = _PREFIX + "envoy.config.cluster.v3.Cluster"
ENDPOINT = _PREFIX + "envoy.config.endpoint.v3.ClusterLoadAssignment"
LISTENER = _PREFIX + "envoy.config.listener.v3.Listener"
ROUTE = _PREFIX + "envoy.config.route.v3.RouteConfiguration"
SECRET = _PREFIX + "envoy.extensions.transport_sockets.tls.v3.Secret"
HCM = _PREFIX + "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"

MESSAGE_TYPES: dict[str, type[Message]] = {
    CLUSTER: cluster_pb2.Cluster,
    ENDPOINT: endpoint_pb2.ClusterLoadAssignment,
    LISTENER: listener_pb2.Listener,
    ROUTE: route_pb2.RouteConfiguration,
    SECRET: secret_pb2.Secret,
}

ADS_SOURCE: dict[str, Any] = {"ads": {}, "resource_api_version": "V3"}
"""ConfigSource for anything fetched over the ADS stream (EDS, RDS, SDS)."""


def typed(type_name: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """A typed_config dict: {"@type": type.googleapis.com/<type_name>, ...body}."""
    return {"@type": _PREFIX + type_name, **(body or {})}


_PARSED: "collections.OrderedDict[tuple[str, str], Message]" = collections.OrderedDict()
_PARSED_MAX = 8192


def to_proto(type_url: str, body: dict[str, Any]) -> Message:
    """Parse `body` into the message for type_url; raise TranslateError naming the resource.

    `fastparse` builds the message for the shapes translation writes and hands anything
    else to json_format (exact, but ~1 ms for a cluster with TLS). Resources rarely change
    between two states, so results are memoized by their canonical JSON (an LRU of
    8192). The returned messages are shared: treat them as immutable."""
    key = (type_url, json.dumps(body, sort_keys=True, separators=(",", ":")))
    cached = _PARSED.get(key)
    if cached is not None:
        _PARSED.move_to_end(key)
        return cached
    cls = MESSAGE_TYPES[type_url]
    try:
        message = fastparse.parse(body, cls())
    except fastparse.Unsupported:
        try:
            message = json_format.ParseDict(body, cls())
        except json_format.ParseError as exc:
            name = body.get("name") or body.get("cluster_name") or "?"
            raise TranslateError(f"{cls.__name__} {name!r}: {exc}") from None
    _PARSED[key] = message
    if len(_PARSED) > _PARSED_MAX:
        _PARSED.popitem(last=False)
    return message


def to_dict(message: Message) -> dict[str, Any]:
    """The JSON shape of a message (field names as in Envoy's docs)."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def resource_name(message: Message) -> str:
    """The xDS name of a resource (cluster_name for ClusterLoadAssignment)."""
    if isinstance(message, endpoint_pb2.ClusterLoadAssignment):
        return message.cluster_name
    return message.name  # type: ignore[attr-defined]


def hcm_of(filter_: listener_pb2.Filter) -> hcm_pb2.HttpConnectionManager | None:
    """The HttpConnectionManager a network filter carries, or None."""
    if filter_.typed_config.type_url != HCM:
        return None
    hcm = hcm_pb2.HttpConnectionManager()
    filter_.typed_config.Unpack(hcm)
    return hcm
