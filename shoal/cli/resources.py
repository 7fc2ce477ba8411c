"""`shoal apply|get|describe|delete`: resource commands that need no kubectl.

They talk to the API over HTTPS with `<state>/kubeconfig` (written by `shoal up`), like
any client. Output follows kubectl: `deployment.apps/web created`, tables rendered from
the server's Table responses, `-o yaml|json|name|wide`.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any, Iterable

import click
import yaml

from shoal.api import applypatch, errors, kinds, patchmeta, printers
from shoal.client import HttpClient
from shoal.cli.context import settings_from
from shoal.cli.describe import describe_object

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def _client(ctx: click.Context) -> HttpClient:
    settings = settings_from(ctx)
    return HttpClient.from_kubeconfig(settings.kubeconfig_path)


def run_api(ctx: click.Context, coro_fn: Any) -> Any:
    """Run coro_fn(client) with an HttpClient; API errors become clean CLI errors."""

    async def main() -> Any:
        async with _client(ctx) as client:
            return await coro_fn(client)

    try:
        return asyncio.run(main())
    except errors.StatusError as err:
        raise click.ClickException(f"Error from server ({err.reason}): {err.message}") from None


def read_manifests(paths: Iterable[str], recursive: bool = False) -> list[tuple[str, dict[str, Any]]]:
    """(source, object) for every document in the files, directories or '-' given.
    Lists (kind: List / *List) are flattened; empty documents skipped."""
    sources: list[tuple[str, str]] = []
    for p in paths:
        if p == "-":
            sources.append(("<stdin>", sys.stdin.read()))
            continue
        path = Path(p)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            files = sorted(f for f in path.glob(pattern)
                           if f.suffix in (".yaml", ".yml", ".json") and f.is_file())
            sources.extend((str(f), f.read_text()) for f in files)
        elif path.is_file():
            sources.append((str(path), path.read_text()))
        else:
            raise click.BadParameter(f"the path {p!r} does not exist", param_hint="-f")
    objects: list[tuple[str, dict[str, Any]]] = []
    for name, text in sources:
        try:
            docs = list(yaml.safe_load_all(text))
        except yaml.YAMLError as exc:
            raise click.ClickException(f"error parsing {name}: {exc}") from None
        for i, doc in enumerate(docs):
            if doc is None:
                continue
            if not isinstance(doc, dict):
                raise click.ClickException(
                    f"error parsing {name}: document {i + 1} is a {type(doc).__name__}, "
                    "expected an object with apiVersion and kind")
            if doc.get("kind", "").endswith("List") and isinstance(doc.get("items"), list):
                objects.extend((name, item) for item in doc["items"])
            else:
                objects.append((name, doc))
    return objects


def _type_of(obj: dict[str, Any], source: str) -> kinds.ResourceType:
    if not obj.get("apiVersion") or not obj.get("kind"):
        raise click.ClickException(
            f"error validating {source}: apiVersion and kind are required "
            f"(got apiVersion={obj.get('apiVersion')!r}, kind={obj.get('kind')!r})")
    try:
        return kinds.by_kind(obj["apiVersion"], obj["kind"])
    except errors.StatusError as err:
        raise click.ClickException(f"error validating {source}: {err.message}") from None


def _display(rt: kinds.ResourceType, name: str) -> str:
    return f"{rt.singular}.{rt.group}/{name}" if rt.group else f"{rt.singular}/{name}"


async def apply_object(client: HttpClient, obj: dict[str, Any], namespace: str | None) -> str:
    """Client-side apply like kubectl: create, or a three-way patch (last applied
    configuration, manifest, live object; `api.applypatch`). Returns 'created', 'configured' or 'unchanged'."""
    rt = kinds.by_kind(obj["apiVersion"], obj["kind"])
    meta = obj.setdefault("metadata", {})
    if rt.namespaced:
        meta["namespace"] = meta.get("namespace") or namespace or "default"
    applied = json.loads(json.dumps(obj))
    applied.get("metadata", {}).get("annotations", {}).pop(LAST_APPLIED, None)
    annotation = json.dumps(applied, sort_keys=True, separators=(",", ":"))
    meta.setdefault("annotations", {})[LAST_APPLIED] = annotation
    try:
        current = await client.get(rt.resource, meta.get("namespace"), meta["name"])
    except errors.NotFound:
        await client.create(rt.resource, obj)
        return "created"
    last = json.loads((current["metadata"].get("annotations") or {}).get(LAST_APPLIED) or "{}")
    # kubectl: a strategic merge patch for kinds with patch metadata, else a merge patch
    strategic = patchmeta.root_type(rt.kind) != patchmeta.UNKNOWN_KIND
    patch = applypatch.three_way_patch(last, obj, current, rt.kind, strategic=strategic)
    if not patch:
        return "unchanged"
    updated = await client.patch(rt.resource, meta.get("namespace"), meta["name"], patch,
                                 "strategic" if strategic else "merge")
    return "configured" if updated["metadata"]["resourceVersion"] != current["metadata"][
        "resourceVersion"] else "unchanged"


@click.command()
@click.option("-f", "--filename", "filenames", multiple=True, required=True,
              help="File, directory or - (stdin) with YAML/JSON manifests.")
@click.option("-R", "--recursive", is_flag=True, help="Recurse into directories.")
@click.option("-n", "--namespace", default=None, help="Namespace for objects that name none.")
@click.pass_context
def apply(ctx: click.Context, filenames: tuple[str, ...], recursive: bool, namespace: str | None) -> None:
    """Create or update resources from manifests (client-side apply, like kubectl)."""
    objects = read_manifests(filenames, recursive)
    for source, obj in objects:
        _type_of(obj, source)
        if not (obj.get("metadata") or {}).get("name"):
            raise click.ClickException(f"error validating {source}: metadata.name is required")
    failures = 0

    async def run(client: HttpClient) -> None:
        nonlocal failures
        for source, obj in objects:
            rt = kinds.by_kind(obj["apiVersion"], obj["kind"])
            try:
                result = await apply_object(client, obj, namespace)
            except errors.StatusError as err:
                failures += 1
                click.echo(f"Error from server ({err.reason}) applying {source}: {err.message}", err=True)
                continue
            click.echo(f"{_display(rt, obj['metadata']['name'])} {result}")

    run_api(ctx, run)
    if failures:
        ctx.exit(1)


def _output(objs: list[dict[str, Any]], fmt: str, single: bool) -> str:
    data: Any = objs[0] if single else {
        "apiVersion": "v1", "kind": "List", "items": objs, "metadata": {"resourceVersion": ""}}
    if fmt == "json":
        return json.dumps(data, indent=4)
    return yaml.safe_dump(data, sort_keys=False).rstrip()


# kubectl prints the members of the "all" category in this order (pods, services, then
# the workload controllers); kinds registered later with the category follow.
_ALL_ORDER = ("pods", "replicationcontrollers", "services", "daemonsets", "deployments",
              "replicasets", "statefulsets", "horizontalpodautoscalers", "cronjobs", "jobs")


def _kinds_of(arg: str) -> list[kinds.ResourceType]:
    """KIND as kubectl takes it: one type, a comma-separated list, or a category ("all")."""
    types: list[kinds.ResourceType] = []
    for part in arg.split(","):
        part = part.strip()
        if not part:
            raise click.ClickException(f"error: empty resource type in {arg!r}")
        members = [rt for rt in kinds.all_types() if part.lower() in rt.categories]
        if members:
            members.sort(key=lambda rt: _ALL_ORDER.index(rt.plural)
                         if rt.plural in _ALL_ORDER else len(_ALL_ORDER))
        else:
            try:
                members = [kinds.by_resource(part)]
            except errors.StatusError as err:
                raise click.ClickException(f"error: {err.message}") from None
        types.extend(rt for rt in members if rt not in types)
    return types


def get_targets(kind: str, names: tuple[str, ...]) -> list[tuple[kinds.ResourceType, list[str]]]:
    """(type, names) pairs for `get KIND [NAME...]`, `get K1,K2 [NAME...]` and
    `get TYPE/NAME [TYPE/NAME...]`, in the order given; no names means all objects."""
    if "/" in kind:
        targets: dict[kinds.ResourceType, list[str]] = {}  # in the order first named
        for arg in (kind, *names):
            type_, sep, name = arg.partition("/")
            if not sep or not type_ or not name or "/" in name:
                raise click.ClickException(
                    f"error: arguments in resource/name form must have a single resource and "
                    f"name, got {arg!r}")
            types = _kinds_of(type_)
            if len(types) != 1:
                raise click.ClickException(f"error: {arg!r}: one resource type per TYPE/NAME")
            targets.setdefault(types[0], []).append(name)
        return list(targets.items())
    bad = [n for n in names if "/" in n]
    if bad:
        raise click.ClickException(
            f"error: there is no need to specify a resource type as a separate argument when "
            f"passing arguments in resource/name form (e.g. 'shoal get resource/<resource_name>' "
            f"instead of 'shoal get resource resource/<resource_name>'), got {bad[0]!r}")
    return [(rt, list(names)) for rt in _kinds_of(kind)]


@click.command()
@click.argument("kind")
@click.argument("names", nargs=-1)
@click.option("-n", "--namespace", default=None)
@click.option("-A", "--all-namespaces", is_flag=True)
@click.option("-l", "--selector", default=None, help="Label selector, e.g. app=web,tier!=db.")
@click.option("-o", "--output", "fmt", default=None,
              type=click.Choice(["wide", "yaml", "json", "name"]))
@click.option("--no-headers", is_flag=True)
@click.pass_context
def get(ctx: click.Context, kind: str, names: tuple[str, ...], namespace: str | None,
        all_namespaces: bool, selector: str | None, fmt: str | None, no_headers: bool) -> None:
    """List or show resources, as kubectl get does: KIND may be pods, deploy, svc, ..., a
    comma-separated list (deploy,svc), the category "all", or TYPE/NAME arguments."""
    targets = get_targets(kind, names)
    # kubectl qualifies names (deployment.apps/web) once more than one type is asked for
    # or the TYPE/NAME form is used
    qualified = len(targets) > 1 or "/" in kind

    def ns_of(rt: kinds.ResourceType) -> str | None:
        return None if all_namespaces or not rt.namespaced else (namespace or "default")

    async def run(client: HttpClient) -> str:
        if fmt in ("yaml", "json", "name"):
            found: list[tuple[kinds.ResourceType, dict[str, Any]]] = []
            for rt, wanted in targets:
                if wanted:
                    found += [(rt, await client.get(rt.resource, ns_of(rt), n)) for n in wanted]
                else:
                    listed, _ = await client.list(rt.resource, ns_of(rt), label_selector=selector)
                    found += [(rt, o) for o in listed]
            if fmt == "name":
                return "\n".join(_display(rt, o["metadata"]["name"]) for rt, o in found)
            # list items carry no apiVersion/kind on the wire; a mixed List needs them
            objs = [{"apiVersion": rt.api_version, "kind": rt.kind, **o} for rt, o in found]
            single = len(targets) == 1 and len(targets[0][1]) == 1
            return _output(objs, fmt, single=single)
        blocks = []
        for rt, wanted in targets:
            ns = ns_of(rt)
            if wanted:
                rows = []
                table: dict[str, Any] = {}
                for n in wanted:
                    table = await client.table(rt.resource, ns, n)
                    rows.extend(table.get("rows", []))
                table["rows"] = rows
            else:
                table = await client.table(rt.resource, ns, label_selector=selector)
            if qualified:
                for row in table.get("rows") or []:
                    cells = row.get("cells") or []
                    if cells:
                        cells[0] = _display(rt, str(cells[0]))
            text = printers.render_text(table, wide=fmt == "wide",
                                        show_namespace=all_namespaces and rt.namespaced,
                                        no_headers=no_headers)
            if text:
                blocks.append(text.rstrip("\n"))
        if not blocks:
            spaces = {ns_of(rt) for rt, _ in targets}
            where = f" in {spaces.pop()} namespace" if len(spaces) == 1 and None not in spaces else ""
            return f"No resources found{where}."
        return "\n\n".join(blocks)

    click.echo(run_api(ctx, run))


@click.command()
@click.argument("kind")
@click.argument("names", nargs=-1)
@click.option("-n", "--namespace", default=None)
@click.option("-l", "--selector", default=None)
@click.pass_context
def describe(ctx: click.Context, kind: str, names: tuple[str, ...], namespace: str | None,
             selector: str | None) -> None:
    """Show a resource in detail with its events, as kubectl describe does."""
    try:
        rt = kinds.by_resource(kind)
    except errors.StatusError as err:
        raise click.ClickException(f"error: {err.message}") from None
    ns = (namespace or "default") if rt.namespaced else None

    async def run(client: HttpClient) -> str:
        if names:
            objs = [await client.get(rt.resource, ns, n) for n in names]
        else:
            objs, _ = await client.list(rt.resource, ns, label_selector=selector)
        out = []
        for obj in objs:
            events, _ = await client.list(
                "events", obj["metadata"].get("namespace"),
                field_selector=f"involvedObject.name={obj['metadata']['name']},"
                               f"involvedObject.kind={rt.kind}",
            )
            out.append(describe_object(rt, obj, events))
        return "\n\n".join(out)

    click.echo(run_api(ctx, run))


@click.command()
@click.argument("kind", required=False)
@click.argument("names", nargs=-1)
@click.option("-f", "--filename", "filenames", multiple=True)
@click.option("-n", "--namespace", default=None)
@click.option("-l", "--selector", default=None)
@click.option("--all", "all_", is_flag=True, help="Delete every object of KIND in the namespace.")
@click.option("--grace-period", type=int, default=None)
@click.option("--cascade", type=click.Choice(["background", "foreground", "orphan"]), default="background")
@click.pass_context
def delete(ctx: click.Context, kind: str | None, names: tuple[str, ...], filenames: tuple[str, ...],
           namespace: str | None, selector: str | None, all_: bool, grace_period: int | None,
           cascade: str) -> None:
    """Delete resources by name, by selector, or as listed in manifests."""
    targets: list[tuple[kinds.ResourceType, str | None, str]] = []
    if filenames:
        for source, obj in read_manifests(filenames):
            rt = _type_of(obj, source)
            ns = ((obj.get("metadata") or {}).get("namespace") or namespace or "default") if rt.namespaced else None
            targets.append((rt, ns, obj["metadata"]["name"]))
    elif kind:
        try:
            rt = kinds.by_resource(kind)
        except errors.StatusError as err:
            raise click.ClickException(f"error: {err.message}") from None
        ns = (namespace or "default") if rt.namespaced else None
        targets.extend((rt, ns, n) for n in names)
        if not names and not (selector or all_):
            raise click.UsageError("name a resource, or use -l SELECTOR or --all")
    else:
        raise click.UsageError("give KIND NAME..., or -f FILE")
    policy = cascade.capitalize()

    async def run(client: HttpClient) -> int:
        missing = 0
        todo = list(targets)
        if kind and not names:
            objs, _ = await client.list(rt.resource, ns, label_selector=selector)
            todo = [(rt, ns, o["metadata"]["name"]) for o in objs]
            if not todo:
                click.echo("No resources found")
        for t_rt, t_ns, t_name in todo:
            try:
                await client.delete(t_rt.resource, t_ns, t_name, propagation_policy=policy,
                                    grace_period_seconds=grace_period)
            except errors.NotFound as err:
                missing += 1
                click.echo(f"Error from server (NotFound): {err.message}", err=True)
                continue
            click.echo(f'{_display(t_rt, t_name)} deleted')
        return missing

    if run_api(ctx, run):
        ctx.exit(1)


COMMANDS = [apply, get, describe, delete]
