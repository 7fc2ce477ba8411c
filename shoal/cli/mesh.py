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

from shoal.mesh import capture, inject as injection, proxyconfig
from shoal.mesh.errors import CaptureError, MeshError

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
@click.option("--netns", required=True,
              help="Network namespace of the pod whose sidecar to read.")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table")
def proxy_config_command(kind: str, netns: str, output: str) -> None:
    """Show a sidecar's clusters, listeners, routes, endpoints or secrets."""
    try:
        raw = asyncio.run(proxyconfig.admin_get(netns, proxyconfig.ADMIN_PATHS[kind]))
    except MeshError as exc:
        raise click.ClickException(str(exc)) from None
    rows = proxyconfig.ROW_BUILDERS[kind](json.loads(raw))
    if output == "json":
        click.echo(json.dumps(rows, indent=2))
    else:
        click.echo(proxyconfig.format_table(rows), nl=False)


COMMANDS = [mesh]
