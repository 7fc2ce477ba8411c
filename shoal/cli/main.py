"""Entry point of the `shoal` command: one click group, one module per command family."""

from __future__ import annotations

import importlib
import sys

import click

from shoal import __version__
from shoal.mesh import kinds as mesh_kinds

# Modules that export COMMANDS: list[click.Command]. Order is the order of `shoal --help`.
COMMAND_MODULES = (
    "shoal.cli.daemon",
    "shoal.cli.resources",
    "shoal.cli.workloads",
    "shoal.cli.containers",
    "shoal.cli.portforward",
    "shoal.cli.images",
    "shoal.cli.build",
    "shoal.cli.mesh",
    "shoal.cli.demo",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="shoal")
@click.option(
    "--state-dir",
    envvar="SHOAL_STATE_DIR",
    type=click.Path(file_okay=False),
    default=None,
    help="State directory (default /var/lib/shoal; env SHOAL_STATE_DIR).",
)
@click.pass_context
def cli(ctx: click.Context, state_dir: str | None) -> None:
    """shoal: containers, orchestration and a service mesh on one machine."""
    ctx.ensure_object(dict)
    ctx.obj["state_dir"] = state_dir


def _register() -> None:
    # Kinds beyond core/apps that the daemon serves (Istio's): the CLI knows them too.
    mesh_kinds.register_kinds()

    for name in COMMAND_MODULES:
        module = importlib.import_module(name)
        for command in getattr(module, "COMMANDS", ()):
            cli.add_command(command)


_register()

# `shoal logs/exec POD`: pods are looked up after plain containers.
from shoal.cli import containers as _containers, pods as _pods  # noqa: E402

_containers.register_resolver(_pods.resolve_pod)


def main() -> None:
    try:
        cli(prog_name="shoal")
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
