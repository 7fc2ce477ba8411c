"""Mesh edges from sidecar telemetry: Envoy's Prometheus stats in, per-edge facts out.

An *edge* is (caller workload -> service) with what carried it in one measured run:
requests, success rate, latency quantiles, and its mTLS evidence. Everything here is
pure; the caller does the I/O (reads `/stats/prometheus` on a sidecar's :15090 through
the API's `pods/NAME:15090/proxy/...`, and the sidecar's `/certs` and `/config_dump`)
and hands the documents in.

Stats are read in the Prometheus exposition Envoy serves on 15090, with Envoy's
*default* tag extraction (shoal's bootstrap adds no `stats_tags`): the
`envoy_cluster_name` tag is the cluster name up to its first dot, and the rest of the
name is folded into the metric name (`cluster.outbound|80||ratings.ns.svc.cluster.local.
upstream_rq_total` is served as `envoy_cluster_ns_svc_cluster_local_upstream_rq_total
{envoy_cluster_name="outbound|80||ratings"}`); `upstream_rq_5xx` becomes
`upstream_rq_xx{envoy_response_code_class="5"}`; `listener.0.0.0.0_15006.X` carries
`envoy_listener_address`. `series(stat)` is that mapping, so callers name stats the way
Envoy's docs do. Latency comes from the cumulative Prometheus buckets, interpolated the
way PromQL's `histogram_quantile` does.

The mTLS proof per edge does not assume anything the mesh was told: the caller's cluster
pins the server's SPIFFE IDs (config_dump), every connection it opened completed a TLS
handshake (`ssl.handshake` >= connections), the servers' inbound listener counted
handshakes, and the server app saw the caller's SPIFFE ID in x-forwarded-client-cert
(`hops`, set by the server's sidecar after the handshake).
"""

from __future__ import annotations

import collections
import dataclasses
import math
import re
from typing import Any, Iterable

Obj = dict[str, Any]
Labels = frozenset[tuple[str, str]]
SeriesKey = tuple[str, Labels]
"""(metric name, label set) of one Prometheus series."""

SIDECAR = "istio-proxy"
INBOUND_HANDSHAKES = "listener.0.0.0.0_15006.ssl.handshake"
CLUSTER_COUNTERS = ("upstream_rq_total", "upstream_rq_completed", "upstream_rq_2xx",
                    "upstream_rq_5xx", "upstream_cx_total", "upstream_cx_connect_fail",
                    "ssl.handshake")
RQ_TIME = "upstream_rq_time"
UPTIME = "server.uptime"
STATS_FILTER = r"^cluster\.outbound\||^listener\.0\.0\.0\.0_15006\.ssl\.handshake$|^server\.uptime$"
"""Envoy's `?filter=` for the stats an edge needs (matched against full stat names)."""

_SERIES = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
_UNSAFE = re.compile(r"[^a-zA-Z0-9_]")
_LISTENER = re.compile(r"^listener\.((?:[_.0-9]*|[_\[\]a-fA-F0-9]*))\.")
_CODE_CLASS = re.compile(r"_rq_(\d)xx$")


# --------------------------------------------------------------------------------------
# Prometheus exposition.


@dataclasses.dataclass
class SidecarStats:
    """One sidecar's counters/gauges and cumulative histograms (upper bound -> count)."""
    counters: dict[SeriesKey, float] = dataclasses.field(default_factory=dict)
    histograms: dict[SeriesKey, dict[float, float]] = dataclasses.field(default_factory=dict)

    def counter(self, stat: str) -> float:
        """The value of Envoy stat `stat` (full Envoy name), 0 when not served."""
        return self.counters.get(series(stat), 0)

    def histogram(self, stat: str) -> dict[float, float]:
        return self.histograms.get(series(stat), {})


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), value)


def parse_prometheus(text: str) -> SidecarStats:
    """Prometheus text exposition (Envoy's `/stats/prometheus`) -> SidecarStats.

    `NAME_bucket{..., le="X"}` lines become histograms keyed by NAME and the other
    labels; `_sum`/`_count` of a histogram are dropped (the +Inf bucket is the count);
    every other sample is a counter/gauge. Comments and malformed lines are skipped."""
    out = SidecarStats()
    histogram_names: set[str] = set()
    lines = text.splitlines()
    for line in lines:
        if line.startswith("# TYPE ") and line.rstrip().endswith(" histogram"):
            histogram_names.add(line.split()[2])
    for line in lines:
        if not line or line.startswith("#"):
            continue
        match = _SERIES.match(line)
        if match is None:
            continue
        name, raw_labels, raw_value = match.groups()
        try:
            value = float(raw_value)
        except ValueError:
            continue
        labels = {k: _unescape(v) for k, v in _LABEL.findall(raw_labels or "")}
        if name.endswith("_bucket") and "le" in labels:
            le = labels.pop("le")
            try:
                bound = math.inf if le in ("+Inf", "Inf") else float(le)
            except ValueError:
                continue
            key = (name[: -len("_bucket")], frozenset(labels.items()))
            out.histograms.setdefault(key, {})[bound] = value
            continue
        base = name.rsplit("_", 1)[0]
        if base in histogram_names and name.endswith(("_sum", "_count")):
            continue
        out.counters[(name, frozenset(labels.items()))] = value
    return out


def series(stat: str) -> SeriesKey:
    """Envoy stat name -> the Prometheus series Envoy serves it as (default tags)."""
    labels: dict[str, str] = {}
    rest = stat
    if rest.startswith("cluster."):
        name, dot, tail = rest[len("cluster."):].partition(".")
        if dot:
            labels["envoy_cluster_name"] = name
            rest = "cluster." + tail
    elif (m := _LISTENER.match(rest)) and m.group(1):
        labels["envoy_listener_address"] = m.group(1)
        rest = "listener." + rest[m.end():]
    if m := _CODE_CLASS.search(rest):
        labels["envoy_response_code_class"] = m.group(1)
        rest = rest[: m.start()] + "_rq_xx"
    return "envoy_" + _UNSAFE.sub("_", rest), frozenset(labels.items())


def diff_stats(before: SidecarStats | None, after: SidecarStats) -> SidecarStats:
    """What happened between two snapshots of the same sidecar (a restarted sidecar,
    whose counters went down, counts from zero)."""
    if before is None:
        return after
    counters = {}
    for key, value in after.counters.items():
        old = before.counters.get(key, 0)
        counters[key] = value - old if value >= old else value
    histograms = {}
    for key, buckets in after.histograms.items():
        old = before.histograms.get(key, {})
        delta = {le: count - old.get(le, 0) for le, count in buckets.items()}
        histograms[key] = delta if all(v >= 0 for v in delta.values()) else dict(buckets)
    return SidecarStats(counters, histograms)


def merge_buckets(histograms: Iterable[dict[float, float]]) -> dict[float, float]:
    total: collections.Counter = collections.Counter()
    for buckets in histograms:
        total.update(buckets)
    return dict(total)


def quantile_ms(buckets: dict[float, float], q: float) -> float | None:
    """Quantile q (0..1) of cumulative buckets (upper bound -> count), interpolated
    linearly inside its bucket as PromQL's histogram_quantile does (a quantile in the
    +Inf bucket is the highest finite bound). None when the histogram is empty."""
    bounds = sorted(buckets)
    total = buckets.get(math.inf, buckets[bounds[-1]] if bounds else 0)
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for upper in bounds:
        count = buckets[upper]
        if count >= rank:
            if math.isinf(upper):
                return round(lower, 2)
            if count == below:
                return round(upper, 2)
            return round(lower + (upper - lower) * (rank - below) / (count - below), 2)
        lower, below = upper, count
    return round(lower, 2)


def samples(buckets: dict[float, float]) -> float:
    """How many observations a cumulative histogram holds."""
    return max(buckets.values()) if buckets else 0


# --------------------------------------------------------------------------------------
# Pods, clusters and identities.


def service_clusters(stats: SidecarStats, namespace: str, domain: str) -> dict[str, str]:
    """{cluster name: service} for the outbound clusters of services in `namespace`."""
    suffix = f".{namespace}.svc.{domain}"
    metric = series(f"cluster.x{suffix}.upstream_rq_total")[0]
    found = {}
    for name, labels in stats.counters:
        tags = dict(labels)
        cluster = tags.get("envoy_cluster_name", "")
        if name == metric and cluster.startswith("outbound|") and len(tags) == 1:
            found[cluster + suffix] = cluster.rsplit("|", 1)[-1]
    return found


def workload_of(pod: Obj) -> str:
    """The Deployment a pod belongs to (pod name minus the ReplicaSet and pod hashes)."""
    name = pod["metadata"]["name"]
    owners = pod["metadata"].get("ownerReferences") or []
    if owners and owners[0].get("kind") == "ReplicaSet":
        return owners[0]["name"].rsplit("-", 1)[0]
    return (pod["metadata"].get("labels") or {}).get("app", name)


def selects(selector: dict[str, str], pod: Obj) -> bool:
    labels = pod["metadata"].get("labels") or {}
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def has_sidecar(pod: Obj) -> bool:
    """The injected Envoy: a container, or a native sidecar (restartable init container)."""
    spec = pod.get("spec") or {}
    return any(c.get("name") == SIDECAR for c in (spec.get("containers") or [])
               + (spec.get("initContainers") or []))


def cert_identities(certs: Obj) -> list[str]:
    """The SPIFFE IDs of a sidecar's own certificate chain (`/certs`)."""
    ids = []
    for entry in certs.get("certificates", []):
        for cert in entry.get("cert_chain", []):
            ids += [san["uri"] for san in cert.get("subject_alt_names", []) if "uri" in san]
    return sorted(set(ids))


def pinned_server_ids(clusters_dump: Obj) -> dict[str, list[str]]:
    """{cluster name: SPIFFE IDs its TLS context accepts from servers} (config_dump)."""
    def walk(node: Any, into: set[str]) -> None:
        if isinstance(node, dict):
            for matcher in node.get("match_typed_subject_alt_names", []) or []:
                exact = (matcher.get("matcher") or {}).get("exact")
                if exact:
                    into.add(exact)
            for value in node.values():
                walk(value, into)
        elif isinstance(node, list):
            for value in node:
                walk(value, into)

    pins = {}
    for config in clusters_dump.get("configs", []):
        for entry in config.get("dynamic_active_clusters") or [config]:
            cluster = entry.get("cluster") or {}
            if cluster.get("name"):
                ids: set[str] = set()
                walk(cluster, ids)
                pins[cluster["name"]] = sorted(ids)
    return pins


# --------------------------------------------------------------------------------------
# Edges.


@dataclasses.dataclass
class PodFacts:
    """Everything read from one pod and its sidecar."""
    pod: Obj
    workload: str
    identities: list[str]
    pins: dict[str, list[str]]
    before: SidecarStats | None
    after: SidecarStats

    @property
    def delta(self) -> SidecarStats:
        return diff_stats(self.before, self.after)


def build_edges(facts: list[PodFacts], services: list[Obj], hops: list[Obj],
                namespace: str, domain: str) -> list[Obj]:
    """One row per (caller workload, service) that carried requests in the measured run,
    with its mTLS evidence. `hops` are the (service, caller, server) identities the
    server apps saw in x-forwarded-client-cert."""
    selectors = {s["metadata"]["name"]: (s.get("spec") or {}).get("selector") or {} for s in services}
    grouped: dict[tuple[str, str], list[tuple[PodFacts, str]]] = collections.defaultdict(list)
    for f in facts:
        for cluster, service in service_clusters(f.after, namespace, domain).items():
            if f.delta.counter(f"cluster.{cluster}.upstream_rq_total") > 0:
                grouped[(f.workload, service)].append((f, cluster))
    edges = []
    for (caller, service), members in sorted(grouped.items()):
        count: collections.Counter = collections.Counter()
        cumulative: collections.Counter = collections.Counter()
        histograms = []
        caller_ids: set[str] = set()
        pinned: set[str] = set()
        for f, cluster in members:
            delta = f.delta
            for name in CLUSTER_COUNTERS:
                count[name] += int(delta.counter(f"cluster.{cluster}.{name}"))
                cumulative[name] += int(f.after.counter(f"cluster.{cluster}.{name}"))
            histograms.append(delta.histogram(f"cluster.{cluster}.{RQ_TIME}"))
            caller_ids.update(f.identities)
            pinned.update(f.pins.get(cluster, []))
        buckets = merge_buckets(histograms)
        servers = [f for f in facts if selects(selectors.get(service, {}), f.pod)]
        server_handshakes = int(sum(f.after.counter(INBOUND_HANDSHAKES) for f in servers))
        seen = [h for h in hops if h["service"] == service and h["caller"] in caller_ids]
        total = count["upstream_rq_total"]
        ok = min(total, count["upstream_rq_completed"] - count["upstream_rq_5xx"])
        connections = cumulative["upstream_cx_total"] - cumulative["upstream_cx_connect_fail"]
        evidence = {
            "client_tls_handshakes": cumulative["ssl.handshake"],
            "client_connections": connections,
            "server_tls_handshakes": server_handshakes,
            "pinned_server_ids": sorted(pinned),
            "xfcc_seen_by_server": [{"caller": h["caller"], "server": h["server"]} for h in seen],
        }
        mtls = (cumulative["ssl.handshake"] > 0 and cumulative["ssl.handshake"] >= connections
                and server_handshakes > 0 and bool(pinned) and bool(seen)
                and all(h["server"] in pinned for h in seen))
        edges.append({
            "caller": caller, "service": service, "requests": total,
            "success_rate": round(100.0 * ok / total, 2) if total else 0.0,
            "errors_5xx": count["upstream_rq_5xx"],
            "p50_ms": quantile_ms(buckets, 0.50), "p99_ms": quantile_ms(buckets, 0.99),
            "mtls": mtls,
            "caller_identity": sorted(caller_ids)[0] if len(caller_ids) == 1 else sorted(caller_ids),
            "server_identities": sorted({h["server"] for h in seen}),
            "evidence": evidence,
        })
    return edges


def disturbances(facts: list[PodFacts], edges: list[Obj], traffic: Obj) -> list[str]:
    """What made a measured run unrepresentative: a sidecar that restarted during it
    (its uptime went down), an edge below 100% success, a client-side failure."""
    found = []
    for f in facts:
        if f.before is not None and f.after.counter(UPTIME) < f.before.counter(UPTIME):
            found.append(f"the sidecar of {f.pod['metadata']['name']} restarted")
    found += [f"{e['caller']} -> {e['service']} at {e['success_rate']:g}%"
              for e in edges if e["success_rate"] != 100.0]
    failed = {code: n for code, n in (traffic.get("codes") or {}).items() if code != "200"}
    if failed:
        found.append(f"client saw {failed}")
    return found


def histograms_flushed(facts: list[PodFacts], namespace: str, domain: str) -> bool:
    """True once every edge's latency histogram holds as many samples as it completed
    requests (Envoy merges histograms on its stats flush, every few seconds)."""
    for f in facts:
        delta = f.delta
        for cluster in service_clusters(f.after, namespace, domain):
            done = delta.counter(f"cluster.{cluster}.upstream_rq_completed")
            if done and samples(delta.histogram(f"cluster.{cluster}.{RQ_TIME}")) < done:
                return False
    return True
