"""Istio's standard metrics, counted from access-log records, per proxy. Pure.

Every HTTP record (`DownstreamEnd`) adds 1 to `istio_requests_total` and one
observation to each histogram (`istio_request_duration_milliseconds`,
`istio_request_bytes` = request headers + body, `istio_response_bytes` = response
headers + body), with Envoy's default buckets, which are the ones Istio's sidecars
render. TCP records follow the connection: `TcpUpstreamConnected` opens it, periodic
records and `TcpConnectionEnd` add the bytes since the connection's previous record
(Envoy reports totals so far), the end closes it; a connection whose upstream never
connected counts as opened and closed at its end. So every record counts exactly once.

`ProxyMetrics.render()` gives the Prometheus text exposition (version 0.0.4) of one
proxy's series, to be appended to Envoy's own `/stats/prometheus` page.
Not thread-safe: the metrics service calls it from one event loop.
"""

from __future__ import annotations

import bisect
import collections
import dataclasses
from typing import Iterable

from shoal.mesh.telemetry import labels as istio_labels
from shoal.mesh.telemetry.records import HTTP_END, TCP_END, Record
from shoal.mesh.telemetry.workloads import Workload, WorkloadIndex

BUCKETS_MS = (0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000,
              300000, 600000, 1800000, 3600000)
"""Envoy's default histogram buckets, which Istio's metrics use (ms for durations)."""
BYTES_BUCKETS = BUCKETS_MS

REQUESTS = "istio_requests_total"
DURATION = "istio_request_duration_milliseconds"
REQUEST_BYTES = "istio_request_bytes"
RESPONSE_BYTES = "istio_response_bytes"
TCP_SENT = "istio_tcp_sent_bytes_total"
TCP_RECEIVED = "istio_tcp_received_bytes_total"
TCP_OPENED = "istio_tcp_connections_opened_total"
TCP_CLOSED = "istio_tcp_connections_closed_total"
COUNTERS = (REQUESTS, TCP_SENT, TCP_RECEIVED, TCP_OPENED, TCP_CLOSED)
HISTOGRAMS = (DURATION, REQUEST_BYTES, RESPONSE_BYTES)

MAX_OPEN_CONNECTIONS = 65536
"""Open TCP connections tracked per proxy; beyond, the oldest is forgotten (its later
bytes count from zero again, so only a proxy that lost its end records over-counts)."""
MAX_CACHED_KEYS = 4096
MAX_SERIES = 20000
"""Series per proxy; records that would make more are counted in `dropped` instead."""


@dataclasses.dataclass
class Histogram:
    buckets: list[int]
    sum: float = 0.0
    count: int = 0

    def observe(self, value: float, bounds: tuple[float, ...]) -> None:
        self.buckets[bisect.bisect_left(bounds, value)] += 1
        self.sum += value
        self.count += 1


class ProxyMetrics:
    """The Istio series of one proxy."""

    def __init__(self, own: Workload) -> None:
        self.own = own
        self.counters: dict[tuple[str, tuple[str, ...]], int] = {}
        self.histograms: dict[tuple[str, tuple[str, ...]], Histogram] = {}
        self._open: collections.OrderedDict[str, tuple[int, int]] = collections.OrderedDict()
        self.dropped = 0
        self.records = 0
        self._keys: dict[tuple, tuple[str, ...]] = {}
        """Label values by the record fields they depend on, for one index: most
        records repeat a few peers, codes and clusters."""
        self._keys_index: WorkloadIndex | None = None

    def add(self, record: Record, index: WorkloadIndex) -> None:
        self.records += 1
        if index is not self._keys_index or len(self._keys) > MAX_CACHED_KEYS:
            self._keys, self._keys_index = {}, index
        if record.tcp:
            self._add_tcp(record, index)
        elif record.log_type == HTTP_END:
            self._add_http(record, index)

    def _series_full(self, key: tuple[str, tuple[str, ...]]) -> bool:
        full = key not in self.counters and key not in self.histograms and (
            len(self.counters) + len(self.histograms) >= MAX_SERIES)
        if full:
            self.dropped += 1
        return full

    def _count(self, metric: str, key: tuple[str, ...], amount: int) -> None:
        series = (metric, key)
        if amount and not self._series_full(series):
            self.counters[series] = self.counters.get(series, 0) + amount

    def _observe(self, metric: str, key: tuple[str, ...], value: float) -> None:
        series = (metric, key)
        if self._series_full(series):
            return
        histogram = self.histograms.get(series)
        if histogram is None:
            histogram = self.histograms[series] = Histogram([0] * (len(BUCKETS_MS) + 1))
        histogram.observe(value, BUCKETS_MS)

    def _key(self, record: Record, index: WorkloadIndex) -> tuple[str, ...]:
        signature = (record.side, record.tcp, record.downstream_peer, record.downstream_ip,
                     record.downstream_local, record.authority, record.upstream_peer,
                     record.upstream_host, record.upstream_cluster, record.response_code,
                     record.response_flags, record.grpc_status, record.content_type)
        key = self._keys.get(signature)
        if key is None:
            labels = istio_labels.record_labels(record, self.own, index)
            key = self._keys[signature] = (istio_labels.tcp_key(labels) if record.tcp
                                           else istio_labels.request_key(labels))
        return key

    def _add_http(self, record: Record, index: WorkloadIndex) -> None:
        key = self._key(record, index)
        self._count(REQUESTS, key, 1)
        self._observe(DURATION, key, record.duration_ms)
        self._observe(REQUEST_BYTES, key, record.request_headers_bytes + record.bytes_received)
        self._observe(RESPONSE_BYTES, key, record.response_headers_bytes + record.bytes_sent)

    def _add_tcp(self, record: Record, index: WorkloadIndex) -> None:
        key = self._key(record, index)
        connection = record.connection_id
        known = connection in self._open
        received, sent = self._open.pop(connection, (0, 0))
        if not known:
            self._count(TCP_OPENED, key, 1)
        self._count(TCP_RECEIVED, key, max(record.bytes_received - received, 0))
        self._count(TCP_SENT, key, max(record.bytes_sent - sent, 0))
        if record.log_type == TCP_END:
            self._count(TCP_CLOSED, key, 1)
            return
        self._open[connection] = (max(record.bytes_received, received), max(record.bytes_sent, sent))
        while len(self._open) > MAX_OPEN_CONNECTIONS:
            self._open.popitem(last=False)

    def render(self) -> str:
        lines: list[str] = []
        for metric in COUNTERS:
            series = sorted((k, v) for (m, k), v in self.counters.items() if m == metric)
            if not series:
                continue
            names = istio_labels.REQUEST_LABELS if metric == REQUESTS else istio_labels.TCP_LABELS
            lines.append(f"# TYPE {metric} counter")
            lines += [f"{metric}{{{_labels(names, key)}}} {value}" for key, value in series]
        for metric in HISTOGRAMS:
            series_h = sorted((k, h) for (m, k), h in self.histograms.items() if m == metric)
            if not series_h:
                continue
            lines.append(f"# TYPE {metric} histogram")
            for key, histogram in series_h:
                text = _labels(istio_labels.REQUEST_LABELS, key)
                cumulative = 0
                for bound, count in zip(BUCKETS_MS + (float("inf"),), histogram.buckets):
                    cumulative += count
                    lines.append(f'{metric}_bucket{{{text},le="{_number(bound)}"}} {cumulative}')
                lines.append(f"{metric}_sum{{{text}}} {_number(histogram.sum)}")
                lines.append(f"{metric}_count{{{text}}} {histogram.count}")
        return "".join(line + "\n" for line in lines)


class MetricsRegistry:
    """ProxyMetrics per proxy, keyed by (namespace, pod)."""

    def __init__(self) -> None:
        self._proxies: dict[tuple[str, str], ProxyMetrics] = {}

    def proxy(self, key: tuple[str, str], own: Workload) -> ProxyMetrics:
        metrics = self._proxies.get(key)
        if metrics is None:
            metrics = self._proxies[key] = ProxyMetrics(own)
        elif metrics.own != own and own.name != "unknown":
            metrics.own = own  # relabelled pod: later records use its new labels
        return metrics

    def get(self, key: tuple[str, str]) -> ProxyMetrics | None:
        return self._proxies.get(key)

    def forget(self, key: tuple[str, str]) -> None:
        self._proxies.pop(key, None)

    def keys(self) -> Iterable[tuple[str, str]]:
        return list(self._proxies)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: tuple[str, ...], values: tuple[str, ...]) -> str:
    return ",".join(f'{n}="{_escape(v)}"' for n, v in zip(names, values))


def _number(value: float) -> str:
    if value == float("inf"):
        return "+Inf"
    return str(int(value)) if float(value).is_integer() else repr(float(value))
