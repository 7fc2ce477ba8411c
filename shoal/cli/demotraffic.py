"""The demo's traffic steps: commands run inside bookstore pods, the loadgen client, the
sidecars' stats through the API, the measured run and its edges, and the canary shift.

Split from `shoal.cli.demo` (which keeps the command, the set-up steps and the report).
The edge facts come from `shoal.mesh.edges`; pods are reached with `shoal exec` and
sidecar stats through the API's `pods/NAME:15090/proxy`. Everything here runs on the
command's one event loop; subprocesses are killed when they overrun their timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import sys
import time
from typing import Any, Awaitable, Callable

import click

from shoal import examples
from shoal.api import errors, kinds
from shoal.cli.resources import apply_object, read_manifests
from shoal.client import HttpClient
from shoal.config import Settings
from shoal.mesh import edges

Obj = dict[str, Any]
Say = Callable[[str], None]

NAMESPACE = "bookstore"
LOADGEN = "loadgen"
WARMUP_SUCCESSES = 20
WARMUP_TIMEOUT_SECONDS = 90
TRAFFIC_SECONDS = 5
TRAFFIC_CONCURRENCY = 4
FLUSH_TIMEOUT_SECONDS = 15
STATS_PORT = 15090
STATS_ATTEMPTS = 10
MEASURE_ATTEMPTS = 3


class DemoError(click.ClickException):
    """A demo step failed; the message names the step and what to look at."""


async def pod_exec(settings: Settings, pod: str, container: str, argv: list[str], timeout: float,
                    what: str) -> str:
    """Run argv in a container of a bookstore pod with `shoal exec` (the CLI's own path
    into a pod: it asks the API where the container is) and return its stdout."""
    command = [sys.executable, "-m", "shoal.cli.main", "--state-dir", str(settings.state_dir),
               "exec", pod, "-n", NAMESPACE, "-c", container, "--", *argv]
    proc = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "SHOAL_STATE_DIR": str(settings.state_dir)})
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise DemoError(f"{what} in pod {pod} did not finish in {timeout:.0f}s") from None
    if proc.returncode != 0:
        raise DemoError(f"{what} in pod {pod} exited {proc.returncode}: "
                        f"{err.decode(errors='replace').strip()[-500:]}")
    return out.decode(errors="replace")


async def loadgen(settings: Settings, pod: str, *args: str, timeout: float) -> Obj:
    """Run the loadgen client inside its pod and parse its JSON summary."""
    what = f"loadgen {' '.join(args)}"
    out = await pod_exec(settings, pod, LOADGEN, ["python3", "/app/app.py", *args], timeout, what)
    lines = out.strip().splitlines()
    if not lines:
        raise DemoError(f"{what} in pod {pod} printed nothing")
    try:
        return json.loads(lines[-1])
    except json.JSONDecodeError:
        raise DemoError(f"loadgen printed no summary: {lines[-1][:300]}") from None


async def sidecar_stats(client: HttpClient, pods: list[str]) -> dict[str, edges.SidecarStats]:
    """Every sidecar's Prometheus stats, read through the API (`pods/NAME:15090/proxy`,
    which dials the pod's IP: Envoy's stats listener serves the pod network). Retried
    for a few seconds: a sidecar the node agent is restarting refuses for a moment."""
    async def read(pod: str) -> edges.SidecarStats:
        path = f"/api/v1/namespaces/{NAMESPACE}/pods/{pod}:{STATS_PORT}/proxy/stats/prometheus"
        for attempt in range(STATS_ATTEMPTS):
            try:
                text = await client.get_raw(path, params={"filter": edges.STATS_FILTER})
                return edges.parse_prometheus(text)
            except errors.StatusError as exc:
                if attempt == STATS_ATTEMPTS - 1:
                    raise DemoError(f"reading the sidecar stats of pod {pod}: {exc.message}") from None
                await asyncio.sleep(1)
        raise AssertionError("unreachable")

    return dict(zip(pods, await asyncio.gather(*(read(p) for p in pods))))


# Run in the app container (python3, sharing the sidecar's netns): the admin API listens
# on 127.0.0.1:15000 of the pod only, so the documents are read from inside the pod.
_ADMIN_DOCUMENTS = (
    "import json, urllib.request\n"
    "get = lambda p: json.load(urllib.request.urlopen('http://127.0.0.1:15000' + p, timeout=5))\n"
    "print(json.dumps({'certs': get('/certs'),"
    " 'clusters': get('/config_dump?resource=dynamic_active_clusters')}))\n")


async def _sidecar_identity(settings: Settings, pod: Obj) -> tuple[list[str], dict[str, list[str]]]:
    """(the sidecar's own SPIFFE IDs, {cluster: server IDs it pins}) of one pod."""
    name = pod["metadata"]["name"]
    app = next(c["name"] for c in pod["spec"]["containers"] if c["name"] != edges.SIDECAR)
    out = await pod_exec(settings, name, app, ["python3", "-c", _ADMIN_DOCUMENTS], 60,
                          "reading the sidecar's /certs and /config_dump")
    try:
        documents = json.loads(out.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        raise DemoError(f"the sidecar admin documents of pod {name} are not JSON: {out[:300]}") from None
    return edges.cert_identities(documents["certs"]), edges.pinned_server_ids(documents["clusters"])


@dataclasses.dataclass
class Measurement:
    """One measured run: the client's summary, what the sidecars saw, the edges."""
    warmup: Obj
    traffic: Obj
    facts: list[edges.PodFacts]
    edges: list[Obj]
    disturbed: list[str]


async def _measure_once(settings: Settings, client: HttpClient, pods: list[Obj], services: list[Obj],
                        loadgen_pod: str, say: Say) -> Measurement:
    say(f"warming up: {LOADGEN} -> frontend until {WARMUP_SUCCESSES} answers in a row succeed ...")
    warmup = await loadgen(settings, loadgen_pod, "warmup", "--successes", str(WARMUP_SUCCESSES),
                            "--timeout", str(WARMUP_TIMEOUT_SECONDS), timeout=WARMUP_TIMEOUT_SECONDS + 30)
    if not warmup.get("ok"):
        raise DemoError(f"frontend did not answer {WARMUP_SUCCESSES} requests in a row within "
                        f"{WARMUP_TIMEOUT_SECONDS}s through the mesh: {warmup}")
    say(f"  warm after {warmup['requests']} requests ({warmup['seconds']}s)")
    by_name = {p["metadata"]["name"]: p for p in pods}
    names = list(by_name)
    before = await sidecar_stats(client, names)
    say(f"sending traffic: {LOADGEN} -> frontend for {TRAFFIC_SECONDS}s, "
        f"{TRAFFIC_CONCURRENCY} concurrent clients, inside the mesh ...")
    traffic = await loadgen(settings, loadgen_pod, "run", "--seconds", str(TRAFFIC_SECONDS),
                             "--concurrency", str(TRAFFIC_CONCURRENCY), timeout=TRAFFIC_SECONDS + 60)
    identities = dict(zip(names, await asyncio.gather(*(_sidecar_identity(settings, by_name[n])
                                                        for n in names))))
    deadline = time.monotonic() + FLUSH_TIMEOUT_SECONDS
    while True:
        after = await sidecar_stats(client, names)
        facts = [edges.PodFacts(by_name[n], edges.workload_of(by_name[n]), identities[n][0],
                                identities[n][1], before.get(n), after[n]) for n in names]
        if edges.histograms_flushed(facts, NAMESPACE, settings.cluster_domain) or time.monotonic() > deadline:
            break
        await asyncio.sleep(1)
    found = edges.build_edges(facts, services, traffic.get("hops", []), NAMESPACE, settings.cluster_domain)
    return Measurement(warmup, traffic, facts, found, edges.disturbances(facts, found, traffic))


async def measure(settings: Settings, client: HttpClient, pods: list[Obj], say: Say,
                  settle: Callable[[], Awaitable[list[Obj]]]) -> tuple[Measurement, list[Obj]]:
    """Measure; when something disturbed the run (a sidecar restarted under it, an edge
    below 100%), say what and measure again, up to MEASURE_ATTEMPTS times. Every attempt
    is reported, so a retry never hides what happened."""
    loadgen_pod = next((p["metadata"]["name"] for p in pods if edges.workload_of(p) == LOADGEN), None)
    if loadgen_pod is None:
        raise DemoError(f"no {LOADGEN} pod in namespace {NAMESPACE}")
    services, _ = await client.list("services", NAMESPACE)
    attempts: list[Obj] = []
    while True:
        result = await _measure_once(settings, client, pods, services, loadgen_pod, say)
        attempts.append({"requests": result.traffic.get("requests"), "disturbed": result.disturbed})
        if not result.disturbed or len(attempts) >= MEASURE_ATTEMPTS:
            return result, attempts
        say(f"  the run was disturbed ({'; '.join(result.disturbed)}); measuring again")
        pods = await settle()


# --------------------------------------------------------------------------------------
# The canary: reviews v1/v2 shifted by a VirtualService, counted by frontend's sidecars.

TRAFFIC_EXAMPLE = "traffic"
CANARY_SPLITS = ((90, 10), (50, 50))
CANARY_SECONDS = 5
CANARY_PROBE_TIMEOUT_SECONDS = 60
REVIEWS_PORT = 80


def subset_counts(before: dict[str, edges.SidecarStats], after: dict[str, edges.SidecarStats],
                  domain: str) -> dict[str, int]:
    """Requests frontend's sidecars sent to each reviews cluster between two snapshots:
    {"v1": n, "v2": n, "default": n} ("default" is the cluster without a subset, which
    only a route from before the VirtualService uses)."""
    host = f"reviews.{NAMESPACE}.svc.{domain}"
    counts = {}
    for subset, key in (("v1", "v1"), ("v2", "v2"), ("", "default")):
        stat = f"cluster.outbound|{REVIEWS_PORT}|{subset}|{host}.upstream_rq_total"
        counts[key] = int(sum(edges.diff_stats(before.get(pod), stats).counter(stat)
                              for pod, stats in after.items()))
    return counts


async def _apply_example(client: HttpClient, name: str) -> None:
    path = examples.path(TRAFFIC_EXAMPLE) / name
    for _, obj in read_manifests([str(path)]):
        await apply_object(client, obj, NAMESPACE)


async def _delete_example(client: HttpClient, name: str) -> None:
    path = examples.path(TRAFFIC_EXAMPLE) / name
    for _, obj in read_manifests([str(path)]):
        rt = kinds.by_kind(obj["apiVersion"], obj["kind"])
        with contextlib.suppress(errors.NotFound):
            await client.delete(rt.resource, NAMESPACE, obj["metadata"]["name"])


async def canary(settings: Settings, client: HttpClient, pods: list[Obj], say: Say) -> list[Obj]:
    """Apply examples/traffic's DestinationRules, then the reviews VirtualService at
    each split of CANARY_SPLITS; after a probe shows frontend's sidecar routes by subset
    (no request left on the subset-less cluster), send CANARY_SECONDS of traffic and
    count per version from frontend's sidecars. Then removes what it applied, so the
    bookstore is left as bookstore.yaml made it (and a second demo run measures the
    same paths); examples/traffic/README.md goes on from there by hand."""
    loadgen_pod = next(p["metadata"]["name"] for p in pods if edges.workload_of(p) == LOADGEN)
    frontends = [p["metadata"]["name"] for p in pods if edges.workload_of(p) == "frontend"]
    domain = settings.cluster_domain
    say("canary: subsets for every service (examples/traffic/destination-rule-all.yaml) ...")
    await _apply_example(client, "destination-rule-all.yaml")
    results = []
    for v1, v2 in CANARY_SPLITS:
        name = f"reviews-{v1}-{v2}.yaml"
        say(f"canary: reviews v1 {v1}% / v2 {v2}% (examples/traffic/{name}) ...")
        started = time.monotonic()
        await _apply_example(client, name)
        while True:  # the probe: wait until frontend's sidecar routes by subset
            before = await sidecar_stats(client, frontends)
            await loadgen(settings, loadgen_pod, "run", "--seconds", "1", "--concurrency", "2",
                          timeout=60)
            probe = subset_counts(before, await sidecar_stats(client, frontends), domain)
            if probe["default"] == 0 and probe["v1"] + probe["v2"] > 0:
                break
            if time.monotonic() - started > CANARY_PROBE_TIMEOUT_SECONDS:
                raise DemoError(f"frontend's sidecar did not route reviews by subset within "
                                f"{CANARY_PROBE_TIMEOUT_SECONDS}s of applying {name}: {probe}")
        in_effect = round(time.monotonic() - started, 1)
        before = await sidecar_stats(client, frontends)
        traffic = await loadgen(settings, loadgen_pod, "run", "--seconds", str(CANARY_SECONDS),
                                "--concurrency", str(TRAFFIC_CONCURRENCY), timeout=CANARY_SECONDS + 60)
        counts = subset_counts(before, await sidecar_stats(client, frontends), domain)
        total = counts["v1"] + counts["v2"]
        results.append({
            "weights": {"v1": v1, "v2": v2}, "in_effect_seconds": in_effect,
            "requests": {"v1": counts["v1"], "v2": counts["v2"]},
            "share": {k: round(100 * counts[k] / total, 1) if total else None for k in ("v1", "v2")},
            "client_codes": traffic.get("codes", {}),
        })
        say(f"  in effect after {in_effect}s; frontend's sidecars sent reviews v1 {counts['v1']}, "
            f"v2 {counts['v2']} requests")
    await _delete_example(client, f"reviews-{v1}-{v2}.yaml")
    await _delete_example(client, "destination-rule-all.yaml")
    return results
