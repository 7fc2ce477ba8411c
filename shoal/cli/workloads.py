"""`shoal scale`, `shoal rollout status|undo|history|restart`, `shoal top pods`.

Workload commands in kubectl's words. They talk to the API like any client (HTTPS with
the kubeconfig, `shoal.cli.resources.run_api`); `rollout undo/history` use the
controllers' `rollback`/`history` so the CLI and the controller agree on revisions.
`top pods` reads cgroup figures through the runtime's `stats` for each running container
of the listed pods (two samples `--interval` apart give the CPU rate), as metrics-server
would report them.

Pure helpers (`parse_target`, `rollout_status`, `format_cpu`, `format_memory`) carry the
decisions and are unit-tested; the commands are thin.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any, Mapping

import click

from shoal.cli.context import settings_from

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


def _run(ctx: click.Context, fn: Any) -> Any:
    from shoal.cli.resources import run_api

    return run_api(ctx, fn)


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

    _run(ctx, run)
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

    _run(ctx, run)


@rollout.command("undo")
@click.argument("target", nargs=-1, required=True)
@click.option("-n", "--namespace", default="default")
@click.option("--to-revision", type=int, default=0, help="Revision to roll back to (0: the previous one).")
@click.pass_context
def rollout_undo(ctx: click.Context, target: tuple[str, ...], namespace: str, to_revision: int) -> None:
    """Roll the Deployment back to a previous template."""
    from shoal.controllers.deployment import rollback
    from shoal.controllers.errors import ControllerError

    resource, _, name = parse_target(target, allowed=("deployments.apps",))

    async def run(client: Any) -> str:
        try:
            result = await rollback(client, namespace, name, to_revision)
        except ControllerError as exc:
            raise click.ClickException(str(exc)) from None
        return result.message

    click.echo(_run(ctx, run))


@rollout.command("history")
@click.argument("target", nargs=-1, required=True)
@click.option("-n", "--namespace", default="default")
@click.option("--revision", type=int, default=0, help="Show the pod template of this revision.")
@click.pass_context
def rollout_history(ctx: click.Context, target: tuple[str, ...], namespace: str, revision: int) -> None:
    """List the Deployment's revisions (REVISION, CHANGE-CAUSE)."""
    from shoal.controllers.deployment import history

    resource, display, name = parse_target(target, allowed=("deployments.apps",))

    async def run(client: Any) -> str:
        revisions = [(rev, rs) for rev, rs in await history(client, namespace, name) if rev > 0]
        if revision:
            found = dict(revisions).get(revision)
            if found is None:
                raise click.ClickException(f"unable to find the specified revision {revision}")
            import yaml

            template = found["spec"]["template"]
            return (f"{display}/{name} with revision #{revision}\n"
                    + yaml.safe_dump(template, sort_keys=False).rstrip())
        lines = [f"{display}/{name}", "REVISION  CHANGE-CAUSE"]
        for rev, rs in revisions:
            cause = (rs["metadata"].get("annotations") or {}).get(CHANGE_CAUSE, "<none>")
            lines.append(f"{rev:<9} {cause}")
        return "\n".join(lines)

    click.echo(_run(ctx, run))


@rollout.command("restart")
@click.argument("target", nargs=-1, required=True)
@click.option("-n", "--namespace", default="default")
@click.pass_context
def rollout_restart(ctx: click.Context, target: tuple[str, ...], namespace: str) -> None:
    """Restart every pod of the Deployment with a rolling update."""
    resource, display, name = parse_target(target, allowed=("deployments.apps",))
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    async def run(client: Any) -> None:
        patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
        await client.patch(resource, namespace, name, patch, "merge")

    _run(ctx, run)
    click.echo(f"{display}/{name} restarted")


async def pod_usage(client: Any, runtime: Any, namespace: str | None, name: str | None = None,
                    interval: float = 0.5) -> list[tuple[str, str, str, float, int]]:
    """(namespace, pod, container, CPU millicores, memory bytes) of every running container
    of the pods listed: two `runtime.stats` samples `interval` seconds apart."""
    from shoal.node import paths

    pods, _ = await client.list("pods", namespace)
    if name:
        pods = [p for p in pods if p["metadata"]["name"] == name]
        if not pods:
            raise click.ClickException(f'pods "{name}" not found')
    targets = []
    for p in pods:
        st = p.get("status") or {}
        for cs in (st.get("containerStatuses") or []) + (st.get("initContainerStatuses") or []):
            if "running" in (cs.get("state") or {}):
                cid = paths.container_id(p["metadata"]["uid"], cs["name"], int(cs.get("restartCount") or 0))
                targets.append((p["metadata"]["namespace"], p["metadata"]["name"], cs["name"], cid))

    async def sample() -> dict[str, dict]:
        out = {}
        for *_, cid in targets:
            try:
                out[cid] = await runtime.stats(cid)
            except Exception:  # noqa: BLE001 - the container ended between list and stats
                continue
        return out

    first = await sample()
    t0 = time.monotonic()
    await asyncio.sleep(interval)
    second = await sample()
    elapsed = time.monotonic() - t0
    rows = []
    for ns_, pod, cname, cid in targets:
        if cid not in first or cid not in second:
            continue
        cpu_ns = (second[cid].get("cpu_usage_ns") or 0) - (first[cid].get("cpu_usage_ns") or 0)
        millicores = max(0.0, cpu_ns / 1e9 / elapsed * 1000)
        rows.append((ns_, pod, cname, millicores, int(second[cid].get("memory_bytes") or 0)))
    return rows


@click.group()
def top() -> None:
    """Resource use of pods (cgroup CPU and memory)."""


@top.command("pods")
@click.argument("name", required=False)
@click.option("-n", "--namespace", default="default")
@click.option("-A", "--all-namespaces", is_flag=True)
@click.option("--containers", is_flag=True, help="One line per container.")
@click.option("--interval", type=float, default=0.5, help="Seconds between the two CPU samples.")
@click.pass_context
def top_pods(ctx: click.Context, name: str | None, namespace: str, all_namespaces: bool, containers: bool,
             interval: float) -> None:
    """CPU (millicores) and memory of running pods: `shoal top pods`."""
    from shoal.node import build_runtime

    settings = settings_from(ctx)
    runtime = build_runtime(settings)

    async def run(client: Any) -> list[tuple[str, str, str, float, int]]:
        return await pod_usage(client, runtime, None if all_namespaces else namespace, name, interval)

    rows = _run(ctx, run)
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
