"""Access-log records from sidecars (OTLP log records) -> `Record` values. Pure.

A sidecar's OpenTelemetry access logger (see `shoal.mesh.translate.telemetry`) sends
`ExportLogsServiceRequest`s: per `ResourceLogs`, the resource attributes `log_name`
(`inbound` / `outbound`) and `node_name` (the proxy's node id), and per log record a
string body: the values of `telemetry.ACCESS_LOG_FIELDS`, in order, joined by
`telemetry.FIELD_SEPARATOR`. `parse_export` turns one
request into `Record`s and a list of what it refused (a malformed record is refused
alone, never the whole batch): the metrics service counts only what parses.

Envoy writes `-` for a value it does not have; `Record` holds "" for those strings and
0 for those numbers.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable

from shoal.mesh.translate import model, telemetry

HTTP_END = "DownstreamEnd"
TCP_CONNECTED = "TcpUpstreamConnected"
TCP_PERIODIC = "TcpPeriodic"
TCP_END = "TcpConnectionEnd"
TCP_TYPES = (TCP_CONNECTED, TCP_PERIODIC, TCP_END)
SIDES = (telemetry.INBOUND, telemetry.OUTBOUND)

_NUMBERS = ("response_code", "duration_ms", "bytes_received", "bytes_sent",
            "request_headers_bytes", "response_headers_bytes")
_MAX_VALUE = 256
"""Longest attribute value kept (certificate URIs, authorities); longer is malformed."""


@dataclasses.dataclass(frozen=True)
class Record:
    """One access-log entry of one proxy: an HTTP stream or a TCP connection event."""

    side: str
    """`inbound` (the proxy is the destination) or `outbound` (it is the source)."""
    node: str
    log_type: str
    connection_id: str = ""
    response_code: int = 0
    response_flags: str = ""
    grpc_status: str = ""
    content_type: str = ""
    authority: str = ""
    duration_ms: int = 0
    bytes_received: int = 0
    bytes_sent: int = 0
    request_headers_bytes: int = 0
    response_headers_bytes: int = 0
    downstream_peer: str = ""
    downstream_ip: str = ""
    downstream_local: str = ""
    upstream_peer: str = ""
    upstream_host: str = ""
    upstream_cluster: str = ""

    @property
    def tcp(self) -> bool:
        return self.log_type in TCP_TYPES


class RecordError(ValueError):
    """A record that cannot be counted; the message names the attribute."""


_FIELDS = tuple(name for name, _ in telemetry.ACCESS_LOG_FIELDS)
_NUMBER_AT = tuple(i for i, name in enumerate(_FIELDS) if name in _NUMBERS)


def parse_record(side: str, node: str, body: str) -> Record:
    """A Record from one log record's body; RecordError names what is wrong."""
    if side not in SIDES:
        raise RecordError(f"resource attribute log_name {side!r}: expected one of {SIDES}")
    if not node:
        raise RecordError("resource attribute node_name: missing")
    raw = body.split(telemetry.FIELD_SEPARATOR)
    if len(raw) != len(_FIELDS):
        raise RecordError(f"body: expected {len(_FIELDS)} fields separated by \\x1f, "
                          f"got {len(raw)}")
    if max(map(len, raw)) > _MAX_VALUE:
        name = _FIELDS[max(range(len(raw)), key=lambda i: len(raw[i]))]
        raise RecordError(f"field {name}: longer than {_MAX_VALUE} characters")
    values: list[object] = ["" if v == "-" else v for v in raw]
    for i in _NUMBER_AT:
        value = values[i]
        if not value:
            values[i] = 0
        elif value.isdigit() and value.isascii():  # type: ignore[union-attr]
            values[i] = int(value)  # type: ignore[arg-type]
        else:
            raise RecordError(f"field {_FIELDS[i]} {value!r}: expected a number")
    if not values[0]:
        raise RecordError("field log_type: missing")
    return Record(side, node, *values)  # type: ignore[arg-type]


def parse_export(request, bound: tuple[str, str] | None = None) -> tuple[list[Record], list[str]]:
    """(records, problems) of an `ExportLogsServiceRequest`.

    bound: (namespace, pod) the socket belongs to; when given, records of another
    node are refused (one sidecar must not count for another)."""
    records: list[Record] = []
    problems: list[str] = []
    for resource_logs in request.resource_logs:
        resource = _strings(resource_logs.resource.attributes)
        side, node = resource.get("log_name", ""), resource.get("node_name", "")
        for scope_logs in resource_logs.scope_logs:
            for log_record in scope_logs.log_records:
                if bound is not None and node_pod(node) != bound:
                    problems.append(f"node {node!r}: this socket serves pod {bound[0]}/{bound[1]}")
                    continue
                try:
                    records.append(parse_record(side, node, log_record.body.string_value))
                except RecordError as exc:
                    problems.append(str(exc))
    return records, problems


def node_pod(node: str) -> tuple[str, str] | None:
    """(namespace, pod) a node id names, None when it is not a sidecar node id."""
    try:
        _, pod, namespace = model.parse_node_id(node)
    except ValueError:
        return None
    return namespace, pod


def _strings(attributes: Iterable) -> dict[str, str]:
    return {kv.key: kv.value.string_value for kv in attributes}
