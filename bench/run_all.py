"""Run every benchmark in bench/ and write bench/RESULTS.md (`make bench`).

    .venv/bin/python bench/run_all.py [--only api,mesh] [--quick] [--out bench/RESULTS.md]

Each area is its own script, run as a subprocess one after another (never two at once,
so they do not share the machine's two cores with each other): with `--json` where the
script has it (api, images, network, mesh), otherwise its printed table is parsed
(containers, build, pods — their formats are matched by the regular expressions below;
a line that no longer matches shows up as "not parsed" rather than a wrong figure).
The scripts are only called, never changed here.

RESULTS.md gets one table per area: the figure, shoal's value, the peer measured in the
same run and its value, and the ratio shoal/peer (for times lower is better, for
throughput higher is better: each row says which), with the date, the machine (CPU
model, cores, memory, kernel, load average) and the exact command of each area. An area
that fails keeps its section with the error, so one broken script does not hide the rest.
`--quick` passes smaller sizes to every script (a smoke run, not for RESULTS.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
AREA_TIMEOUT_SECONDS = 1800


@dataclasses.dataclass
class Row:
    figure: str
    shoal: float | None
    unit: str
    peer: str = ""
    peer_value: float | None = None
    better: str = "lower"  # lower | higher: which way is better, for the reader

    @property
    def ratio(self) -> float | None:
        if self.shoal is None or not self.peer_value:
            return None
        return self.shoal / self.peer_value


@dataclasses.dataclass
class Area:
    name: str
    title: str
    script: str
    args: list[str]
    quick_args: list[str]
    json_output: bool
    parse: Callable[[Any], tuple[list[Row], list[str]]]
    """(stdout as JSON or text) -> (rows, notes)."""


# --- parsers: one per script, pure ------------------------------------------------------


def parse_api(doc: dict) -> tuple[list[Row], list[str]]:
    http, store = doc["http"], doc["store"]
    peer = "store alone (no HTTPS/JSON/admission)"
    rows = [
        Row("creates/s, sequential", http["creates_per_s_seq"], "/s", peer, store["creates_per_s_seq"], "higher"),
        Row("creates/s, 16 in flight", http["creates_per_s_16"], "/s", peer, store["creates_per_s_16"], "higher"),
        Row("list of all objects, p50", http["list_p50_ms"], "ms", peer, store["list_p50_ms"]),
        Row("list of all objects, p99", http["list_p99_ms"], "ms", peer, store["list_p99_ms"]),
        Row("watch event latency, p50", http["watch_p50_ms"], "ms", peer, store["watch_p50_ms"]),
        Row("watch event latency, p99", http["watch_p99_ms"], "ms", peer, store["watch_p99_ms"]),
    ]
    forward = doc.get("portforward")  # port-forward throughput
    if forward:
        direct = forward["direct_MB_per_s"]
        for key, label in (("kubectl_websocket", "kubectl port-forward (WebSocket tunnel)"),
                           ("kubectl_spdy", "kubectl port-forward (plain SPDY)"),
                           ("shoal", "shoal port-forward")):
            rows.append(Row(f"{label}, {forward['MB']} MB download", forward[f"{key}_MB_per_s"], "MB/s",
                            "direct to the pod IP", direct, "higher"))
    return rows, []


def parse_images(doc: dict) -> tuple[list[Row], list[str]]:
    rows = [
        Row("pull from a local registry, median", doc["shoal_pull"]["median_s"], "s",
            "skopeo copy", doc["skopeo_copy"]["median_s"]),
        Row("pull throughput", doc["shoal_pull"]["MB_per_s"], "MB/s",
            "skopeo copy", doc["skopeo_copy"]["MB_per_s"], "higher"),
        Row("unpack into a rootfs, median", doc["shoal_unpack"]["median_s"], "s",
            "umoci unpack", doc["umoci_unpack"]["median_s"]),
        Row("unpack throughput", doc["shoal_unpack"]["MB_per_s"], "MB/s",
            "umoci unpack", doc["umoci_unpack"]["MB_per_s"], "higher"),
    ]
    notes = [f"image {doc['image']}: {doc['blob_bytes'] / 1e6:.1f} MB of blobs, "
             f"{doc['unpacked_bytes'] / 1e6:.1f} MB unpacked; median of {doc['runs']} runs"]
    return rows, notes


def parse_network(doc: dict) -> tuple[list[Row], list[str]]:
    pod, cip = doc["request_pod_ip"], doc["request_cluster_ip"]
    peer = "same request to the pod IP (no DNAT)"
    rows = [
        Row("pod sandbox create (netns, veth, IP), p50", doc["sandbox_create"]["p50_ms"], "ms"),
        Row("pod sandbox create, p99", doc["sandbox_create"]["p99_ms"], "ms"),
        Row("pod sandbox delete, p50", doc["sandbox_delete"]["p50_ms"], "ms"),
        Row("request through a ClusterIP (new connection), p50", cip["p50_ms"], "ms", peer, pod["p50_ms"]),
        Row("request through a ClusterIP (new connection), p99", cip["p99_ms"], "ms", peer, pod["p99_ms"]),
    ]
    return rows, [f"host network setup {doc['setup_host_ms']} ms; {cip['n']} requests per path"]


def parse_mesh(doc: dict) -> tuple[list[Row], list[str]]:
    rows, notes = [], []
    lat = doc.get("latency")
    if lat:
        peer = "same load, direct (no sidecars)"
        for q in ("p50", "p90", "p99"):
            rows.append(Row(f"request through two sidecars with mTLS, {q}", lat["mesh"][q], "ms",
                            peer, lat["direct"][q]))
        added = lat["added_ms"]["p99"]
        rows.append(Row("p99 added by two sidecars (mesh - direct)", added, "ms",
                        "Istio's published p99 added (2 proxies, 1000 req/s, mTLS)", 2.88))
        rows.append(Row("p99 added by two sidecars (mesh - direct)", added, "ms",
                        "shoal's target", 1.5))
        rows.append(Row("requests/s achieved through the mesh", lat["mesh"]["rate"], "/s",
                        "direct", lat["direct"]["rate"], "higher"))
        for name, s in sorted(lat["sidecars"].items()):
            rows.append(Row(f"sidecar {name}: private memory (USS)", s["uss_mb"], "MB"))
            rows.append(Row(f"sidecar {name}: CPU during the run", s["cpu_cores"], "cores"))
            rows.append(Row(f"sidecar {name}: CPU per request", s["cpu_us_per_request"], "us"))
        notes.append(f"load: {lat['generator']}")
        w = doc["wakeup_round_trip_us"]
        notes.append(f"machine: pipe round trip between two processes {w['same']} us on one "
                     f"vCPU, {w['cross']} us across vCPUs (every proxy hop is a wake-up)")
        notes.append(f"errors: mesh {lat['mesh']['errors']}, direct {lat['direct']['errors']}")
        notes.append(f"p99 per interleaved slice: direct {lat['direct']['slice_p99']} ms, "
                     f"mesh {lat['mesh']['slice_p99']} ms (how much the shared machine moved)")
        notes.append(f"host steal per slice: direct {lat['direct']['slice_steal_pct']} %, "
                     f"mesh {lat['mesh']['slice_steal_pct']} % (vCPU time the hypervisor "
                     f"gave to others)")
        routed = lat.get("routed")
        if routed:
            for q in ("p50", "p99"):
                rows.append(Row(f"added by a VirtualService of {routed['routes']} rules + a "
                                f"DestinationRule, {q}", routed["added_ms"][q], "ms",
                                "target (issue 12: the route table costs <= 0.05 ms)", 0.05))
            for name, us in sorted(routed["cpu_us_per_request"].items()):
                rows.append(Row(f"sidecar {name}: CPU per request with the route table", us, "us",
                                "same sidecar without it", lat["sidecars"][name]["cpu_us_per_request"]))
            notes.append(f"p99 per routed slice: {routed['slice_p99']} ms; proxies the route "
                         f"table changed: {len(routed.get('proxies_changed', []))}")
    for c in doc.get("convergence", []):
        rows.append(Row(f"convergence, {c['proxies']} Envoys ACK a new endpoint, p50", c["p50_ms"], "ms"))
        rows.append(Row(f"convergence, {c['proxies']} Envoys ACK a new endpoint, max", c["max_ms"], "ms"))
    w = doc.get("weight_change")
    if w:
        rows.append(Row(f"convergence, {w['proxies']} Envoys ACK a VirtualService weight shift "
                        f"(100 VirtualServices applied), p50", w["p50_ms"], "ms", "target", 100))
        rows.append(Row(f"convergence, {w['proxies']} Envoys ACK a VirtualService weight shift, max",
                        w["max_ms"], "ms", "target", 100))
    t = doc.get("translation")
    if t:
        rows.append(Row(f"full translation, {t['services']} Services each with a VirtualService "
                        f"and a DestinationRule", t["with"]["seconds"], "s",
                        "the same Services without them", t["without"]["seconds"]))
        rows.append(Row(f"full translation, {t['services']} Services with VirtualServices",
                        t["with"]["seconds"], "s", "target (issue 12)", 1.0))
    return rows, notes


CONTAINER_LINE = re.compile(r"^(?P<label>\S.*?)\s+p50\s+(?P<p50>[\d.]+) ms\s+p99\s+(?P<p99>[\d.]+) ms")


def parse_containers(text: str) -> tuple[list[Row], list[str]]:
    found = {m["label"].strip(): (float(m["p50"]), float(m["p99"]))
             for m in map(CONTAINER_LINE.match, text.splitlines()) if m}
    runc = found.get("runc run (bare)")
    rows = []
    for label, figure in (("shoal create+start+wait", "run /bin/true to exit (shoal: conmon + runc)"),
                          ("shoal ... + delete", "the same + delete")):
        if label in found:
            for i, q in enumerate(("p50", "p99")):
                rows.append(Row(f"{figure}, {q}", found[label][i], "ms", "runc run (bare)",
                                runc[i] if runc else None))
    if "podman run --rm" in found:
        for i, q in enumerate(("p50", "p99")):
            rows.append(Row(f"podman run --rm /bin/true, {q} (second peer)", found["podman run --rm"][i], "ms",
                            "runc run (bare)", runc[i] if runc else None))
    notes = [line for line in text.splitlines() if line.startswith(("/bin/true", "podman run --rm "))
             and "p50" not in line]
    return rows, notes


BUILD_LINE = re.compile(r"^(?P<label>cold|warm|edit)\s+(?P<shoal>[\d.]+)s(?:\s+(?P<peer>[\d.]+)s)?")


def parse_build(text: str) -> tuple[list[Row], list[str]]:
    meaning = {"cold": "cold build (pip install, COPY, RUN)", "warm": "warm build (all cached)",
               "edit": "rebuild after editing app.py"}
    rows = []
    for m in map(BUILD_LINE.match, text.splitlines()):
        if m:
            rows.append(Row(meaning[m["label"]], float(m["shoal"]), "s", "buildah (--layers)",
                            float(m["peer"]) if m["peer"] else None))
    notes = [line.strip() for line in text.splitlines()
             if line.startswith(("base bootstrap", "buildah: not measured", "shoal warm/cold"))]
    return rows, notes


PODS_LINE = re.compile(r"^\s*(?P<n>\d+)\s+(?P<p50>[\d.]+)\s+(?P<p99>[\d.]+)\s+(?P<max>[\d.]+)\s*$")
MEMORY_LINE = re.compile(r"^memory (?P<what>.+?):\s+RSS (?P<rss>[\d.]+) MiB, USS (?P<uss>[\d.]+) MiB")


def parse_pods(text: str) -> tuple[list[Row], list[str]]:
    rows = []
    slo = "Kubernetes pod start-up SLO (p99 <= 5 s)"
    for m in map(PODS_LINE.match, text.splitlines()):
        if m:
            rows.append(Row(f"{m['n']} pod{'' if m['n'] == '1' else 's'} at once, apply to Ready, p50", float(m["p50"]), "s"))
            rows.append(Row(f"{m['n']} pod{'' if m['n'] == '1' else 's'} at once, apply to Ready, p99", float(m["p99"]), "s", slo, 5.0))
    for m in map(MEMORY_LINE.match, text.splitlines()):
        if m:
            rows.append(Row(f"daemon memory {m['what'].strip()} (USS)", float(m["uss"]), "MiB"))
    notes = [line for line in text.splitlines() if line.startswith("runtime:")]
    return rows, notes


AREAS = [
    Area("api", "API server", "api.py", [], ["--objects", "1000", "--creates", "200", "--watch", "50"],
         True, parse_api),
    Area("containers", "Containers (runtime)", "containers.py", [], ["--runs", "10"], False, parse_containers),
    Area("network", "Pod network and services", "network.py", [], ["--sandboxes", "10", "--requests", "200"],
         True, parse_network),
    Area("images", "Images (pull and unpack)", "images.py", [], ["--image", "busybox", "--runs", "1"],
         True, parse_images),
    Area("pods", "Pods (node agent)", "pods.py", [], ["--sizes", "1,10"], False, parse_pods),
    Area("build", "Image builds", "build.py", [], [], False, parse_build),
    Area("mesh", "Service mesh", "mesh.py", ["--seconds", "30"], ["--seconds", "5", "--proxies", "10", "--weight-change-proxies", "10",
                                         "--translate-services", "100"],
         True, parse_mesh),
]


# --- running and writing ----------------------------------------------------------------


def machine() -> dict[str, str]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "unknown CPU")
    mem_kib = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                       if line.startswith("MemTotal:")))
    return {"cpu": cpu, "cores": str(os.cpu_count()), "memory": f"{mem_kib / 1024 / 1024:.1f} GiB",
            "kernel": f"{platform.system()} {platform.release()}",
            "os": _os_name(), "python": platform.python_version()}


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except FileNotFoundError:
        pass
    return "unknown"


def last_json_document(text: str) -> Any:
    """The JSON document a script printed with --json (after any progress lines)."""
    decoder = json.JSONDecoder()
    for i, line in enumerate(text.splitlines(keepends=True)):
        if line.lstrip().startswith("{"):
            rest = "".join(text.splitlines(keepends=True)[i:])
            try:
                return decoder.raw_decode(rest.lstrip())[0]
            except json.JSONDecodeError:
                continue
    raise ValueError("no JSON document in the output")


@dataclasses.dataclass
class Outcome:
    area: Area
    command: str
    seconds: float
    load_before: float
    rows: list[Row] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    error: str | None = None


def run_area(area: Area, quick: bool) -> Outcome:
    argv = [sys.executable, str(BENCH / area.script), *(area.quick_args if quick else area.args)]
    if area.json_output:
        argv.append("--json")
    command = " ".join(["python", f"bench/{area.script}", *argv[2:]])
    print(f"== {area.name}: {command}", flush=True)
    load = os.getloadavg()[0]
    started = time.monotonic()
    try:
        proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=AREA_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        return Outcome(area, command, time.monotonic() - started, load,
                       error=f"did not finish in {AREA_TIMEOUT_SECONDS}s")
    seconds = time.monotonic() - started
    outcome = Outcome(area, command, seconds, load)
    if proc.returncode != 0:
        tail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-8:]
        outcome.error = f"exited {proc.returncode}: " + " / ".join(tail)
        return outcome
    try:
        data = last_json_document(proc.stdout) if area.json_output else proc.stdout
        outcome.rows, outcome.notes = area.parse(data)
    except (ValueError, KeyError, TypeError) as exc:
        outcome.error = f"output not parsed ({type(exc).__name__}: {exc}); stdout: {proc.stdout[-500:]}"
        return outcome
    if not outcome.rows:
        outcome.error = f"no figures parsed from: {proc.stdout[-500:]}"
    print(f"   {len(outcome.rows)} figures in {seconds:.0f}s", flush=True)
    return outcome


def fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"


def render(outcomes: list[Outcome], started: dt.datetime, box: dict[str, str], quick: bool) -> str:
    lines = [
        "# shoal benchmarks",
        "",
        "Written by `make bench` (`bench/run_all.py`), which runs every `bench/*.py` one after",
        "another and puts each figure next to a peer measured in the same run on the same",
        "machine. Ratio = shoal / peer; the last column says which direction is better.",
        "Each script's docstring says exactly what it measures and how.",
        "",
        f"- date: {started:%Y-%m-%d %H:%M} UTC" + (" (quick smoke run, not representative)" if quick else ""),
        f"- machine: {box['cpu']}, {box['cores']} cores, {box['memory']} memory; "
        f"{box['os']}, {box['kernel']}; Python {box['python']}",
        "- the machine is shared (other work was running); the load average before each area",
        "  is given with it",
        "",
    ]
    for o in outcomes:
        lines += [f"## {o.area.title}", "",
                  f"`{o.command}` — {o.seconds:.0f} s, load average {o.load_before:.1f} before", ""]
        if o.error:
            lines += [f"**Not measured**: {o.error}", ""]
            continue
        lines += ["| figure | shoal | peer | peer value | ratio | better |",
                  "|---|---:|---|---:|---:|---|"]
        for r in o.rows:
            unit = f" {r.unit}" if r.unit else ""
            lines.append(
                f"| {r.figure} | {fmt(r.shoal)}{unit} | {r.peer or '—'} | "
                f"{fmt(r.peer_value) + unit if r.peer_value is not None else '—'} | "
                f"{f'{r.ratio:.2f}x' if r.ratio is not None else '—'} | {r.better} |")
        lines.append("")
        lines += [f"- {n}" for n in o.notes]
        if o.notes:
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated areas: " + ",".join(a.name for a in AREAS))
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--out", type=Path, default=BENCH / "RESULTS.md")
    args = parser.parse_args()
    wanted = [a for a in AREAS if not args.only or a.name in args.only.split(",")]
    unknown = set(filter(None, args.only.split(","))) - {a.name for a in AREAS}
    if unknown:
        parser.error(f"--only: unknown area(s) {sorted(unknown)}; known: {[a.name for a in AREAS]}")
    if os.geteuid() != 0:
        parser.error("the benchmarks need root (network namespaces, runc, mounts)")
    started = dt.datetime.now(dt.timezone.utc)
    box = machine()
    outcomes = [run_area(area, args.quick) for area in wanted]
    args.out.write_text(render(outcomes, started, box, args.quick))
    failed = [o.area.name for o in outcomes if o.error]
    print(f"wrote {args.out}" + (f"; not measured: {', '.join(failed)}" if failed else ""))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
