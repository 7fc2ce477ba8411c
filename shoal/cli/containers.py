"""`shoal run / ps / stop / rm / logs / exec`: containers without a daemon, like podman.

The commands drive `shoal.runtime.Runtime` directly over the state dir's containers
root, so they see (and may stop) every container there, including the node agent's.
Images come from `shoal.images.ImageStore`; each `run` gets its own overlay snapshot,
keyed by the container id and removed with the container.

Names: `logs` and `exec` turn what the user typed into a `Lookup` (name, -c, -n,
--previous) and ask `RESOLVERS` in order for a `Target` (container id, log file); the
built-in one matches a container id, a --name, or a unique id prefix, and declines pod
syntax (-c/-n). The node agent's pod lookup plugs in with `register_resolver`
(`shoal.node.access.resolve_container` already returns the (id, log path) pair).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import os
import re
import signal
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable

import click

from shoal.cli import podstreams
from shoal.cli.context import settings_from
from shoal.runtime import (
    ContainerIntent, ContainerNotFound, ContainerStatus, Resources, Runtime, RuntimeFailure, create_container,
)
from shoal.runtime import logs as runtime_logs
from shoal.images import ImageError, ImageStore

LABEL_IMAGE = "io.shoal.image"
LABEL_SNAPSHOT = "io.shoal.snapshot"
CGROUP_PARENT_ENV = "SHOAL_CGROUP_PARENT"


@dataclass(frozen=True)
class Target:
    """What `logs`/`exec` act on: a container (if it still exists) and its log file."""

    container_id: str | None
    log_path: Path
    pod: podstreams.PodRef | None = None
    """Set for a pod's container: `logs` and `exec` then go through the API."""


@dataclass(frozen=True)
class Lookup:
    """What the user named: `shoal logs [-n NS] [-c CONTAINER] [-p] NAME`."""

    name: str
    container: str | None = None
    namespace: str | None = None
    previous: bool = False


Resolver = Callable[[click.Context, Runtime, Lookup], Awaitable["Target | None"]]
"""Returns the target, None when the name is not its kind, or raises ClickException."""


async def resolve_local_container(ctx: click.Context, rt: Runtime, lookup: Lookup) -> Target | None:
    """A container under the runtime root by id, --name, or unique id prefix."""
    if lookup.container or lookup.namespace:
        return None  # pod syntax: not a plain container
    statuses = await rt.list()
    found = [s for s in statuses if s.id == lookup.name] or [s for s in statuses if s.name == lookup.name]
    if not found:
        found = [s for s in statuses if s.id.startswith(lookup.name)]
        if len(found) > 1:
            raise click.ClickException(f"{lookup.name!r} matches {len(found)} containers; give more of the id")
    if len(found) != 1:
        return None
    cid = found[0].id
    if lookup.previous:
        previous = rt.log_path(cid).with_name(rt.log_path(cid).name + ".previous")
        if not previous.exists():
            raise click.ClickException(f"container {lookup.name}: no previous log")
        return Target(None, previous)
    return Target(cid, rt.log_path(cid))


RESOLVERS: list[Resolver] = [resolve_local_container]


def register_resolver(resolver: Resolver, *, first: bool = False) -> None:
    """Add a lookup (e.g. the node agent's pods); `first` lets it win over container names."""
    if first:
        RESOLVERS.insert(0, resolver)
    else:
        RESOLVERS.append(resolver)


async def resolve(ctx: click.Context, rt: Runtime, lookup: Lookup | str) -> Target:
    lookup = Lookup(lookup) if isinstance(lookup, str) else lookup
    for resolver in RESOLVERS:
        target = await resolver(ctx, rt, lookup)
        if target is not None:
            return target
    if lookup.container or lookup.namespace:
        raise click.ClickException(f"no pod lookup for {lookup.name} (-c/-n need the node agent's resolver)")
    raise click.ClickException(f"no such container: {lookup.name}")


# -- helpers -----------------------------------------------------------------------------


def _runtime(ctx: click.Context) -> Runtime:
    settings = settings_from(ctx)
    return Runtime(settings.containers_dir, cgroup_parent=os.environ.get(CGROUP_PARENT_ENV, "shoal"))


def _errors(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except RuntimeFailure as exc:
            raise click.ClickException(str(exc)) from None
    return wrapper


_SIZE = re.compile(r"^(\d+(?:\.\d+)?)([kmgKMG]i?)?[bB]?$")


def parse_size(text: str) -> int:
    """64m, 1g, 512k, 100Mi, or bytes."""
    m = _SIZE.match(text.strip())
    if not m:
        raise click.BadParameter(f"expected a size like 64m or 1g, got {text!r}")
    unit = (m.group(2) or "").lower().rstrip("i")
    return int(float(m.group(1)) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[unit])


def parse_since(text: str, now: dt.datetime | None = None) -> dt.datetime:
    """A duration (10s, 5m, 2h) back from now, or an RFC3339 time."""
    now = now or dt.datetime.now(dt.timezone.utc)
    m = re.match(r"^(\d+(?:\.\d+)?)(s|m|h)$", text)
    if m:
        seconds = float(m.group(1)) * {"s": 1, "m": 60, "h": 3600}[m.group(2)]
        return now - dt.timedelta(seconds=seconds)
    try:
        return runtime_logs.parse_time(text)
    except ValueError:
        raise click.BadParameter(f"expected a duration like 10m or an RFC3339 time, got {text!r}") from None


def _ago(when: dt.datetime | None, now: dt.datetime) -> str:
    if when is None:
        return "?"
    seconds = int((now - when).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def describe_status(st: ContainerStatus, now: dt.datetime) -> str:
    if st.state == "running":
        return f"Up {_ago(st.started_at, now)}"
    if st.state == "exited":
        extra = " (OOMKilled)" if st.oom_killed else ""
        return f"Exited ({st.exit_code}){extra} {_ago(st.finished_at, now)} ago"
    return st.state.capitalize()


async def _print_logs(rt: Runtime, target: Target, *, follow: bool, tail: int | None,
                      since: dt.datetime | None, timestamps: bool) -> None:
    async def running() -> bool:
        if target.container_id is None:
            return False
        try:
            return (await rt.status(target.container_id)).state in ("running", "created")
        except ContainerNotFound:
            return False

    async for line in runtime_logs.stream_logs(target.log_path, follow=follow, tail=tail, since=since,
                                               is_running=running):
        out = sys.stdout if line.stream == "stdout" else sys.stderr
        prefix = line.time.strftime("%Y-%m-%dT%H:%M:%S.%fZ ") if timestamps else ""
        out.write(f"{prefix}{line.text}\n")
        out.flush()


def _remove_snapshot(ctx: click.Context, key: str | None) -> None:
    if not key:
        return
    ImageStore(settings_from(ctx).images_dir).snapshots.remove(key)


async def _delete(ctx: click.Context, rt: Runtime, cid: str, force: bool) -> None:
    st = await rt.status(cid)
    await rt.delete(cid, force=force)
    await asyncio.to_thread(_remove_snapshot, ctx, st.labels.get(LABEL_SNAPSHOT))


# -- commands ----------------------------------------------------------------------------


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--rm", "remove", is_flag=True, help="Delete the container (and its snapshot) when it exits.")
@click.option("-d", "--detach", is_flag=True, help="Print the id and leave it running.")
@click.option("--name", default=None, help="Name (also the id when it is a valid one).")
@click.option("-e", "--env", "env", multiple=True, help="K=V, repeatable.")
@click.option("--memory", "-m", default=None, help="Memory limit, e.g. 64m.")
@click.option("--pids", "pids", type=int, default=None, help="Maximum number of processes.")
@click.option("--cpus", type=float, default=None, help="CPU limit in cores, e.g. 0.5.")
@click.option("-w", "--workdir", default=None, help="Working directory inside the container.")
@click.option("-u", "--user", default=None, help="uid[:gid] or name[:group].")
@click.option("--entrypoint", default=None, help="Override the image Entrypoint.")
@click.option("--network", default="none", show_default=True, help="none, host, or a netns path.")
@click.option("-i", "--interactive", is_flag=True, help="Attach stdin (closed for the container at EOF).")
@click.option("-t", "--tty", is_flag=True, help="Give the container a terminal (its output is also logged).")
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
@_errors
def run(ctx: click.Context, remove: bool, detach: bool, name: str | None, env: tuple[str, ...], memory: str | None,
        pids: int | None, cpus: float | None, workdir: str | None, user: str | None, entrypoint: str | None,
        network: str, interactive: bool, tty: bool, image: str, command: tuple[str, ...]) -> None:
    """Run IMAGE [COMMAND...] in a new container (COMMAND replaces the image's Cmd)."""
    rt = _runtime(ctx)
    cid = name if name and re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", name) else uuid.uuid4().hex[:12]
    for item in env:
        if "=" not in item:
            raise click.BadParameter(f"expected K=V, got {item!r}", param_hint="-e")
    taken = [s for s in asyncio.run(rt.list()) if s.id == cid or (name and s.name == name)]
    if taken:
        raise click.ClickException(f"the name {name or cid!r} is in use by container {taken[0].id}; rm it first")
    store = ImageStore(settings_from(ctx).images_dir)
    try:
        img = store.resolve(image)
    except ImageError as exc:
        raise click.ClickException(str(exc)) from None

    def build_intent(rootfs: Path) -> ContainerIntent:
        return ContainerIntent(
            id=cid, rootfs=rootfs, name=name or cid,
            command=[entrypoint, *command] if entrypoint else None,
            args=list(command) if command and not entrypoint else None,
            env=list(env), working_dir=workdir, user=user, network=network, tty=tty,
            stdin=interactive, stdin_once=interactive,
            resources=Resources(memory_limit_bytes=parse_size(memory) if memory else None,
                                cpu_limit_millicores=int(cpus * 1000) if cpus else None, pids_limit=pids),
            labels={LABEL_IMAGE: image, LABEL_SNAPSHOT: cid},
            annotations={LABEL_IMAGE: image},
        )

    async def create(start: bool) -> None:
        """Snapshot, create (and start); nothing is left behind when it fails."""
        try:
            await create_container(rt, build_intent, img.config, snapshots=store.snapshots, key=cid, image=img,
                                   start=start)
        except ImageError as exc:
            raise click.ClickException(str(exc)) from None

    async def finish() -> int:
        st = await rt.wait(cid)
        if remove:
            await _delete(ctx, rt, cid, force=True)
        return st.exit_code if st.exit_code is not None else 1

    if (interactive or tty) and not detach:
        # attach before start so no output is missed; the terminal is ours until it ends
        asyncio.run(create(start=False))
        try:
            rt.attach_interactive(cid, start=True)
        except BaseException:
            asyncio.run(_delete(ctx, rt, cid, force=True))
            raise
        sys.exit(asyncio.run(finish()))

    async def main() -> int:
        await create(start=True)
        if detach:
            click.echo(cid)
            return 0
        target = Target(cid, rt.log_path(cid))
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        printer = asyncio.create_task(_print_logs(rt, target, follow=True, tail=None, since=None, timestamps=False))
        waiter = asyncio.create_task(rt.wait(cid))
        stopper = asyncio.create_task(stopping.wait())
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if not waiter.done():
            await rt.stop(cid, grace_seconds=10)
        await waiter
        await printer
        stopper.cancel()
        return await finish()

    sys.exit(asyncio.run(main()))


@click.command()
@click.option("-a", "--all", "show_all", is_flag=True, help="Also show exited containers.")
@click.option("-q", "--quiet", is_flag=True, help="Only ids.")
@click.pass_context
@_errors
def ps(ctx: click.Context, show_all: bool, quiet: bool) -> None:
    """List containers."""
    statuses = asyncio.run(_runtime(ctx).list())
    if not show_all:
        statuses = [s for s in statuses if s.state in ("running", "created")]
    if quiet:
        for s in statuses:
            click.echo(s.id)
        return
    now = dt.datetime.now(dt.timezone.utc)
    rows = [("CONTAINER ID", "NAME", "IMAGE", "COMMAND", "CREATED", "STATUS")]
    for s in statuses:
        command = " ".join(s.command)
        rows.append((s.id[:12] if len(s.id) > 40 else s.id, s.name or "", s.labels.get(LABEL_IMAGE, s.image or ""),
                     command if len(command) <= 30 else command[:27] + "...", f"{_ago(s.created_at, now)} ago",
                     describe_status(s, now)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())


@click.command()
@click.option("-t", "--time", "grace", type=float, default=10.0, show_default=True,
              help="Seconds to wait after the stop signal before SIGKILL.")
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
@_errors
def stop(ctx: click.Context, grace: float, containers: tuple[str, ...]) -> None:
    """Stop containers: their stop signal, then SIGKILL after the grace period."""
    rt = _runtime(ctx)

    async def main() -> None:
        for name in containers:
            target = await resolve(ctx, rt, name)
            if target.container_id is None:
                raise click.ClickException(f"{name}: no running container")
            await rt.stop(target.container_id, grace)
            click.echo(name)

    asyncio.run(main())


@click.command()
@click.option("-f", "--force", is_flag=True, help="Kill running containers first.")
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
@_errors
def rm(ctx: click.Context, force: bool, containers: tuple[str, ...]) -> None:
    """Delete containers (and the snapshots `run` made for them)."""
    rt = _runtime(ctx)

    async def main() -> None:
        for name in containers:
            target = await resolve(ctx, rt, name)
            if target.container_id is None:
                raise click.ClickException(f"{name}: no such container")
            await _delete(ctx, rt, target.container_id, force)
            click.echo(name)

    asyncio.run(main())


@click.command()
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until the container exits.")
@click.option("--tail", type=int, default=None, help="Only the last N lines.")
@click.option("--since", default=None, help="Only lines newer than a duration (10m) or an RFC3339 time.")
@click.option("--timestamps", is_flag=True, help="Prefix each line with its time.")
@click.option("-p", "--previous", is_flag=True, help="The previous instance's log (pods: the last restart).")
@click.option("-c", "--container", "in_container", default=None, help="Container of a pod (with a pod name).")
@click.option("-n", "--namespace", default=None, help="Namespace of a pod.")
@click.argument("container")
@click.pass_context
@_errors
def logs(ctx: click.Context, follow: bool, tail: int | None, since: str | None, timestamps: bool, previous: bool,
         in_container: str | None, namespace: str | None, container: str) -> None:
    """Print a container's logs (stdout to stdout, stderr to stderr)."""
    rt = _runtime(ctx)
    since_time = parse_since(since) if since else None

    async def main() -> None:
        target = await resolve(ctx, rt, Lookup(container, in_container, namespace, previous))
        if target.pod is not None:  # a pod's container: pods/log, as kubectl reads it
            await podstreams.print_logs(podstreams.kubeconfig_api(settings_from(ctx).kubeconfig_path), target.pod,
                                        follow=follow, tail=tail, since=since_time, timestamps=timestamps)
            return
        await _print_logs(rt, target, follow=follow, tail=tail, since=since_time, timestamps=timestamps)

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass


@click.command("exec", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("-i", "--interactive", is_flag=True, help="Keep stdin attached.")
@click.option("-t", "--tty", is_flag=True, help="Allocate a terminal (needs one on this side).")
@click.option("-e", "--env", "env", multiple=True, help="K=V, repeatable.")
@click.option("-u", "--user", default=None, help="uid[:gid] or name[:group].")
@click.option("-c", "--container", "in_container", default=None, help="Container of a pod (with a pod name).")
@click.option("-n", "--namespace", default=None, help="Namespace of a pod.")
@click.argument("container")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_context
@_errors
def exec_(ctx: click.Context, interactive: bool, tty: bool, env: tuple[str, ...], user: str | None,
          in_container: str | None, namespace: str | None, container: str, command: tuple[str, ...]) -> None:
    """Run COMMAND in a running container; exits with its exit code.

    Both orders work: podman's `shoal exec [OPTIONS] NAME CMD...` (options before the
    name, everything after it is the command) and kubectl's `shoal exec POD [-n NS]
    [-c C] [-it] -- CMD...` (options between the pod and `--`)."""
    if "--" in command:
        split = command.index("--")
        extra = _parse_exec_options(command[:split])
        command = command[split + 1:]
        in_container = extra.get("container", in_container)
        namespace = extra.get("namespace", namespace)
        interactive = interactive or extra.get("interactive", False)
        tty = tty or extra.get("tty", False)
        env = env + tuple(extra.get("env", ()))
        user = extra.get("user", user)
        if not command:
            raise click.UsageError("give the command after --")
    rt = _runtime(ctx)
    target = asyncio.run(resolve(ctx, rt, Lookup(container, in_container, namespace)))
    if tty and not sys.stdin.isatty():
        raise click.UsageError("-t needs a terminal on stdin; drop -t to pipe")
    if target.pod is not None:  # a pod's container: pods/exec over WebSocket, as kubectl does
        if env or user:
            raise click.UsageError("-e/-u are for plain containers; a pod's exec runs as the container does")
        api = podstreams.kubeconfig_api(settings_from(ctx).kubeconfig_path)
        sys.exit(asyncio.run(podstreams.exec_in_pod(api, target.pod, command, stdin=interactive or tty, tty=tty)))
    if target.container_id is None:
        raise click.ClickException(f"{container}: not running")
    st = asyncio.run(rt.status(target.container_id))
    if st.state != "running":
        raise click.ClickException(f"{container} is {st.state}, not running")
    code = rt.exec_interactive(target.container_id, list(command), tty=tty, stdin=interactive or tty,
                               env=list(env) or None, user=user)
    sys.exit(code)


def _parse_exec_options(tokens: tuple[str, ...]) -> dict:
    """kubectl-style options written after the pod name and before `--`."""
    found: dict = {"env": []}
    valued = {"-n": "namespace", "--namespace": "namespace", "-c": "container",
              "--container": "container", "-u": "user", "--user": "user", "-e": "env", "--env": "env"}
    flags = {"-i": ("interactive",), "--interactive": ("interactive",), "-t": ("tty",),
             "--tty": ("tty",), "-it": ("interactive", "tty"), "-ti": ("interactive", "tty")}
    items = iter(tokens)
    for token in items:
        name, eq, inline = token.partition("=")
        if name in valued:
            value = inline if eq else next(items, None)
            if value is None:
                raise click.UsageError(f"option {name} needs a value")
            if valued[name] == "env":
                found["env"].append(value)
            else:
                found[valued[name]] = value
        elif token in flags:
            for flag in flags[token]:
                found[flag] = True
        else:
            raise click.UsageError(f"unexpected {token!r} before --; options go before --, "
                                   "the command after it")
    return found


COMMANDS = [run, ps, stop, rm, logs, exec_]
