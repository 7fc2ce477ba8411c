"""Telemetry pieces of a sidecar's Envoy config: access logs to the mesh's metrics
service, and the 15090 page that adds Istio's standard metrics to Envoy's own. Pure.

Stock Envoy has no Istio stats filter, so Envoy does not count Istio's series itself:
every HTTP stream and TCP connection of the inbound and outbound listeners is reported,
as one OpenTelemetry log record, to the metrics service in the daemon
(`shoal.mesh.telemetry`), which counts them into `istio_requests_total` and the rest
with the labels it resolves from cluster state. The record carries what only Envoy
knows, as command-operator values (`ACCESS_LOG_FIELDS`): response code and flags,
peer certificates, addresses, cluster, duration, bytes. `log_name` tells the side:
`inbound` (reporter=destination) or `outbound` (reporter=source).

TCP proxies also log when the upstream connection is made (connections opened) and
every `TCP_FLUSH_INTERVAL` while it lasts (bytes so far), as Istio reports TCP bytes
while a connection is open.

The records go over a Unix socket next to the xDS socket (`ALS_SOCKET` in the same
directory, which the node agent mounts into the sidecar): cluster `TELEMETRY_CLUSTER`.
The 15090 listener routes GET /stats/prometheus to Envoy's admin as before; a Lua
filter then appends the metrics service's page for this proxy, fetched over
`STATS_SOCKET` (cluster `STATS_CLUSTER`) with the proxy's node id in `NODE_HEADER`.
If the service does not answer, the page is Envoy's own stats alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Imported for their descriptors: translation parses these typed_configs.
from envoy.extensions.access_loggers.open_telemetry.v3 import logs_service_pb2  # noqa: F401
from envoy.extensions.filters.http.lua.v3 import lua_pb2  # noqa: F401

from shoal.mesh.translate.protos import typed

Obj = dict[str, Any]

INBOUND = "inbound"
OUTBOUND = "outbound"
"""log_name of the records of each side (the metrics service's `reporter`)."""

ALS_SOCKET = "als.sock"
STATS_SOCKET = "stats.sock"
TELEMETRY_CLUSTER = "shoal-telemetry"
STATS_CLUSTER = "shoal-telemetry-stats"
NODE_HEADER = "x-shoal-node"
STATS_PATH = "/stats/prometheus"

FLUSH_INTERVAL = "0.5s"
"""How long a record may wait in the sidecar before it is sent (or 64 KiB of them)."""
BUFFER_BYTES = 65536
TCP_FLUSH_INTERVAL = "5s"

ACCESS_LOG_FIELDS: tuple[tuple[str, str], ...] = (
    ("log_type", "%ACCESS_LOG_TYPE%"),
    ("connection_id", "%CONNECTION_ID%"),
    ("response_code", "%RESPONSE_CODE%"),
    ("response_flags", "%RESPONSE_FLAGS%"),
    ("grpc_status", "%GRPC_STATUS_NUMBER%"),
    ("content_type", "%REQ(CONTENT-TYPE)%"),
    ("authority", "%REQ(:AUTHORITY)%"),
    ("duration_ms", "%DURATION%"),
    ("bytes_received", "%BYTES_RECEIVED%"),
    ("bytes_sent", "%BYTES_SENT%"),
    ("request_headers_bytes", "%REQUEST_HEADERS_BYTES%"),
    ("response_headers_bytes", "%RESPONSE_HEADERS_BYTES%"),
    ("downstream_peer", "%DOWNSTREAM_PEER_URI_SAN%"),
    ("downstream_ip", "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"),
    ("downstream_local", "%DOWNSTREAM_LOCAL_ADDRESS%"),
    ("upstream_peer", "%UPSTREAM_PEER_URI_SAN%"),
    ("upstream_host", "%UPSTREAM_HOST%"),
    ("upstream_cluster", "%UPSTREAM_CLUSTER%"),
)
"""The fields of a record (name, Envoy command operator), in order; `-` or empty when
Envoy does not know the value. The record's body is their values joined by
`FIELD_SEPARATOR`: one string per record, which the metrics service splits (decoding
one OTLP attribute per field costs it several times more)."""
FIELD_SEPARATOR = "\x1f"
"""ASCII unit separator: a control character, which no header value (Envoy refuses
them), certificate URI or address can contain."""


def access_logs(side: str) -> list[Obj]:
    """The `access_log` list of an HTTP connection manager or tcp_proxy on `side`."""
    if side not in (INBOUND, OUTBOUND):
        raise ValueError(f"side {side!r}: expected {INBOUND!r} or {OUTBOUND!r}")
    return [{
        "name": "envoy.access_loggers.open_telemetry",
        "typed_config": typed(
            "envoy.extensions.access_loggers.open_telemetry.v3.OpenTelemetryAccessLogConfig", {
                "common_config": {
                    "log_name": side,
                    "transport_api_version": "V3",
                    "grpc_service": {"envoy_grpc": {"cluster_name": TELEMETRY_CLUSTER}},
                    "buffer_flush_interval": FLUSH_INTERVAL,
                    "buffer_size_bytes": BUFFER_BYTES,
                },
                "body": {"string_value": FIELD_SEPARATOR.join(op for _, op in ACCESS_LOG_FIELDS)},
            }),
    }]


def tcp_proxy_logging(side: str) -> Obj:
    """Fields to merge into a tcp_proxy config: access logs, plus one record when the
    upstream connection is up and one every TCP_FLUSH_INTERVAL while it lasts."""
    return {"access_log": access_logs(side),
            "access_log_options": {"flush_access_log_on_connected": True,
                                   "access_log_flush_interval": TCP_FLUSH_INTERVAL}}


def bootstrap_clusters(socket_dir: str | Path) -> list[Obj]:
    """Static clusters of the bootstrap: the record stream (gRPC, HTTP/2) and the
    metrics page (HTTP/1.1), both over Unix sockets in `socket_dir`."""
    def pipe_cluster(name: str, path: str, http2: bool) -> Obj:
        cluster: Obj = {
            "name": name, "type": "STATIC", "connect_timeout": "1s",
            "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
                {"endpoint": {"address": {"pipe": {"path": path}}}}]}]},
        }
        if http2:
            cluster["typed_extension_protocol_options"] = {
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": typed(
                    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    {"explicit_http_config": {"http2_protocol_options": {}}})}
        return cluster
    base = Path(socket_dir)
    return [pipe_cluster(TELEMETRY_CLUSTER, str(base / ALS_SOCKET), True),
            pipe_cluster(STATS_CLUSTER, str(base / STATS_SOCKET), False)]


_MERGE_SCRIPT = """
function envoy_on_request(request_handle)
end

function envoy_on_response(response_handle)
  if response_handle:headers():get(":status") ~= "200" then
    return
  end
  -- buffer Envoy's page first (it would stream on while httpCall waits); the buffer
  -- object does not survive the yield, its bytes do
  local page = response_handle:body(true)
  local text = page:getBytes(0, page:length())
  local headers, body = response_handle:httpCall("%(cluster)s", {
    [":method"] = "GET", [":path"] = "%(path)s", [":authority"] = "%(cluster)s",
    ["%(header)s"] = "%(node)s",
  }, "", 2000)
  if headers[":status"] ~= "200" or body == nil or body == "" then
    return
  end
  response_handle:body(true):setBytes(text .. body)
end
"""


def prometheus_filters(node_id: str) -> list[Obj]:
    """HTTP filters of the 15090 listener before its router: append this proxy's Istio
    series to Envoy's stats page."""
    if not node_id or any(c in node_id for c in '"\\\n'):
        raise ValueError(f"node id {node_id!r}: expected a non-empty id without quotes")
    code = _MERGE_SCRIPT % {"cluster": STATS_CLUSTER, "path": STATS_PATH,
                            "header": NODE_HEADER, "node": node_id}
    return [{"name": "envoy.filters.http.lua",
             "typed_config": typed("envoy.extensions.filters.http.lua.v3.Lua",
                                   {"default_source_code": {"inline_string": code}})}]
