"""`shoal demo`: shoal's whole story on this machine in one command (`make demo`).

What it does, in order, each step idempotent so a second run only re-checks:

1. starts the daemon if this state dir has none running (`shoal up -d`'s helper);
2. bootstraps the Debian base image `shoal-base/python:bookworm` (mmdebstrap) if it is
   missing, then builds the five bookstore images with the in-process `Builder` (layer
   cache: the second run is all cache hits);
3. applies examples/bookstore/bookstore.yaml (namespace `bookstore`, labelled
   `istio-injection=enabled`: every pod gets an Envoy sidecar, STRICT mTLS) and waits for
   every Deployment to be ready, with a live status display (rich on a terminal, plain
   lines otherwise);
4. sends traffic from *inside* the mesh: the `loadgen` pod (a client with a sidecar and
   SPIFFE identity of its own) is driven by `shoal exec` and calls frontend through its
   Service. Traffic from outside the mesh would be refused by STRICT mTLS, so this is
   the path that works: loadgen -> frontend -> catalog, frontend -> reviews (v1|v2) ->
   ratings. A warm-up (until consecutive successes) runs first, so the measured run does
   not race the xDS push that follows readiness;
5. reads every sidecar's Envoy admin API (127.0.0.1:15000 inside the pod netns) before
   and after the measured run, and reports each edge (caller workload -> service) from
   the *difference*: requests, success rate (non-5xx), p50/p99 from the cluster's
   `upstream_rq_time` histogram (detailed buckets, merged across the caller's pods);
6. proves mTLS per edge rather than assuming it: the caller's cluster pins the server's
   SPIFFE IDs (config_dump), every connection it opened completed a TLS handshake
   (`ssl.handshake` vs `upstream_cx_total`), the servers' inbound listener counted TLS
   handshakes, and the server app saw the caller's SPIFFE ID in
   `x-forwarded-client-cert` (set by its sidecar after the handshake; the apps echo it).

`shoal demo --down` deletes the namespace and waits until it is gone. `-o json` prints
the same facts as one JSON document (the tests assert on it). Exit status 1 when an
edge is below 100% or not proven mTLS.

Layout: pure functions (stats parsing, diffs, quantiles, edges, rendering) first, then
the I/O steps, then the command. Blocking work (builds, bootstrap, exec) runs in threads
or subprocesses; one event loop per command invocation.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import datetime as dt
import json
import os
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any, Callable, Iterable

import click

from shoal.api import errors, printers
from shoal.client import HttpClient
from shoal.cli.context import settings_from
from shoal.cli.daemon import _start_detached, api_ready, daemon_pid
from shoal.cli.resources import apply_object, read_manifests
from shoal.config import Settings

Obj = dict[str, Any]
Say = Callable[[str], None]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "bookstore"
APP = EXAMPLE / "bookstore.yaml"
NAMESPACE = "bookstore"
BASE_IMAGE = "shoal-base/python:bookworm"
BASE_PACKAGES = ("python3-minimal", "libpython3.11-stdlib")
SERVICES = ("frontend", "catalog", "reviews", "ratings", "loadgen")
IMAGE_TAG = "1.0"
LOADGEN = "loadgen"
READY_TIMEOUT_SECONDS = 240
WARMUP_SUCCESSES = 20
WARMUP_TIMEOUT_SECONDS = 90
TRAFFIC_SECONDS = 5
TRAFFIC_CONCURRENCY = 4
FLUSH_TIMEOUT_SECONDS = 15
INBOUND_HANDSHAKES = "listener.0.0.0.0_15006.ssl.handshake"
CLUSTER_COUNTERS = ("upstream_rq_total", "upstream_rq_completed", "upstream_rq_2xx",
                    "upstream_rq_5xx", "upstream_cx_total", "upstream_cx_connect_fail",
                    "ssl.handshake")
RQ_TIME = "upstream_rq_time"
SIDECAR = "istio-proxy"
UPTIME = "server.uptime"
MEASURE_ATTEMPTS = 3
SETTLE_SECONDS = 15
SETTLE_TIMEOUT_SECONDS = 150
IMAGE_ID_ANNOTATION = "demo.shoal.dev/image-id"


class DemoError(click.ClickException):
    """A demo step failed; the message names the step and what to look at."""


# --------------------------------------------------------------------------------------
# Pure: Envoy stats in, edge facts out.


@dataclasses.dataclass
class SidecarStats:
    """One sidecar's counters and detailed histograms (bucket (lower, width) -> count)."""
    counters: dict[str, int] = dataclasses.field(default_factory=dict)
    histograms: dict[str, collections.Counter] = dataclasses.field(default_factory=dict)


def parse_stats(document: Obj) -> SidecarStats:
    """`/stats?format=json&histogram_buckets=detailed` -> SidecarStats (cumulative values)."""
    out = SidecarStats()
    for entry in document.get("stats", []):
        if "histograms" in entry:
            for detail in entry["histograms"].get("details", []):
                buckets = collections.Counter()
                for b in detail.get("totals", []):
                    buckets[(float(b["lower_bound"]), float(b["width"]))] += int(b["count"])
                out.histograms[detail["name"]] = buckets
        elif isinstance(entry.get("value"), int):
            out.counters[entry["name"]] = entry["value"]
    return out


def diff_stats(before: SidecarStats | None, after: SidecarStats) -> SidecarStats:
    """What happened between two snapshots of the same sidecar (a restarted sidecar,
    whose counters went down, counts from zero)."""
    if before is None:
        return after
    counters = {}
    for name, value in after.counters.items():
        old = before.counters.get(name, 0)
        counters[name] = value - old if value >= old else value
    histograms = {}
    for name, buckets in after.histograms.items():
        old = before.histograms.get(name, collections.Counter())
        delta = collections.Counter({k: v - old.get(k, 0) for k, v in buckets.items()})
        histograms[name] = +delta if sum(delta.values()) >= 0 else buckets
    return SidecarStats(counters, histograms)


def quantile_ms(buckets: collections.Counter, q: float) -> float | None:
    """Quantile q (0..1) of a detailed histogram, interpolated inside its bucket."""
    total = sum(buckets.values())
    if total <= 0:
        return None
    target, seen = q * total, 0
    for (lower, width), count in sorted(buckets.items()):
        if count and seen + count >= target:
            return round(lower + width * (target - seen) / count, 2)
        seen += count
    lower, width = max(buckets)
    return round(lower + width, 2)


def service_clusters(stats: SidecarStats, namespace: str, domain: str) -> dict[str, str]:
    """{cluster name: service} for the outbound clusters of services in `namespace`."""
    suffix = f".{namespace}.svc.{domain}"
    found = {}
    for name in stats.counters:
        if not name.startswith("cluster.outbound|") or not name.endswith(".upstream_rq_total"):
            continue
        cluster = name[len("cluster."):-len(".upstream_rq_total")]
        host = cluster.split("|")[-1]
        if host.endswith(suffix):
            found[cluster] = host[: -len(suffix)]
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


@dataclasses.dataclass
class PodFacts:
    """Everything the demo read from one pod and its sidecar."""
    pod: Obj
    workload: str
    netns: str
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
            if f.delta.counters.get(f"cluster.{cluster}.upstream_rq_total", 0) > 0:
                grouped[(f.workload, service)].append((f, cluster))
    edges = []
    for (caller, service), members in sorted(grouped.items()):
        count = collections.Counter()
        cumulative = collections.Counter()
        buckets: collections.Counter = collections.Counter()
        caller_ids: set[str] = set()
        pinned: set[str] = set()
        for f, cluster in members:
            for name in CLUSTER_COUNTERS:
                count[name] += f.delta.counters.get(f"cluster.{cluster}.{name}", 0)
                cumulative[name] += f.after.counters.get(f"cluster.{cluster}.{name}", 0)
            buckets += f.delta.histograms.get(f"cluster.{cluster}.{RQ_TIME}", collections.Counter())
            caller_ids.update(f.identities)
            pinned.update(f.pins.get(cluster, []))
        servers = [f for f in facts if selects(selectors.get(service, {}), f.pod)]
        server_handshakes = sum(f.after.counters.get(INBOUND_HANDSHAKES, 0) for f in servers)
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
        if f.before is not None and f.after.counters.get(UPTIME, 0) < f.before.counters.get(UPTIME, 0):
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
            done = delta.counters.get(f"cluster.{cluster}.upstream_rq_completed", 0)
            samples = sum(delta.histograms.get(f"cluster.{cluster}.{RQ_TIME}", {}).values())
            if done and samples < done:
                return False
    return True


def columns(headers: list[str], rows: Iterable[list[Any]]) -> str:
    """Left-aligned text columns, like `shoal get`."""
    rows = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    lines = ["   ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines += ["   ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


def short_id(spiffe: Any) -> str:
    """spiffe://TD/ns/NS/sa/SA -> sa/SA (the table is narrow; JSON keeps the full ID)."""
    if isinstance(spiffe, list):
        return ",".join(short_id(s) for s in spiffe)
    return "sa/" + spiffe.rsplit("/sa/", 1)[-1] if spiffe and "/sa/" in spiffe else (spiffe or "?")


def render_edges(edges: list[Obj]) -> str:
    return columns(
        ["CALLER", "", "SERVICE", "REQUESTS", "SUCCESS", "P50", "P99", "MTLS", "IDENTITIES (caller -> server)"],
        [[e["caller"], "->", e["service"], e["requests"], f"{e['success_rate']:g}%",
          f"{e['p50_ms']}ms" if e["p50_ms"] is not None else "-",
          f"{e['p99_ms']}ms" if e["p99_ms"] is not None else "-",
          "yes" if e["mtls"] else "NO",
          f"{short_id(e['caller_identity'])} -> {short_id(e['server_identities'])}"]
         for e in edges])


def has_sidecar(pod: Obj) -> bool:
    """The injected Envoy: a container, or a native sidecar (restartable init container)."""
    spec = pod.get("spec") or {}
    return any(c.get("name") == SIDECAR for c in (spec.get("containers") or [])
               + (spec.get("initContainers") or []))


def pod_ready(pod: Obj) -> bool:
    """The pod's Ready condition (every container, sidecar included, passed readiness)."""
    status = pod.get("status") or {}
    ready = [c for c in status.get("conditions") or [] if c.get("type") == "Ready"]
    statuses = status.get("containerStatuses") or []
    return (bool(ready) and ready[0].get("status") == "True"
            and bool(statuses) and all(c.get("ready") for c in statuses))


# --------------------------------------------------------------------------------------
# I/O steps.


def _ensure_running(settings: Settings, say: Say) -> bool:
    if daemon_pid(settings) is not None and api_ready(settings):
        say(f"shoal is running: API {settings.api_url}")
        return False
    say("starting shoal ...")
    if say is _quiet:
        # _start_detached reports on stdout; keep -o json output one document
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            _start_detached(settings, "info")
    else:
        _start_detached(settings, "info")
    return True


def _quiet(_msg: str) -> None:
    pass


def _ensure_base_image(settings: Settings, say: Say) -> Obj:
    from shoal.images import ImageError, ImageNotFound, ImageStore

    store = ImageStore(settings.images_dir)
    try:
        image = store.resolve(BASE_IMAGE)
        say(f"base image {BASE_IMAGE}: present ({image.id.split(':')[1][:12]})")
        return {"name": BASE_IMAGE, "bootstrapped": False, "seconds": 0.0}
    except ImageNotFound:
        pass
    say(f"base image {BASE_IMAGE}: bootstrapping Debian bookworm with "
        f"{', '.join(BASE_PACKAGES)} (mmdebstrap, about a minute, once) ...")
    started = time.monotonic()
    try:
        store.bootstrap_debian(BASE_IMAGE, suite="bookworm", include=list(BASE_PACKAGES))
    except ImageError as exc:
        raise DemoError(f"bootstrapping {BASE_IMAGE} with mmdebstrap (needs a Debian mirror): "
                        f"{exc}") from None
    seconds = round(time.monotonic() - started, 1)
    say(f"base image {BASE_IMAGE}: built in {seconds}s")
    return {"name": BASE_IMAGE, "bootstrapped": True, "seconds": seconds}


async def _build_images(settings: Settings, say: Say, quiet: bool) -> list[Obj]:
    from shoal.builder import Builder, BuildOptions, make_progress
    from shoal.cli.build import CGROUP_PARENT
    from shoal.images import ImageStore
    from shoal.runtime import Runtime

    build_dir = settings.state_dir / "build"
    store = ImageStore(settings.images_dir)
    runtime = Runtime(build_dir / "containers", cgroup_parent=CGROUP_PARENT)
    # Step-by-step progress on a terminal (rich); plain output gets one line per image.
    live = not quiet and sys.stderr.isatty()
    sink = sys.stderr if live else open(os.devnull, "w")
    results = []
    for service in SERVICES:
        tag = f"bookstore/{service}:{IMAGE_TAG}"
        reporter = make_progress("tty" if live else "plain", sink)
        try:
            result = await Builder(store, runtime, build_dir / "cache", reporter).build(
                BuildOptions(context=EXAMPLE / service, tags=(tag,)))
        except Exception as exc:  # noqa: BLE001 - BuildError/ImageError: one line, named image
            raise DemoError(f"building {tag} from {EXAMPLE / service}: {exc}") from None
        finally:
            reporter.close()
        say(f"image {tag}: {result.cache_hits} cached, {result.layers_built} built "
            f"({result.seconds:.1f}s)")
        results.append({"name": tag, "id": result.image.id, "steps": result.steps,
                        "cache_hits": result.cache_hits, "layers_built": result.layers_built,
                        "seconds": round(result.seconds, 2)})
    if not live:
        sink.close()
    return results


async def _wait_namespace_gone(client: HttpClient, say: Say, only_if_terminating: bool) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    told = False
    while True:
        try:
            ns = await client.get("namespaces", None, NAMESPACE)
        except errors.NotFound:
            return
        if only_if_terminating and not ns["metadata"].get("deletionTimestamp"):
            return
        if time.monotonic() > deadline:
            raise DemoError(f"namespace {NAMESPACE} is still terminating after "
                            f"{READY_TIMEOUT_SECONDS}s; try again later")
        if not told:
            say(f"waiting for namespace/{NAMESPACE} to finish terminating ...")
            told = True
        await asyncio.sleep(1)


def pin_images(obj: Obj, image_ids: dict[str, str]) -> Obj:
    """The manifest with each pod template annotated with the ID of the image it runs, so
    a rebuilt image (same tag, new ID) rolls its Deployment and an unchanged one leaves
    the apply a no-op. Pure: returns a new object."""
    template = ((obj.get("spec") or {}).get("template") or {})
    containers = (template.get("spec") or {}).get("containers") or []
    ids = {c["name"]: image_ids[c["image"]] for c in containers if c.get("image") in image_ids}
    if obj.get("kind") != "Deployment" or not ids:
        return obj
    obj = json.loads(json.dumps(obj))
    meta = obj["spec"]["template"].setdefault("metadata", {})
    annotations = meta.setdefault("annotations", {})
    for name, image_id in sorted(ids.items()):
        annotations[f"{IMAGE_ID_ANNOTATION}.{name}"] = image_id
    return obj


async def _apply(client: HttpClient, say: Say, image_ids: dict[str, str]) -> list[Obj]:
    await _wait_namespace_gone(client, say, only_if_terminating=True)
    applied = []
    for _, manifest in read_manifests([str(APP)]):
        obj = pin_images(manifest, image_ids)
        result = await apply_object(client, obj, None)
        kind = obj["kind"].lower()
        group = obj["apiVersion"].split("/")[0] if "/" in obj["apiVersion"] else ""
        say(f"  {kind}{'.' + group if group else ''}/{obj['metadata']['name']} {result}")
        applied.append({"kind": obj["kind"], "name": obj["metadata"]["name"], "result": result})
    return applied


def _deployments_line(deployments: list[Obj]) -> str:
    ready = [d for d in deployments if _deployment_ready(d)]
    waiting = [d["metadata"]["name"] for d in deployments if not _deployment_ready(d)]
    return (f"deployments ready {len(ready)}/{len(deployments)}"
            + (f"; waiting for {', '.join(waiting)}" if waiting else ""))


def _deployment_ready(d: Obj) -> bool:
    want = (d.get("spec") or {}).get("replicas", 1)
    status = d.get("status") or {}
    return (status.get("readyReplicas", 0) == want and status.get("updatedReplicas", 0) == want
            and status.get("replicas", 0) == want
            and status.get("observedGeneration", 0) >= d["metadata"].get("generation", 0))


async def _wait_ready(client: HttpClient, say: Say, live: bool) -> tuple[list[Obj], float]:
    """Wait until every Deployment is ready and every pod of the namespace is ready."""
    started = time.monotonic()
    deadline = started + READY_TIMEOUT_SECONDS
    display = None
    if live:
        from rich.console import Console
        from rich.live import Live

        display = Live(console=Console(), refresh_per_second=4, transient=True)
        display.start()
    last = ""
    try:
        while True:
            deployments, _ = await client.list("deployments.apps", NAMESPACE)
            pods, _ = await client.list("pods", NAMESPACE)
            live_pods = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
            done = (deployments and all(_deployment_ready(d) for d in deployments)
                    and all(pod_ready(p) for p in live_pods)
                    and len(live_pods) == sum(d["spec"].get("replicas", 1) for d in deployments))
            line = _deployments_line(deployments)
            elapsed = time.monotonic() - started
            if display is not None:
                from rich.panel import Panel
                from rich.text import Text

                table = printers.render_text(printers.table("Pod", pods)) if pods else "no pods yet"
                display.update(Panel(Text(table), title=f"{line} ({elapsed:.0f}s)", title_align="left"))
            elif line != last:
                say(f"  {line} ({elapsed:.0f}s)")
                last = line
            if done:
                if display is not None:
                    display.stop()
                    display = None
                    say(f"  {line} ({elapsed:.0f}s)")
                return live_pods, round(elapsed, 1)
            if time.monotonic() > deadline:
                table = printers.render_text(printers.table("Pod", pods))
                raise DemoError(f"the bookstore was not ready after {READY_TIMEOUT_SECONDS}s "
                                f"({line}):\n{table}\nsee `shoal describe pod POD -n {NAMESPACE}`")
            await asyncio.sleep(1)
    finally:
        if display is not None:
            display.stop()


def last_warning(events: list[Obj], pods: list[Obj]) -> tuple[dt.datetime | None, Obj | None]:
    """The newest Warning event about one of `pods` (by lastTimestamp), and its time."""
    names = {p["metadata"]["name"] for p in pods}
    newest, which = None, None
    for e in events:
        if e.get("type") != "Warning" or (e.get("involvedObject") or {}).get("name") not in names:
            continue
        stamp = e.get("lastTimestamp") or e.get("eventTime") or e["metadata"].get("creationTimestamp")
        if not stamp:
            continue
        when = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        if newest is None or when > newest:
            newest, which = when, e
    return newest, which


async def _wait_settled(client: HttpClient, pods: list[Obj], say: Say) -> tuple[list[Obj], float]:
    """Wait until no Warning event about the pods for SETTLE_SECONDS (new pods often see
    a container restarted by the node agent in their first minute on a busy machine;
    measuring across such a restart would report the restart, not the mesh). Each new
    warning is shown. Gives up after SETTLE_TIMEOUT_SECONDS and measures anyway."""
    started = time.monotonic()
    shown: set[tuple[str, str, str]] = set()
    while True:
        events, _ = await client.list("events", NAMESPACE)
        when, event = last_warning(events, pods)
        quiet_for = (dt.datetime.now(dt.timezone.utc) - when).total_seconds() if when else 1e9
        if event is not None:
            key = (event["involvedObject"]["name"], event.get("reason", ""), event.get("message", ""))
            if key not in shown and quiet_for < SETTLE_SECONDS:
                shown.add(key)
                say(f"  settling: {key[0]}: {key[1]}: {key[2][:120]}")
        current, _ = await client.list("pods", NAMESPACE)
        current = [p for p in current if not p["metadata"].get("deletionTimestamp")]
        if quiet_for >= SETTLE_SECONDS and all(pod_ready(p) for p in current):
            return current, round(time.monotonic() - started, 1)
        if time.monotonic() - started > SETTLE_TIMEOUT_SECONDS:
            say(f"  pods still see warnings after {SETTLE_TIMEOUT_SECONDS}s; measuring anyway")
            return current, round(time.monotonic() - started, 1)
        await asyncio.sleep(2)


async def _loadgen(settings: Settings, pod: str, *args: str, timeout: float) -> Obj:
    """Run the loadgen client inside its pod (`shoal exec`) and parse its JSON summary."""
    argv = [sys.executable, "-m", "shoal.cli.main", "--state-dir", str(settings.state_dir),
            "exec", pod, "-n", NAMESPACE, "-c", LOADGEN, "--",
            "python3", "/app/app.py", *args]
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "SHOAL_STATE_DIR": str(settings.state_dir)})
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise DemoError(f"loadgen {' '.join(args)} in pod {pod} did not finish in {timeout:.0f}s") from None
    lines = out.decode(errors="replace").strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise DemoError(f"loadgen {' '.join(args)} in pod {pod} exited {proc.returncode}: "
                        f"{err.decode(errors='replace').strip()[-500:]}")
    try:
        return json.loads(lines[-1])
    except json.JSONDecodeError:
        raise DemoError(f"loadgen printed no summary: {lines[-1][:300]}") from None


async def _pod_netns(settings: Settings, pods: list[Obj]) -> dict[str, str]:
    from shoal.network import PodNetwork
    from shoal.store import Allocations

    allocations = Allocations(settings.store_path)
    try:
        network = PodNetwork(settings, allocations)
        found = {}
        for pod in pods:
            name = pod["metadata"]["name"]
            sandbox = await network.get_sandbox(f"{NAMESPACE}/{name}")
            if sandbox is None:
                raise DemoError(f"pod {NAMESPACE}/{name} has no sandbox on this node")
            found[name] = sandbox.netns_name
        return found
    finally:
        allocations.close()


STATS_FILTER = r"^cluster\.outbound\||^listener\.0\.0\.0\.0_15006\.ssl\.handshake$|^server\.uptime$"


async def _admin_json(netns: str, path: str, attempts: int = 10) -> Obj:
    """GET a sidecar's admin API; retried for a few seconds, since a sidecar that the
    node agent is restarting refuses connections for a moment."""
    from shoal.mesh import proxyconfig
    from shoal.mesh.errors import MeshError

    for attempt in range(attempts):
        try:
            return json.loads(await proxyconfig.admin_get(netns, path))
        except (MeshError, json.JSONDecodeError) as exc:
            if attempt == attempts - 1:
                raise DemoError(f"reading the sidecar's admin API in netns {netns}: {exc}") from None
            await asyncio.sleep(1)
    raise AssertionError("unreachable")


async def _sidecar_stats(netns: dict[str, str]) -> dict[str, SidecarStats]:
    path = ("/stats?format=json&histogram_buckets=detailed&filter="
            + urllib.parse.quote(STATS_FILTER, safe=""))
    names = list(netns)
    docs = await asyncio.gather(*(_admin_json(netns[n], path) for n in names))
    return {n: parse_stats(d) for n, d in zip(names, docs)}


async def _sidecar_identity(netns: str) -> tuple[list[str], dict[str, list[str]]]:
    certs = await _admin_json(netns, "/certs")
    clusters = await _admin_json(netns, "/config_dump?resource=dynamic_active_clusters")
    return cert_identities(certs), pinned_server_ids(clusters)


@dataclasses.dataclass
class Measurement:
    """One measured run: the client's summary, what the sidecars saw, the edges."""
    warmup: Obj
    traffic: Obj
    facts: list[PodFacts]
    edges: list[Obj]
    disturbed: list[str]


async def _measure_once(settings: Settings, pods: list[Obj], services: list[Obj],
                        loadgen_pod: str, say: Say) -> Measurement:
    say(f"warming up: {LOADGEN} -> frontend until {WARMUP_SUCCESSES} answers in a row succeed ...")
    warmup = await _loadgen(settings, loadgen_pod, "warmup", "--successes", str(WARMUP_SUCCESSES),
                            "--timeout", str(WARMUP_TIMEOUT_SECONDS), timeout=WARMUP_TIMEOUT_SECONDS + 30)
    if not warmup.get("ok"):
        raise DemoError(f"frontend did not answer {WARMUP_SUCCESSES} requests in a row within "
                        f"{WARMUP_TIMEOUT_SECONDS}s through the mesh: {warmup}")
    say(f"  warm after {warmup['requests']} requests ({warmup['seconds']}s)")
    netns = await _pod_netns(settings, pods)
    before = await _sidecar_stats(netns)
    say(f"sending traffic: {LOADGEN} -> frontend for {TRAFFIC_SECONDS}s, "
        f"{TRAFFIC_CONCURRENCY} concurrent clients, inside the mesh ...")
    traffic = await _loadgen(settings, loadgen_pod, "run", "--seconds", str(TRAFFIC_SECONDS),
                             "--concurrency", str(TRAFFIC_CONCURRENCY), timeout=TRAFFIC_SECONDS + 60)
    identities = dict(zip(netns, await asyncio.gather(*(_sidecar_identity(n) for n in netns.values()))))
    by_name = {p["metadata"]["name"]: p for p in pods}
    deadline = time.monotonic() + FLUSH_TIMEOUT_SECONDS
    while True:
        after = await _sidecar_stats(netns)
        facts = [PodFacts(by_name[n], workload_of(by_name[n]), netns[n], identities[n][0], identities[n][1],
                          before.get(n), after[n]) for n in netns]
        if histograms_flushed(facts, NAMESPACE, settings.cluster_domain) or time.monotonic() > deadline:
            break
        await asyncio.sleep(1)
    edges = build_edges(facts, services, traffic.get("hops", []), NAMESPACE, settings.cluster_domain)
    return Measurement(warmup, traffic, facts, edges, disturbances(facts, edges, traffic))


async def _measure(settings: Settings, client: HttpClient, pods: list[Obj],
                   say: Say) -> tuple[Measurement, list[Obj]]:
    """Measure; when something disturbed the run (a sidecar restarted under it, an edge
    below 100%), say what and measure again, up to MEASURE_ATTEMPTS times. Every attempt
    is reported, so a retry never hides what happened."""
    loadgen_pod = next((p["metadata"]["name"] for p in pods if workload_of(p) == LOADGEN), None)
    if loadgen_pod is None:
        raise DemoError(f"no {LOADGEN} pod in namespace {NAMESPACE}")
    services, _ = await client.list("services", NAMESPACE)
    attempts: list[Obj] = []
    while True:
        result = await _measure_once(settings, pods, services, loadgen_pod, say)
        attempts.append({"requests": result.traffic.get("requests"), "disturbed": result.disturbed})
        if not result.disturbed or len(attempts) >= MEASURE_ATTEMPTS:
            return result, attempts
        say(f"  the run was disturbed ({'; '.join(result.disturbed)}); measuring again")
        pods, _ = await _wait_ready(client, say, live=False)
        pods, _ = await _wait_settled(client, pods, say)


# --------------------------------------------------------------------------------------
# The command.


def _next_commands(settings: Settings, pods: list[Obj]) -> list[str]:
    flag = "" if str(settings.state_dir) == "/var/lib/shoal" else f"--state-dir {settings.state_dir} "
    shoal = f".venv/bin/shoal {flag}"
    names = {workload_of(p): p["metadata"]["name"] for p in pods}
    frontend, loadgen = names.get("frontend", "FRONTEND_POD"), names.get(LOADGEN, "LOADGEN_POD")
    return [
        f"{shoal}get pods -n {NAMESPACE} -o wide",
        f"{shoal}logs {frontend} -n {NAMESPACE} -c frontend",
        f"{shoal}exec {loadgen} -n {NAMESPACE} -c {LOADGEN} -- python3 /app/app.py run --seconds 3",
        f"{shoal}mesh status",
        f"{shoal}mesh proxy-config clusters {frontend} -n {NAMESPACE}",
        f"kubectl --kubeconfig {settings.kubeconfig_path} get deploy,svc -n {NAMESPACE}",
        f"{shoal}demo --down        # remove the bookstore",
        f"{shoal}down               # stop shoal, leave nothing behind",
    ]


def _remove(settings: Settings, say: Say) -> None:
    if daemon_pid(settings) is None:
        say("shoal is not running; nothing to remove")
        return

    async def remove() -> None:
        async with HttpClient.from_kubeconfig(settings.kubeconfig_path) as client:
            try:
                await client.delete("namespaces", None, NAMESPACE)
                say(f"namespace/{NAMESPACE} deleted")
            except errors.NotFound:
                say(f"namespace/{NAMESPACE} is not there")
                return
            await _wait_namespace_gone(client, say, only_if_terminating=False)
            say(f"namespace/{NAMESPACE} and everything in it are gone")

    asyncio.run(remove())


@click.command()
@click.option("--down", is_flag=True, help="Remove the demo app (shoal keeps running).")
@click.option("-o", "--output", "fmt", type=click.Choice(["text", "json"]), default="text",
              help="json: one machine-readable document with every fact shown.")
@click.pass_context
def demo(ctx: click.Context, down: bool, fmt: str) -> None:
    """Run the demo: start shoal, build the bookstore app, deploy it in the mesh, send
    traffic from inside the mesh, and report every edge with its mTLS identities."""
    settings = settings_from(ctx)
    quiet = fmt == "json"
    say: Say = _quiet if quiet else (lambda msg: click.echo(msg))
    if down:
        _remove(settings, say)
        return

    started = time.monotonic()
    timings: dict[str, float] = {}

    def step(name: str, since: float) -> float:
        now = time.monotonic()
        timings[name] = round(now - since, 1)
        return now

    t = time.monotonic()
    started_daemon = _ensure_running(settings, say)
    t = step("daemon", t)
    base = _ensure_base_image(settings, say)
    t = step("base_image", t)
    say("building the bookstore images ...")
    images = asyncio.run(_build_images(settings, say, quiet))
    t = step("build", t)

    async def run() -> Obj:
        async with HttpClient.from_kubeconfig(settings.kubeconfig_path) as client:
            nonlocal t
            say(f"applying {APP.relative_to(EXAMPLE.parents[1])} ...")
            applied = await _apply(client, say, {i["name"]: i["id"] for i in images})
            t = step("apply", t)
            say("waiting for the bookstore to be ready ...")
            pods, _ = await _wait_ready(client, say, live=not quiet and sys.stdout.isatty())
            t = step("ready", t)
            say(f"waiting until the pods have had no warning for {SETTLE_SECONDS}s ...")
            pods, _ = await _wait_settled(client, pods, say)
            t = step("settle", t)
            measured, attempts = await _measure(settings, client, pods, say)
            t = step("traffic", t)
            services, _ = await client.list("services", NAMESPACE)
            pods, _ = await client.list("pods", NAMESPACE)
            return {"applied": applied, "pods": pods, "services": services,
                    "traffic": measured.traffic, "facts": measured.facts, "warmup": measured.warmup,
                    "edges": measured.edges, "attempts": attempts}

    try:
        state = asyncio.run(run())
    except errors.StatusError as err:
        raise DemoError(f"Error from server ({err.reason}): {err.message}") from None
    edges = state["edges"]
    pods = state["pods"]
    facts = {f.pod["metadata"]["name"]: f for f in state["facts"]}
    summary = {
        "namespace": NAMESPACE,
        "state_dir": str(settings.state_dir),
        "started_daemon": started_daemon,
        "base_image": base,
        "images": images,
        "applied": state["applied"],
        "pods": [{"name": p["metadata"]["name"], "workload": workload_of(p),
                  "ip": (p.get("status") or {}).get("podIP"),
                  "phase": (p.get("status") or {}).get("phase"), "ready": pod_ready(p),
                  "containers": [c["name"] for c in p["spec"]["containers"]],
                  "init_containers": [c["name"] for c in p["spec"].get("initContainers") or []],
                  "sidecar": has_sidecar(p),
                  "restarts": sum(c.get("restartCount", 0) for c in
                                  (p.get("status") or {}).get("containerStatuses") or []),
                  "identity": facts[p["metadata"]["name"]].identities
                  if p["metadata"]["name"] in facts else [],
                  "netns": facts[p["metadata"]["name"]].netns if p["metadata"]["name"] in facts else None}
                 for p in pods],
        "services": [{"name": s["metadata"]["name"], "clusterIP": s["spec"].get("clusterIP"),
                      "ports": [{"name": p.get("name"), "port": p["port"]} for p in s["spec"]["ports"]]}
                     for s in state["services"]],
        "traffic": {"path": f"{LOADGEN} pod (in the mesh) -> Service frontend, driven by shoal exec",
                    "warmup_requests": state["warmup"]["requests"], **state["traffic"]},
        "edges": edges,
        "attempts": state["attempts"],
        "all_ready": all(pod_ready(p) for p in pods),
        "all_meshed": all(has_sidecar(p) for p in pods),
        "all_mtls": bool(edges) and all(e["mtls"] for e in edges),
        "all_succeeded": bool(edges) and all(e["success_rate"] == 100.0 for e in edges),
        "timings": timings,
        "elapsed_seconds": round(time.monotonic() - started, 1),
        "next": _next_commands(settings, pods),
    }
    healthy = summary["all_ready"] and summary["all_meshed"] and summary["all_mtls"] and summary["all_succeeded"]
    if quiet:
        click.echo(json.dumps(summary, indent=2))
    else:
        _print_report(summary, pods, state["services"])
    if not healthy:
        ctx.exit(1)


def _print_report(summary: Obj, pods: list[Obj], services: list[Obj]) -> None:
    echo = click.echo
    echo("")
    echo(printers.render_text(printers.table("Pod", pods, wide=True), wide=True))
    echo("")
    echo(printers.render_text(printers.table("Service", services)))
    traffic = summary["traffic"]
    echo("")
    echo(f"traffic: {traffic['requests']} requests in {traffic['seconds']:g}s from the {LOADGEN} pod "
         f"to http://frontend/ (client side p50 {traffic['p50_ms']}ms, p99 {traffic['p99_ms']}ms), "
         f"status codes {traffic['codes']}")
    for answer in traffic.get("answers", []):
        echo(f"  {answer['count']:5d} answered by reviews {answer['reviews_version']}, "
             f"rating {answer['rating']}")
    for number, attempt in enumerate(summary["attempts"][:-1], 1):
        echo(f"  (run {number} was disturbed and measured again: {'; '.join(attempt['disturbed'])})")
    echo("")
    echo("edges, from the sidecars' Envoy stats (the measured run only):")
    echo(render_edges(summary["edges"]))
    echo("")
    proven = [e for e in summary["edges"] if e["mtls"]]
    if summary["all_mtls"]:
        echo(f"every edge is mTLS ({len(proven)}/{len(summary['edges'])}), proven on both sides:")
    else:
        echo(f"NOT every edge is proven mTLS ({len(proven)}/{len(summary['edges'])}):")
    for e in summary["edges"]:
        ev = e["evidence"]
        echo(f"  {e['caller']} -> {e['service']}: caller sidecar pins {short_id(ev['pinned_server_ids'])}, "
             f"{ev['client_tls_handshakes']} TLS handshakes for {ev['client_connections']} connections; "
             f"server sidecars {ev['server_tls_handshakes']} handshakes on :15006; server saw "
             f"{', '.join(short_id(x['caller']) for x in ev['xfcc_seen_by_server']) or 'nobody'} "
             f"in x-forwarded-client-cert")
    ready = sum(1 for p in summary["pods"] if p["ready"])
    echo("")
    built = sum(i["layers_built"] for i in summary["images"])
    cached = sum(i["cache_hits"] for i in summary["images"])
    echo(f"{ready}/{len(summary['pods'])} pods ready; images: {cached} steps cached, {built} built; "
         f"done in {summary['elapsed_seconds']:.1f}s ({', '.join(f'{k} {v}s' for k, v in summary['timings'].items())})")
    echo("")
    echo("next, try:")
    for cmd in summary["next"]:
        echo(f"  {cmd}")


COMMANDS = [demo]
