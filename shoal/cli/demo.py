"""`shoal demo`: shoal's story on this machine in one command.

Starts shoal if it is not running, makes the images the example needs, applies the
example app, waits for it to be ready, sends traffic through its Service and reports
what answered. Running it again reuses everything (idempotent); `--down` removes the app.
`-o json` prints one machine-readable summary instead of the human report.
"""

from __future__ import annotations

import asyncio
import collections
import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import click

from shoal.api import errors, printers
from shoal.apiserver.http_client import HttpClient
from shoal.cli.context import settings_from
from shoal.cli.daemon import _start_detached, api_ready, daemon_pid
from shoal.cli.resources import apply_object, read_manifests
from shoal.config import Settings

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
APP = EXAMPLES / "hello" / "app.yaml"
NAMESPACE = "hello"
READY_TIMEOUT_SECONDS = 180
REQUESTS = 30


def _ensure_running(settings: Settings, say: Any) -> None:
    if daemon_pid(settings) is not None and api_ready(settings):
        say(f"shoal is running: API {settings.api_url}")
        return
    say("starting shoal ...")
    _start_detached(settings, "info")


def _ensure_images(settings: Settings, say: Any) -> None:
    from shoal.images import ImageNotFound, ImageStore

    store = ImageStore(settings.images_dir)
    try:
        store.resolve("busybox")
        say("image busybox: present")
    except ImageNotFound:
        started = time.monotonic()
        store.bootstrap_busybox("busybox")
        say(f"image busybox: built from busybox-static in {time.monotonic() - started:.1f}s")


async def _apply(client: HttpClient, say: Any) -> None:
    await _wait_namespace_gone_if_terminating(client, say)
    for _, obj in read_manifests([str(APP)]):
        result = await apply_object(client, obj, None)
        kind = obj["kind"].lower()
        group = "apps" if obj["apiVersion"].startswith("apps/") else ""
        say(f"{kind}{'.' + group if group else ''}/{obj['metadata']['name']} {result}")


async def _wait_namespace_gone_if_terminating(client: HttpClient, say: Any) -> None:
    """A previous `demo --down` may still be emptying the namespace: let it finish."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    told = False
    while True:
        try:
            ns = await client.get("namespaces", None, NAMESPACE)
        except errors.NotFound:
            return
        if not ns["metadata"].get("deletionTimestamp"):
            return
        if time.monotonic() > deadline:
            raise click.ClickException(f"namespace {NAMESPACE} is still terminating; try again later")
        if not told:
            say(f"waiting for the previous namespace/{NAMESPACE} to finish terminating ...")
            told = True
        await asyncio.sleep(1)


async def _wait_ready(client: HttpClient, say: Any) -> dict[str, Any]:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    last = ""
    while True:
        deploy = await client.get("deployments.apps", NAMESPACE, "web")
        want = deploy["spec"]["replicas"]
        ready = deploy.get("status", {}).get("readyReplicas", 0)
        updated = deploy.get("status", {}).get("updatedReplicas", 0)
        line = f"waiting for deployment/web: {ready}/{want} ready"
        if line != last:
            say(line)
            last = line
        if ready == want and updated == want:
            return deploy
        if time.monotonic() > deadline:
            pods, _ = await client.list("pods", NAMESPACE)
            table = printers.render_text(printers.table("Pod", pods))
            raise click.ClickException(
                f"deployment/web was not ready after {READY_TIMEOUT_SECONDS}s:\n{table}")
        await asyncio.sleep(1)


def _traffic(url: str) -> collections.Counter[str]:
    answers: collections.Counter[str] = collections.Counter()
    for _ in range(REQUESTS):
        try:
            with urllib.request.urlopen(url, timeout=3) as response:
                answers[response.read().decode().strip()] += 1
        except OSError as exc:
            answers[f"error: {exc}"] += 1
    return answers


@click.command()
@click.option("--down", is_flag=True, help="Remove the demo app (shoal keeps running).")
@click.option("-o", "--output", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.pass_context
def demo(ctx: click.Context, down: bool, fmt: str) -> None:
    """Run the demo: start shoal, build images, deploy an app, send traffic, report."""
    settings = settings_from(ctx)
    quiet = fmt == "json"
    say = (lambda _msg: None) if quiet else click.echo
    if down:
        if daemon_pid(settings) is None:
            say("shoal is not running; nothing to remove")
            return

        async def remove() -> None:
            async with HttpClient.from_kubeconfig(settings.kubeconfig_path) as client:
                try:
                    await client.delete("namespaces", None, NAMESPACE)
                    say(f"namespace/{NAMESPACE} deleted")
                except Exception as exc:  # noqa: BLE001 - already gone is fine
                    say(f"namespace/{NAMESPACE}: {exc}")

        asyncio.run(remove())
        return

    started = time.monotonic()
    _ensure_running(settings, say)
    _ensure_images(settings, say)

    async def run() -> dict[str, Any]:
        async with HttpClient.from_kubeconfig(settings.kubeconfig_path) as client:
            await _apply(client, say)
            deploy = await _wait_ready(client, say)
            service = await client.get("services", NAMESPACE, "web")
            pods, _ = await client.list("pods", NAMESPACE, label_selector="app=web")
            services, _ = await client.list("services", NAMESPACE)
            return {"deployment": deploy, "service": service, "pods": pods, "services": services}

    try:
        state = asyncio.run(run())
    except errors.StatusError as err:
        raise click.ClickException(f"Error from server ({err.reason}): {err.message}") from None
    service = state["service"]
    cluster_ip = service["spec"]["clusterIP"]
    node_port = service["spec"]["ports"][0]["nodePort"]
    by_cluster_ip = _traffic(f"http://{cluster_ip}/")
    by_node_port = _traffic(f"http://127.0.0.1:{node_port}/")
    elapsed = time.monotonic() - started
    summary = {
        "namespace": NAMESPACE,
        "pods": [{"name": p["metadata"]["name"], "ip": p["status"].get("podIP"),
                  "phase": p["status"].get("phase"),
                  "ready": all(c.get("ready") for c in p["status"].get("containerStatuses", []))}
                 for p in state["pods"]],
        "service": {"name": "web", "clusterIP": cluster_ip, "nodePort": node_port},
        "traffic": {"clusterIP": dict(by_cluster_ip), "nodePort": dict(by_node_port),
                    "requests": REQUESTS},
        "elapsed_seconds": round(elapsed, 1),
    }
    if quiet:
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo("")
    click.echo(printers.render_text(printers.table("Pod", state["pods"], wide=True), wide=True))
    click.echo("")
    click.echo(printers.render_text(printers.table("Service", state["services"])))
    for label, answers in (("ClusterIP " + cluster_ip, by_cluster_ip),
                           (f"NodePort 127.0.0.1:{node_port}", by_node_port)):
        click.echo(f"\n{REQUESTS} requests to {label}:")
        for answer, count in sorted(answers.items()):
            click.echo(f"  {count:3d}  {answer}")
    click.echo(f"\ndone in {elapsed:.1f}s. Next, try:")
    state_flag = "" if str(settings.state_dir) == "/var/lib/shoal" else f"--state-dir {settings.state_dir} "
    for cmd in (f"shoal {state_flag}get pods -n {NAMESPACE} -o wide",
                f"shoal {state_flag}scale deploy web -n {NAMESPACE} --replicas=5",
                f"kubectl --kubeconfig {settings.kubeconfig_path} get deploy -A",
                f"shoal {state_flag}demo --down",
                f"shoal {state_flag}down"):
        click.echo(f"  .venv/bin/{cmd}" if cmd.startswith("shoal") else f"  {cmd}")


COMMANDS = [demo]
