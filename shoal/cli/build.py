"""`shoal build`: build an image from a Dockerfile into the local image store.

Daemonless, like `podman build`: opens the image store under the state dir and runs RUN
steps through `shoal.runtime.Runtime` under `<state>/build/containers` (cgroup parent
`shoal-build`), with the layer cache and cache mounts in `<state>/build/cache`. Builder
errors are one line (with the Dockerfile line number) and exit status 1; Ctrl-C removes
every container and snapshot the build made and exits 130.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from pathlib import Path
from typing import TextIO

import click

from shoal.builder import BuildError, Builder, BuildOptions, make_progress
from shoal.cli.context import settings_from
from shoal.config import Settings
from shoal.images import ImageError, ImageStore
from shoal.runtime import Runtime

CGROUP_PARENT = "shoal-build"


def open_builder(settings: Settings, progress: str, sink: TextIO) -> Builder:
    """The builder `shoal build` and `shoal demo` share: the image store of the state dir,
    RUN steps under `<state>/build/containers` (cgroup parent `shoal-build`), the layer
    cache in `<state>/build/cache`, progress ("auto", "plain", "tty") written to `sink`.
    The caller closes `builder.progress`."""
    build_dir = settings.state_dir / "build"
    return Builder(ImageStore(settings.images_dir),
                   Runtime(build_dir / "containers", cgroup_parent=CGROUP_PARENT),
                   build_dir / "cache", make_progress(progress, sink))


def parse_build_args(values: tuple[str, ...]) -> dict[str, str]:
    """K=V, or K alone to take the value from the environment (as docker does)."""
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--build-arg")
        if not sep:
            if key not in os.environ:
                continue
            value = os.environ[key]
        out[key] = value
    return out


def parse_secrets(values: tuple[str, ...]) -> dict[str, Path]:
    """id=ID,src=FILE (src/source; env=VAR is not supported, a file keeps it out of argv)."""
    out: dict[str, Path] = {}
    for item in values:
        opts = dict(part.partition("=")[::2] for part in item.split(","))
        sid = opts.get("id")
        src = opts.get("src") or opts.get("source")
        if not sid or not src:
            raise click.BadParameter(f"expected id=ID,src=FILE, got {item!r}", param_hint="--secret")
        out[sid] = Path(src)
    return out


def parse_output(value: str | None) -> tuple[str, Path] | None:
    """type=oci,dest=FILE (or type=docker) -> (archive format, path)."""
    if not value:
        return None
    opts = dict(part.partition("=")[::2] for part in value.split(","))
    kind, dest = opts.get("type"), opts.get("dest")
    formats = {"oci": "oci-archive", "docker": "docker-archive"}
    if kind not in formats or not dest:
        raise click.BadParameter(f"expected type=oci|docker,dest=FILE, got {value!r}", param_hint="--output")
    return formats[kind], Path(dest)


@click.command()
@click.argument("context", type=click.Path(exists=True, file_okay=False))
@click.option("-t", "--tag", "tags", multiple=True, metavar="NAME[:TAG]", help="Name the image (repeatable).")
@click.option("-f", "--file", "dockerfile", type=click.Path(dir_okay=False), help="Default: CONTEXT/Dockerfile.")
@click.option("--build-arg", multiple=True, metavar="KEY=VALUE")
@click.option("--target", help="Build this stage (and what it needs) only.")
@click.option("--no-cache", is_flag=True, help="Run every step; the cache is still refreshed.")
@click.option("--platform", help="Only the host platform (e.g. linux/amd64).")
@click.option("--secret", multiple=True, metavar="id=ID,src=FILE",
              help="A file RUN --mount=type=secret,id=ID can read; never stored in a layer.")
@click.option("-o", "--output", metavar="type=oci,dest=FILE", help="Also write the image as an archive.")
@click.option("--pull/--no-pull", default=True, show_default=True,
              help="Pull a FROM image that is not in the store.")
@click.option("--tls-verify", type=bool, default=True, show_default=True,
              help="--tls-verify=false: plain HTTP / unverified TLS for pulls (local registries).")
@click.option("--progress", type=click.Choice(["auto", "plain", "tty"]), default="auto", show_default=True)
@click.option("-q", "--quiet", is_flag=True, help="Print only the image ID.")
@click.pass_context
def build(ctx: click.Context, context: str, tags: tuple[str, ...], dockerfile: str | None,
          build_arg: tuple[str, ...], target: str | None, no_cache: bool, platform: str | None,
          secret: tuple[str, ...], output: str | None, pull: bool, tls_verify: bool, progress: str,
          quiet: bool) -> None:
    """Build an image from a Dockerfile in CONTEXT."""
    settings = settings_from(ctx)
    out = parse_output(output)
    options = BuildOptions(
        context=Path(context), dockerfile=Path(dockerfile) if dockerfile else None, tags=tags,
        build_args=parse_build_args(build_arg), target=target, no_cache=no_cache, platform=platform,
        secrets=parse_secrets(secret), pull=pull, tls_verify=tls_verify)
    with contextlib.ExitStack() as stack:
        sink = stack.enter_context(open(os.devnull, "w")) if quiet else sys.stderr
        builder = open_builder(settings, "plain" if quiet else progress, sink)
        try:
            result = asyncio.run(builder.build(options))
            if out:
                builder.store.export(tags[0] if tags else result.image.digest, out[1], format=out[0])
        except (BuildError, ImageError) as exc:
            raise click.ClickException(str(exc)) from None
        finally:
            builder.progress.close()
    if not quiet:
        click.echo(f"built {', '.join(tags) or 'untagged image'} in {result.seconds:.1f}s: "
                   f"{result.layers_built} steps run, {result.cache_hits} cached", err=True)
    click.echo(result.image.id)


COMMANDS = [build]
