"""CLI commands: `shoal mesh ...` (injection and capture rules work offline on files).

`shoal mesh inject -f FILE` prints the YAML with sidecars injected, like
`istioctl kube-inject`: every Pod, and the pod template of Deployments, ReplicaSets,
StatefulSets, DaemonSets and Jobs. A pod is injected when `needs_injection` says so
against its Namespace; the Namespace object is looked up in the same file, and when
the file has none, the namespace is assumed enabled (you asked for injection). The
pod's own `sidecar.istio.io/inject: "false"` is honoured. A pod that cannot be meshed
(its app runs as UID 1337) is an error naming the field.

`shoal mesh capture-rules -f FILE` prints the iptables-restore rules the node agent
installs in the netns of each Pod in FILE (exclusion annotations applied).

`shoal mesh proxy-config KIND --netns NETNS` reads a live sidecar's admin API in that
netns and prints clusters, listeners, routes, endpoints or secrets as a table. (Once
the daemon exists, it resolves POD to its sandbox netns; `shoal mesh status` and
`shoal mesh check` need the running control plane and come with the daemon wiring.)
"""

from __future__ import annotations

import asyncio
import json
import sys

import click
import yaml

from shoal.cli.context import settings_from
from shoal.cli.resources import run_api
from shoal.mesh import analyze as analysis, capture, inject as injection, proxyconfig
from shoal.mesh.errors import CaptureError, MeshError
from shoal.mesh.meshconfig import MeshConfig
from shoal.mesh.source import KINDS as MESH_KINDS, ClusterState
from shoal.network import PodNetwork
from shoal.store import Allocations

TEMPLATE_KINDS = {"Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job"}


def _load(path: str) -> list[dict]:
    with click.open_file(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def _namespace_of(doc: dict, namespaces: dict[str, dict]) -> dict:
    name = (doc.get("metadata") or {}).get("namespace") or "default"
    return namespaces.get(name) or {"metadata": {"name": name,
                                                 "labels": {"istio-injection": "enabled"}}}


def inject_documents(docs: list[dict], options: injection.InjectOptions) -> tuple[list[dict], list[str]]:
    """(documents with sidecars, error messages). Pure; used by the command and tests."""
    namespaces = {d["metadata"]["name"]: d for d in docs
                  if d.get("kind") == "Namespace" and d.get("metadata", {}).get("name")}
    out, errors = [], []
    for doc in docs:
        kind = doc.get("kind")
        name = (doc.get("metadata") or {}).get("name", "?")
        ns = _namespace_of(doc, namespaces)
        if kind == "Pod":
            pod, errs = injection.admit_pod(doc, ns, options)
            errors += [f"Pod {name!r}: {e}" for e in errs]
            out.append(pod)
        elif kind in TEMPLATE_KINDS and (doc.get("spec") or {}).get("template"):
            template = dict(doc["spec"]["template"])
            template.setdefault("metadata", {})
            template["metadata"] = {**template["metadata"],
                                    "namespace": ns["metadata"]["name"]}
            pod, errs = injection.admit_pod(template, ns, options)
            errors += [f"{kind} {name!r}: {str(e).replace('spec.', 'spec.template.spec.', 1)}"
                       for e in errs]
            pod["metadata"].pop("namespace", None)
            if (doc["spec"]["template"].get("metadata") or {}).get("namespace"):
                pod["metadata"]["namespace"] = doc["spec"]["template"]["metadata"]["namespace"]
            doc = {**doc, "spec": {**doc["spec"], "template": pod}}
            out.append(doc)
        else:
            out.append(doc)
    return out, errors


@click.group()
def mesh() -> None:
    """Service mesh: sidecar injection, capture rules, live proxy config."""


@mesh.command("inject")
@click.option("-f", "--filename", required=True, help="YAML file ('-' for stdin).")
@click.option("--image", default=injection.DEFAULT_IMAGE, show_default=True,
              help="Sidecar image marker.")
def inject_command(filename: str, image: str) -> None:
    """Print FILE with Envoy sidecars injected into its pods and pod templates."""
    docs, errors = inject_documents(_load(filename), injection.InjectOptions(image=image))
    if errors:
        for error in errors:
            click.echo(f"error: {error}", err=True)
        sys.exit(1)
    click.echo(yaml.safe_dump_all(docs, sort_keys=False), nl=False)


@mesh.command("capture-rules")
@click.option("-f", "--filename", required=True, help="YAML file with Pods ('-' for stdin).")
def capture_rules_command(filename: str) -> None:
    """Print the iptables-restore rules installed in each Pod's netns."""
    for doc in _load(filename):
        if doc.get("kind") != "Pod":
            continue
        try:
            options = capture.capture_options_from_pod(doc)
        except CaptureError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"# pod {doc['metadata'].get('name')}")
        click.echo(capture.render_capture_rules(options), nl=False)


@mesh.command("proxy-config")
@click.argument("kind", type=click.Choice(proxyconfig.KINDS))
@click.argument("pod", required=False)
@click.option("-n", "--namespace", default="default", show_default=True, help="Namespace of POD.")
@click.option("--netns", default=None,
              help="Read the sidecar in this network namespace instead of looking POD up.")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table")
@click.pass_context
def proxy_config_command(ctx: click.Context, kind: str, pod: str | None, namespace: str,
                         netns: str | None, output: str) -> None:
    """Show a sidecar's clusters, listeners, routes, endpoints or secrets
    (`shoal mesh proxy-config clusters POD -n NS`, like istioctl proxy-config)."""
    if netns is None:
        if pod is None:
            raise click.UsageError("name a POD (or give --netns)")
        netns = _pod_netns(ctx, namespace, pod)
    try:
        raw = asyncio.run(proxyconfig.admin_get(netns, proxyconfig.ADMIN_PATHS[kind]))
    except MeshError as exc:
        raise click.ClickException(str(exc)) from None
    rows = proxyconfig.ROW_BUILDERS[kind](json.loads(raw))
    if output == "json":
        click.echo(json.dumps(rows, indent=2))
    else:
        click.echo(proxyconfig.format_table(rows), nl=False)


def _pod_netns(ctx: click.Context, namespace: str, pod: str) -> str:
    """The network namespace of a pod on this node (its sandbox record)."""
    settings = settings_from(ctx)
    allocations = Allocations(settings.store_path)
    try:
        sandbox = asyncio.run(PodNetwork(settings, allocations).get_sandbox(f"{namespace}/{pod}"))
    finally:
        allocations.close()
    if sandbox is None:
        raise click.ClickException(f'pod {namespace}/{pod} has no sandbox on this node '
                                   f'(not running, or not a pod of this state dir)')
    return sandbox.netns_name


def _mesh_report(ctx: click.Context) -> dict:
    async def fetch(client) -> dict:
        return await client.request("GET", "/shoal/v1/mesh/status")

    return run_api(ctx, fetch)


@mesh.command("status")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table")
@click.pass_context
def status_command(ctx: click.Context, output: str) -> None:
    """Every sidecar: connected, per-type sync (CDS EDS LDS RDS SDS), cert expiry, last NACK."""
    rows = _mesh_report(ctx)["proxies"]
    if output == "json":
        click.echo(json.dumps(rows, indent=2))
    elif not rows:
        click.echo("No sidecars are connected.")
    else:
        click.echo(proxyconfig.format_table(rows), nl=False)


@mesh.command("check")
@click.pass_context
def check_command(ctx: click.Context) -> None:
    """Find problems: pods without sidecars in meshed namespaces, NACKs, proxies out of
    sync, expired or expiring certificates. Exits 1 when there is any."""
    findings = _mesh_report(ctx)["findings"]
    if not findings:
        click.echo("No problems found.")
        return
    for finding in findings:
        click.echo(f"- {finding}")
    ctx.exit(1)


COMMANDS = [mesh]


# -- shoal mesh analyze -----------------------------------------------------------------------
# (the analysis reads the API like any client)

ANALYZE_FOUND_ISSUES = 79
"""istioctl's exit code when analysis finds messages at or above the failure threshold."""


async def cluster_state(client) -> ClusterState:
    """Every object the mesh reads, listed over the API (`ApiClient.list`)."""
    objects = []
    for kind in MESH_KINDS:
        items, _ = await client.list(kind)
        objects += [(kind, item) for item in items]
    return ClusterState.of(objects)


@mesh.command("analyze")
@click.option("-n", "--namespace", default="default", show_default=True,
              help="Analyze the VirtualServices and DestinationRules of this namespace.")
@click.option("-A", "--all-namespaces", is_flag=True, help="Analyze every namespace.")
@click.option("-o", "--output", type=click.Choice(["log", "json", "yaml"]), default="log")
@click.pass_context
def analyze_command(ctx: click.Context, namespace: str, all_namespaces: bool, output: str) -> None:
    """Report problems in VirtualServices and DestinationRules as `istioctl analyze` does
    (missing hosts and subsets, conflicting hosts, subsets selecting no pod, ...).
    Exits 79 when there is an error."""
    state = run_api(ctx, cluster_state)
    mesh_config = MeshConfig.from_settings(settings_from(ctx))
    messages = analysis.analyze(state, mesh_config, None if all_namespaces else namespace)
    if output == "json":
        click.echo(json.dumps([m.to_json() for m in messages], indent=2))
    elif output == "yaml":
        click.echo(yaml.safe_dump([m.to_json() for m in messages], sort_keys=False), nl=False)
    elif not messages:
        where = "all namespaces" if all_namespaces else f"namespace: {namespace}"
        click.echo(f"\u2714 No validation issues found when analyzing {where}.")
    else:
        for message in messages:
            click.echo(str(message))
    if analysis.has_errors(messages):
        ctx.exit(ANALYZE_FOUND_ISSUES)
