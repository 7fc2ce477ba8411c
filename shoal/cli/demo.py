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
5. reads every sidecar's Envoy stats (Prometheus, :15090) through the API's pods/proxy
   subresource (`/api/v1/namespaces/bookstore/pods/NAME:15090/proxy/stats/prometheus`,
   as `kubectl get --raw` would) before and after the measured run, and reports each
   edge (caller workload -> service) from the *difference*: requests, success rate
   (non-5xx), p50/p99 from the cluster's `upstream_rq_time` buckets (merged across the
   caller's pods);
6. proves mTLS per edge rather than assuming it (`shoal.mesh.edges` decides): the
   caller's cluster pins the server's SPIFFE IDs and the caller holds its own identity
   (the sidecar's `/config_dump` and `/certs`, read by `shoal exec` inside the pod, as
   the admin API listens on the pod's loopback only), every connection it opened
   completed a TLS handshake, the servers' inbound listener counted TLS handshakes, and
   the server app saw the caller's SPIFFE ID in `x-forwarded-client-cert` (set by its
   sidecar after the handshake; the apps echo it);
7. the canary (`shoal.cli.demotraffic.canary`): examples/traffic's DestinationRules and
   the reviews VirtualService at 90/10, then 50/50; once frontend's sidecar routes by
   subset, per-version request counts from frontend's sidecars. It removes what it
   applied, so a second run measures the same paths.

`shoal demo --down` deletes the namespace and waits until it is gone. `-o json` prints
the same facts as one JSON document (the tests assert on it). Exit status 1 when an
edge is below 100% or not proven mTLS.

This module is presentation and orchestration only: the edge facts come from
`shoal.mesh.edges`, images from `shoal.builder`/`shoal.images`, everything about pods
from the API. Layout: pure rendering first, then the I/O steps, then the command. Blocking work (builds, bootstrap, exec) runs in threads
or subprocesses; one event loop per command invocation.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import sys
import time
from typing import Any, Iterable

import click
from rich.console import Console
from rich.live import Live
from rich.panel import Panel
from rich.text import Text

from shoal import examples, timestamps
from shoal.api import errors, printers
from shoal.builder import BuildOptions
from shoal.cli.build import open_builder
from shoal.cli.context import settings_from
from shoal.cli import demotraffic
from shoal.cli.daemon import api_ready, daemon_pid, start_detached
from shoal.cli.demotraffic import LOADGEN, NAMESPACE, DemoError, Obj, Say
from shoal.cli.resources import apply_object, read_manifests
from shoal.client import HttpClient
from shoal.config import Settings
from shoal.images import ImageError, ImageNotFound, ImageStore
from shoal.mesh import edges


APP_FILE = "bookstore.yaml"
BASE_IMAGE = "shoal-base/python:bookworm"
BASE_PACKAGES = ("python3-minimal", "libpython3.11-stdlib")
SERVICES = ("frontend", "catalog", "reviews", "ratings", "loadgen")
IMAGE_TAG = "1.0"
READY_TIMEOUT_SECONDS = 240
SETTLE_SECONDS = 15
SETTLE_TIMEOUT_SECONDS = 150
IMAGE_ID_ANNOTATION = "demo.shoal.dev/image-id"


# --------------------------------------------------------------------------------------
# Pure: rendering.


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


def render_edges(rows: list[Obj]) -> str:
    return columns(
        ["CALLER", "", "SERVICE", "REQUESTS", "SUCCESS", "P50", "P99", "MTLS", "IDENTITIES (caller -> server)"],
        [[e["caller"], "->", e["service"], e["requests"], f"{e['success_rate']:g}%",
          f"{e['p50_ms']}ms" if e["p50_ms"] is not None else "-",
          f"{e['p99_ms']}ms" if e["p99_ms"] is not None else "-",
          "yes" if e["mtls"] else "NO",
          f"{short_id(e['caller_identity'])} -> {short_id(e['server_identities'])}"]
         for e in rows])


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
            start_detached(settings, "info")
    else:
        start_detached(settings, "info")
    return True


def _quiet(_msg: str) -> None:
    pass


def _ensure_base_image(settings: Settings, say: Say) -> Obj:
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
    example = examples.path(examples.BOOKSTORE)
    # Step-by-step progress on a terminal (rich); plain output gets one line per image.
    live = not quiet and sys.stderr.isatty()
    results = []
    with contextlib.ExitStack() as stack:
        sink = sys.stderr if live else stack.enter_context(open(os.devnull, "w"))
        for service in SERVICES:
            tag = f"bookstore/{service}:{IMAGE_TAG}"
            builder = open_builder(settings, "tty" if live else "plain", sink)
            try:
                result = await builder.build(BuildOptions(context=example / service, tags=(tag,)))
            except Exception as exc:  # noqa: BLE001 - BuildError/ImageError: one line, named image
                raise DemoError(f"building {tag} from {example / service}: {exc}") from None
            finally:
                builder.progress.close()
            say(f"image {tag}: {result.cache_hits} cached, {result.layers_built} built "
                f"({result.seconds:.1f}s)")
            results.append({"name": tag, "id": result.image.id, "steps": result.steps,
                            "cache_hits": result.cache_hits, "layers_built": result.layers_built,
                            "seconds": round(result.seconds, 2)})
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
    for _, manifest in read_manifests([str(examples.path(examples.BOOKSTORE) / APP_FILE)]):
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
        when = timestamps.parse_time(stamp)
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
        quiet_for = (dt.datetime.now(timestamps.UTC) - when).total_seconds() if when else 1e9
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


# --------------------------------------------------------------------------------------
# The command.


def _next_commands(settings: Settings, pods: list[Obj]) -> list[str]:
    flag = "" if str(settings.state_dir) == "/var/lib/shoal" else f"--state-dir {settings.state_dir} "
    shoal = f".venv/bin/shoal {flag}"
    names = {edges.workload_of(p): p["metadata"]["name"] for p in pods}
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
            say(f"applying the bookstore ({examples.BOOKSTORE}/{APP_FILE}) ...")
            applied = await _apply(client, say, {i["name"]: i["id"] for i in images})
            t = step("apply", t)
            say("waiting for the bookstore to be ready ...")
            pods, _ = await _wait_ready(client, say, live=not quiet and sys.stdout.isatty())
            t = step("ready", t)
            say(f"waiting until the pods have had no warning for {SETTLE_SECONDS}s ...")
            pods, _ = await _wait_settled(client, pods, say)
            t = step("settle", t)
            async def settle() -> list[Obj]:
                again, _ = await _wait_ready(client, say, live=False)
                again, _ = await _wait_settled(client, again, say)
                return again

            measured, attempts = await demotraffic.measure(settings, client, pods, say, settle)
            t = step("traffic", t)
            current, _ = await client.list("pods", NAMESPACE)
            canary = await demotraffic.canary(settings, client,
                                              [p for p in current if pod_ready(p)], say)
            t = step("canary", t)
            services, _ = await client.list("services", NAMESPACE)
            pods, _ = await client.list("pods", NAMESPACE)
            return {"applied": applied, "pods": pods, "services": services,
                    "traffic": measured.traffic, "facts": measured.facts, "warmup": measured.warmup,
                    "edges": measured.edges, "attempts": attempts, "canary": canary}

    try:
        state = asyncio.run(run())
    except errors.StatusError as err:
        raise DemoError(f"Error from server ({err.reason}): {err.message}") from None
    edge_rows = state["edges"]
    pods = state["pods"]
    facts = {f.pod["metadata"]["name"]: f for f in state["facts"]}
    summary = {
        "namespace": NAMESPACE,
        "state_dir": str(settings.state_dir),
        "started_daemon": started_daemon,
        "base_image": base,
        "images": images,
        "applied": state["applied"],
        "pods": [{"name": p["metadata"]["name"], "workload": edges.workload_of(p),
                  "ip": (p.get("status") or {}).get("podIP"),
                  "phase": (p.get("status") or {}).get("phase"), "ready": pod_ready(p),
                  "containers": [c["name"] for c in p["spec"]["containers"]],
                  "init_containers": [c["name"] for c in p["spec"].get("initContainers") or []],
                  "sidecar": edges.has_sidecar(p),
                  "restarts": sum(c.get("restartCount", 0) for c in
                                  (p.get("status") or {}).get("containerStatuses") or []),
                  "identity": facts[p["metadata"]["name"]].identities
                  if p["metadata"]["name"] in facts else []}
                 for p in pods],
        "services": [{"name": s["metadata"]["name"], "clusterIP": s["spec"].get("clusterIP"),
                      "ports": [{"name": p.get("name"), "port": p["port"]} for p in s["spec"]["ports"]]}
                     for s in state["services"]],
        "traffic": {"path": f"{LOADGEN} pod (in the mesh) -> Service frontend, driven by shoal exec",
                    "warmup_requests": state["warmup"]["requests"], **state["traffic"]},
        "edges": edge_rows,
        "attempts": state["attempts"],
        "canary": state["canary"],
        "all_ready": all(pod_ready(p) for p in pods),
        "all_meshed": all(edges.has_sidecar(p) for p in pods),
        "all_mtls": bool(edge_rows) and all(e["mtls"] for e in edge_rows),
        "all_succeeded": bool(edge_rows) and all(e["success_rate"] == 100.0 for e in edge_rows),
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
    echo("canary, reviews shifted by a VirtualService (counts from frontend's sidecars):")
    for split in summary["canary"]:
        w, n, share = split["weights"], split["requests"], split["share"]
        echo(f"  weights v1 {w['v1']}% / v2 {w['v2']}%: v1 {n['v1']} requests ({share['v1']}%), "
             f"v2 {n['v2']} ({share['v2']}%); in effect {split['in_effect_seconds']}s after apply")
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
