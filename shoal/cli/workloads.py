"""`shoal scale`, `shoal rollout status|undo|history|restart`, `shoal top pods`.

Workload commands in kubectl's words. They talk to the API like any client (HTTPS with
the kubeconfig, `shoal.cli.resources.run_api`); `rollout undo/history` use the
controllers' `rollback`/`history` so the CLI and the controller agree on revisions.
`top pods` reads the metrics API (`metrics.k8s.io/v1beta1` PodMetrics, which the daemon
serves from the node's cgroup figures), as `kubectl top pods` does.

Pure helpers (`parse_target`, `rollout_status`, `format_cpu`, `format_memory`,
`parse_cpu`, `parse_memory`, `usage_rows`) carry the
decisions and are unit-tested; the commands are thin.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Mapping

import click
import yaml

from shoal import timestamps
from shoal.cli.resources import run_api
from shoal.controllers.deployment import history, rollback
from shoal.controllers.errors import ControllerError

KINDS = {
    "deployment": ("deployments.apps", "deployment.apps"),
    "deployments": ("deployments.apps", "deployment.apps"),
    "deploy": ("deployments.apps", "deployment.apps"),
    "deployment.apps": ("deployments.apps", "deployment.apps"),
    "replicaset": ("replicasets.apps", "replicaset.apps"),
    "replicasets": ("replicasets.apps", "replicaset.apps"),
    "rs": ("replicasets.apps", "replicaset.apps"),
    "replicaset.apps": ("replicasets.apps", "replicaset.apps"),
}
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
METRICS_GROUP_VERSION = "metrics.k8s.io/v1beta1"
CHANGE_CAUSE = "kubernetes.io/change-cause"


def parse_target(args: tuple[str, ...], *, allowed: tuple[str, ...] = ("deployments.apps", "replicasets.apps")
                 ) -> tuple[str, str, str]:
    """`deployment/web` or `deployment web` -> (resource, display kind, name)."""
    if len(args) == 1 and "/" in args[0]:
        kind, _, name = args[0].partition("/")
    elif len(args) == 2:
        kind, name = args
    else:
        raise click.UsageError("expected TYPE/NAME or TYPE NAME, e.g. deployment/web")
    if kind.lower() not in KINDS or KINDS[kind.lower()][0] not in allowed:
        names = ", ".join(sorted({KINDS[k][1] for k in KINDS if KINDS[k][0] in allowed}))
        raise click.UsageError(f'no support for "{kind}": expected one of {names}')
    resource, display = KINDS[kind.lower()]
    if not name:
        raise click.UsageError("a resource name is required")
    return resource, display, name


def rollout_status(d: Mapping[str, Any]) -> tuple[str, bool]:
    """(message, done) for a Deployment, as kubectl's DeploymentStatusViewer says it.
    Raises click.ClickException when the progress deadline was exceeded."""
    name = d["metadata"]["name"]
    spec, st = d.get("spec") or {}, d.get("status") or {}
    if d["metadata"].get("generation", 0) > st.get("observedGeneration", 0):
        return "Waiting for deployment spec update to be observed...", False
    for cond in st.get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            raise click.ClickException(f'deployment "{name}" exceeded its progress deadline')
    replicas = spec.get("replicas", 1)
    updated = st.get("updatedReplicas", 0)
    total = st.get("replicas", 0)
    available = st.get("availableReplicas", 0)
    if updated < replicas:
        return (f'Waiting for deployment "{name}" rollout to finish: {updated} out of {replicas} '
                f"new replicas have been updated..."), False
    if total > updated:
        return (f'Waiting for deployment "{name}" rollout to finish: {total - updated} old replicas '
                f"are pending termination..."), False
    if available < updated:
        return (f'Waiting for deployment "{name}" rollout to finish: {available} of {updated} '
                f"updated replicas are available..."), False
    return f'deployment "{name}" successfully rolled out', True


def format_cpu(millicores: float) -> str:
    return f"{int(round(millicores))}m"


def format_memory(num_bytes: int) -> str:
    return f"{int(num_bytes // (1024 * 1024))}Mi"


@click.command()
@click.argument("target", nargs=-1, required=True)
@click.option("--replicas", type=click.IntRange(min=0), required=True, help="The new number of replicas.")
@click.option("-n", "--namespace", default="default")
@click.pass_context
def scale(ctx: click.Context, target: tuple[str, ...], replicas: int, namespace: str) -> None:
    """Set the replicas of a Deployment or ReplicaSet: `shoal scale deployment/web --replicas 3`."""
    resource, display, name = parse_target(target)

    async def run(client: Any) -> None:
        await client.patch(resource, namespace, name, {"spec": {"replicas": replicas}}, "merge")

    run_api(ctx, run)
    click.echo(f"{display}/{name} scaled")


@click.group()
def rollout() -> None:
    """Manage the rollout of a Deployment (status, undo, history, restart)."""


@rollout.command("status")
@click.argument("target", nargs=-1, required=True)
@click.option("-n", "--namespace", default="default")
@click.option("--timeout", type=float, default=0, help="Seconds to wait (0: forever).")
@click.option("-w", "--watch/--no-watch", default=True, help="Wait for the rollout to finish.")
@click.pass_context
def rollout_status_cmd(ctx: click.Context, target: tuple[str, ...], namespace: str, timeout: float,
                       watch: bool) -> None:
    """Wait until the Deployment's rollout completes, printing progress like kubectl."""
    resource, _, name = parse_target(target, allowed=("deployments.apps",))

    async def run(client: Any) -> None:
        deadline = time.monotonic() + timeout if timeout else None
        last = None
        while True:
            d = await client.get(resource, namespace, name)
            message, done = rollout_status(d)
            if message != last:
                click.echo(message)
                last = message
            if done or not watch:
                return
            if deadline and time.monotonic() > deadline:
                raise click.ClickException("timed out waiting for the condition")
            # A watch would be event-driven; a short poll keeps this client simple and
            # robust across API restarts.
            await asyncio.sleep(0.5)

    run_api(ctx, run)


@rollout.command("undo")
@click.argument("target", nargs=-1, required=True)
@click.option("-n", "--namespace", default="default")
@click.option("--to-revision", type=int, default=0, help="Revision to roll back to (0: the previous one).")
@click.pass_context
def rollout_undo(ctx: click.Context, target: tuple[str, ...], namespace: str, to_revision: int) -> None:
    """Roll the Deployment back to a previous template."""
    resource, _, name = parse_target(target, allowed=("deployments.apps",))

    async def run(client: Any) -> str:
        try:
            result = await rollback(client, namespace, name, to_revision)
        except ControllerError as exc:
            raise click.ClickException(str(exc)) from None
        return result.message

    click.echo(run_api(ctx, run))


@rollout.command("history")
@click.argument("target", nargs=-1, required=True)
@click.option("-n", "--namespace", default="default")
@click.option("--revision", type=int, default=0, help="Show the pod template of this revision.")
@click.pass_context
def rollout_history(ctx: click.Context, target: tuple[str, ...], namespace: str, revision: int) -> None:
    """List the Deployment's revisions (REVISION, CHANGE-CAUSE)."""
    resource, display, name = parse_target(target, allowed=("deployments.apps",))

    async def run(client: Any) -> str:
        revisions = [(rev, rs) for rev, rs in await history(client, namespace, name) if rev > 0]
        if revision:
            found = dict(revisions).get(revision)
            if found is None:
                raise click.ClickException(f"unable to find the specified revision {revision}")
            template = found["spec"]["template"]
            return (f"{display}/{name} with revision #{revision}\n"
                    + yaml.safe_dump(template, sort_keys=False).rstrip())
        lines = [f"{display}/{name}", "REVISION  CHANGE-CAUSE"]
        for rev, rs in revisions:
            cause = (rs["metadata"].get("annotations") or {}).get(CHANGE_CAUSE, "<none>")
            lines.append(f"{rev:<9} {cause}")
        return "\n".join(lines)

    click.echo(run_api(ctx, run))


@rollout.command("restart")
@click.argument("target", nargs=-1, required=True)
@click.option("-n", "--namespace", default="default")
@click.pass_context
def rollout_restart(ctx: click.Context, target: tuple[str, ...], namespace: str) -> None:
    """Restart every pod of the Deployment with a rolling update."""
    resource, display, name = parse_target(target, allowed=("deployments.apps",))
    stamp = timestamps.now()

    async def run(client: Any) -> None:
        patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
        await client.patch(resource, namespace, name, patch, "merge")

    run_api(ctx, run)
    click.echo(f"{display}/{name} restarted")


def parse_cpu(quantity: str) -> float:
    """A metrics API CPU quantity ("1234567n", "250m", "2") in millicores."""
    units = {"n": 1e-6, "u": 1e-3, "m": 1.0}
    if quantity and quantity[-1] in units:
        return float(quantity[:-1]) * units[quantity[-1]]
    return float(quantity) * 1000


def parse_memory(quantity: str) -> int:
    """A metrics API memory quantity ("2048Ki", "3Mi", "1000") in bytes."""
    units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "k": 1000, "M": 1000 ** 2, "G": 1000 ** 3}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return int(float(quantity[: -len(suffix)]) * factor)
    return int(float(quantity))


def usage_rows(items: list[dict[str, Any]]) -> list[tuple[str, str, str, float, int]]:
    """PodMetrics -> (namespace, pod, container, CPU millicores, memory bytes) rows."""
    rows = []
    for item in items:
        meta = item["metadata"]
        for c in item.get("containers") or []:
            rows.append((meta.get("namespace", ""), meta["name"], c["name"],
                         parse_cpu(c["usage"]["cpu"]), parse_memory(c["usage"]["memory"])))
    return rows


@click.group()
def top() -> None:
    """Resource use of pods, from the metrics API (metrics.k8s.io, as `kubectl top`)."""


@top.command("pods")
@click.argument("name", required=False)
@click.option("-n", "--namespace", default="default")
@click.option("-A", "--all-namespaces", is_flag=True)
@click.option("-l", "--selector", default=None, help="Label selector, e.g. app=web.")
@click.option("--containers", is_flag=True, help="One line per container.")
@click.pass_context
def top_pods(ctx: click.Context, name: str | None, namespace: str, all_namespaces: bool,
             selector: str | None, containers: bool) -> None:
    """CPU (millicores) and memory of running pods: `shoal top pods`."""
    base = f"/apis/{METRICS_GROUP_VERSION}"

    async def run(client: Any) -> list[tuple[str, str, str, float, int]]:
        if name:
            item = await client.request("GET", f"{base}/namespaces/{namespace}/pods/{name}")
            return usage_rows([item])
        path = f"{base}/pods" if all_namespaces else f"{base}/namespaces/{namespace}/pods"
        listed = await client.request("GET", path, params={"labelSelector": selector})
        return usage_rows(listed.get("items") or [])

    rows = run_api(ctx, run)
    if not rows:
        click.echo("No resources found" + ("" if all_namespaces else f" in {namespace} namespace") + ".")
        return
    lines: list[list[str]] = []
    if containers:
        header = (["NAMESPACE"] if all_namespaces else []) + ["POD", "NAME", "CPU(cores)", "MEMORY(bytes)"]
        for ns_, pod, cname, cpu, mem in rows:
            lines.append(([ns_] if all_namespaces else []) + [pod, cname, format_cpu(cpu), format_memory(mem)])
    else:
        header = (["NAMESPACE"] if all_namespaces else []) + ["NAME", "CPU(cores)", "MEMORY(bytes)"]
        per_pod: dict[tuple[str, str], list[float]] = {}
        for ns_, pod, _, cpu, mem in rows:
            acc = per_pod.setdefault((ns_, pod), [0.0, 0])
            acc[0] += cpu
            acc[1] += mem
        for (ns_, pod), (cpu, mem) in per_pod.items():
            lines.append(([ns_] if all_namespaces else []) + [pod, format_cpu(cpu), format_memory(int(mem))])
    widths = [max(len(r[i]) for r in [header] + lines) for i in range(len(header))]
    for r in [header] + lines:
        click.echo("   ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())


COMMANDS = [scale, rollout, top]
