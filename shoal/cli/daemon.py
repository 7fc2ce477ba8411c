"""`shoal up`, `shoal down`, `shoal status`: the daemon's lifecycle."""

from __future__ import annotations

import logging
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import click

from shoal.cli.context import settings_from
from shoal.config import Settings

READY_TIMEOUT_SECONDS = 60
STOP_TIMEOUT_SECONDS = 90


def daemon_pid(settings: Settings) -> int | None:
    """The pid of the running daemon of this state dir, or None."""
    try:
        pid = int(settings.pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # A killed daemon whose parent has not reaped it yet is a zombie: not running. A pid
    # reused by another program is not ours either.
    state = stat.rpartition(")")[2].split()[0]
    if state in ("Z", "X") or b"shoal" not in cmdline:
        return None
    return pid


def api_ready(settings: Settings) -> bool:
    """True when the API answers /readyz over TLS with the state dir's CA."""
    ca = settings.pki_dir / "ca.crt"
    if not ca.exists():
        return False
    try:
        context = ssl.create_default_context(cafile=str(ca))
        with urllib.request.urlopen(f"{settings.api_url}/readyz", context=context, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


@click.command()
@click.option("--detach", "-d", is_flag=True, help="Run in the background; return once the API is ready.")
@click.option("--api-port", type=int, default=None, help="HTTPS port of the API (default 6443).")
@click.option("--api-host", default=None, help="Address the API binds (default 127.0.0.1).")
@click.option("--pod-cidr", default=None, help="Pod IP range (default 10.42.0.0/16).")
@click.option("--service-cidr", default=None, help="ClusterIP range (default 10.43.0.0/16).")
@click.option("--bridge", default=None, help="Bridge name (default shoal0).")
@click.option("--log-level", default="info", type=click.Choice(["debug", "info", "warning", "error"]))
@click.pass_context
def up(ctx: click.Context, detach: bool, api_port: int | None, api_host: str | None,
       pod_cidr: str | None, service_cidr: str | None, bridge: str | None, log_level: str) -> None:
    """Start the shoal daemon (API server, controllers, node agent, mesh)."""
    settings = settings_from(ctx, api_port=api_port, api_host=api_host, pod_cidr=pod_cidr,
                             service_cidr=service_cidr, bridge=bridge)
    pid = daemon_pid(settings)
    if pid is not None:
        click.echo(f"shoal is already running (pid {pid}), API {settings.api_url}")
        return
    if detach:
        start_detached(settings, log_level)
        return
    logging.basicConfig(
        level=getattr(logging, log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # The composition root imports every layer (gRPC, Envoy's protos, ...): loaded only
    # by `shoal up`, so that every other command starts fast.
    from shoal.daemon import serve

    serve(settings)


def start_detached(settings: Settings, log_level: str) -> None:
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    settings.save()
    log = open(settings.log_file, "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "shoal.cli.main", "--state-dir", str(settings.state_dir), "up",
         "--log-level", log_level],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
        env={**os.environ, "SHOAL_STATE_DIR": str(settings.state_dir)},
    )
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = _tail(settings.log_file)
            raise click.ClickException(f"shoal exited during start-up (code {proc.returncode}):\n{tail}")
        if api_ready(settings) and daemon_pid(settings) == proc.pid:
            click.echo(f"shoal is up (pid {proc.pid}): API {settings.api_url}")
            click.echo(f"kubeconfig: {settings.kubeconfig_path}")
            return
        time.sleep(0.1)
    proc.terminate()
    raise click.ClickException(
        f"shoal did not become ready in {READY_TIMEOUT_SECONDS}s; log: {settings.log_file}")


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


@click.command()
@click.pass_context
def down(ctx: click.Context) -> None:
    """Stop the daemon and remove every container, mount, netns, link and rule it made.

    Stored objects are kept: `shoal up` again brings the same workloads back."""
    settings = settings_from(ctx)
    pid = daemon_pid(settings)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        while time.monotonic() < deadline and daemon_pid(settings) == pid:
            time.sleep(0.1)
        if daemon_pid(settings) == pid:
            os.kill(pid, signal.SIGKILL)
            click.echo(f"shoal (pid {pid}) did not stop in {STOP_TIMEOUT_SECONDS}s; killed")
    from shoal.teardown import teardown  # loaded only here, as `serve` above

    teardown(settings)
    settings.pid_file.unlink(missing_ok=True)
    settings.kubeconfig_path.unlink(missing_ok=True)
    click.echo("shoal is down" + (f" (stopped pid {pid})" if pid else " (was not running)"))


@click.command()
@click.pass_context
def status(ctx: click.Context) -> None:
    """Whether the daemon runs, where its API is, and how healthy it is."""
    settings = settings_from(ctx)
    pid = daemon_pid(settings)
    if pid is None:
        click.echo(f"shoal is not running (state dir {settings.state_dir})")
        ctx.exit(1)
    ready = api_ready(settings)
    click.echo(f"shoal is running (pid {pid})")
    click.echo(f"  API:        {settings.api_url} ({'ready' if ready else 'not ready'})")
    click.echo(f"  state dir:  {settings.state_dir}")
    click.echo(f"  kubeconfig: {settings.kubeconfig_path}")
    click.echo(f"  pods:       {settings.pod_cidr}   services: {settings.service_cidr}")


COMMANDS = [up, down, status]
