"""`shoal image ...`: pull, push, import, export, bootstrap, ls, inspect, tag, rm, prune.

Daemonless, like podman: the commands open the image store under the state dir
directly (`ImageStore` is safe for concurrent processes). Errors of the image layer are
shown as one line and exit status 1.
"""

from __future__ import annotations

import asyncio
import functools
import json
import sys
from pathlib import Path

import click

from shoal.cli.context import settings_from
from shoal.images import ImageError, ImageStore
from shoal.images.registry import pull as pull_image, push as push_image


def _store(ctx: click.Context) -> ImageStore:
    return ImageStore(settings_from(ctx).images_dir)


def _errors(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ImageError as exc:
            raise click.ClickException(str(exc)) from None
        except OSError as exc:  # e.g. an export path in a missing directory
            raise click.ClickException(f"{exc.filename or ''}: {exc.strerror or exc}") from None
    return wrapper


def _credentials(creds: str | None) -> tuple[str, str] | None:
    if not creds:
        return None
    user, sep, password = creds.partition(":")
    if not sep or not user:
        raise click.UsageError("--creds: expected USER:PASSWORD")
    return user, password


def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1000
    return str(n)


@click.group()
def image() -> None:
    """Manage images: pull, import/export, bootstrap base images, list, remove."""


@image.command()
@click.argument("ref")
@click.option("--insecure", is_flag=True,
              help="Skip TLS verification and allow plain HTTP (local registries).")
@click.option("--tls-verify", type=bool, default=True, show_default=True,
              help="Like podman: --tls-verify=false is the same as --insecure.")
@click.option("--creds", metavar="USER:PASSWORD", envvar="SHOAL_REGISTRY_CREDS",
              help="Registry credentials (env SHOAL_REGISTRY_CREDS).")
@click.option("-q", "--quiet", is_flag=True)
@click.pass_context
@_errors
def pull(ctx: click.Context, ref: str, insecure: bool, tls_verify: bool, creds: str | None,
         quiet: bool) -> None:
    """Pull REF from a registry (distribution-spec, bearer-token auth)."""
    insecure = insecure or not tls_verify

    store = _store(ctx)
    credentials = _credentials(creds)
    seen: set[str] = set()

    def progress(digest: str, done: int, total: int) -> None:
        if not quiet and done >= total and digest not in seen:
            seen.add(digest)
            click.echo(f"fetched {digest[:19]} {_human(total)}", err=True)

    img = asyncio.run(pull_image(store, ref, insecure=insecure, progress=progress,
                                 credentials=credentials))
    click.echo(img.digest)


@image.command()
@click.argument("src")
@click.argument("dest")
@click.option("--insecure", is_flag=True, help="Skip TLS verification and allow plain HTTP.")
@click.option("--tls-verify", type=bool, default=True, show_default=True,
              help="Like podman: --tls-verify=false is the same as --insecure.")
@click.option("--creds", metavar="USER:PASSWORD", envvar="SHOAL_REGISTRY_CREDS",
              help="Registry credentials (env SHOAL_REGISTRY_CREDS).")
@click.pass_context
@_errors
def push(ctx: click.Context, src: str, dest: str, insecure: bool, tls_verify: bool,
         creds: str | None) -> None:
    """Push stored image SRC to registry reference DEST."""

    digest = asyncio.run(push_image(_store(ctx), src, dest, insecure=insecure or not tls_verify,
                                    credentials=_credentials(creds)))
    click.echo(digest)


@image.command(name="import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", help="Repository (or full reference) for archives whose entries carry only a tag.")
@click.pass_context
@_errors
def import_(ctx: click.Context, file: Path, name: str | None) -> None:
    """Import an oci-archive or docker-archive tarball."""
    for img in _store(ctx).import_archive(file, name=name):
        click.echo(f"{img.digest} {' '.join(img.references) or '<untagged>'}")


@image.command()
@click.argument("ref")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["oci-archive", "docker-archive"]),
              default="oci-archive", show_default=True)
@click.pass_context
@_errors
def export(ctx: click.Context, ref: str, file: Path, fmt: str) -> None:
    """Write image REF to FILE (readable by skopeo, podman load, umoci)."""
    _store(ctx).export(ref, file, format=fmt)


@image.command()
@click.argument("name")
@click.option("--busybox", is_flag=True, help="Build a tiny busybox image (busybox-static) instead.")
@click.option("--suite", default="bookworm", show_default=True)
@click.option("--include", default="", help="Comma-separated Debian packages to add.")
@click.option("--variant", default="essential", show_default=True,
              type=click.Choice(["extract", "custom", "essential", "apt", "required", "minbase",
                                 "buildd", "important", "debootstrap", "standard"]))
@click.option("--source-date-epoch", type=int, default=None, envvar="SOURCE_DATE_EPOCH",
              help="Clamp file times for reproducible layers (default 0).")
@click.pass_context
@_errors
def bootstrap(ctx: click.Context, name: str, busybox: bool, suite: str, include: str,
              variant: str, source_date_epoch: int | None) -> None:
    """Build base image NAME from Debian packages (mmdebstrap) or busybox."""
    store = _store(ctx)
    if busybox:
        img = store.bootstrap_busybox(name, epoch=source_date_epoch)
    else:
        pkgs = [p.strip() for p in include.split(",") if p.strip()]
        img = store.bootstrap_debian(name, suite=suite, include=pkgs, variant=variant,
                                     epoch=source_date_epoch)
    click.echo(f"{img.digest} {' '.join(img.references)}")


@image.command(name="ls")
@click.option("-q", "--quiet", is_flag=True, help="IDs only.")
@click.pass_context
@_errors
def ls(ctx: click.Context, quiet: bool) -> None:
    """List images."""
    images = _store(ctx).list()
    if quiet:
        for img in images:
            click.echo(img.id.split(":")[1][:12])
        return
    click.echo(f"{'REFERENCE':<50} {'IMAGE ID':<12} {'PLATFORM':<12} {'SIZE':>9}")
    for img in images:
        for ref in img.references or ("<untagged>",):
            click.echo(f"{ref:<50} {img.id.split(':')[1][:12]:<12} {img.platform:<12} {_human(img.size):>9}")


@image.command()
@click.argument("ref")
@click.pass_context
@_errors
def inspect(ctx: click.Context, ref: str) -> None:
    """Show an image's manifest digest, references, config and layers as JSON."""
    img = _store(ctx).resolve(ref)
    json.dump({"Digest": img.digest, "Id": img.id, "References": list(img.references),
               "Platform": img.platform, "Created": img.created, "Config": img.config,
               "Layers": img.layers, "DiffIds": img.diff_ids, "Size": img.size},
              sys.stdout, indent=2)
    click.echo()


@image.command()
@click.argument("src")
@click.argument("dst")
@click.pass_context
@_errors
def tag(ctx: click.Context, src: str, dst: str) -> None:
    """Give image SRC the additional reference DST."""
    img = _store(ctx).tag(src, dst)
    click.echo(f"{img.digest} {' '.join(img.references)}")


@image.command()
@click.argument("refs", nargs=-1, required=True)
@click.pass_context
@_errors
def rm(ctx: click.Context, refs: tuple[str, ...]) -> None:
    """Remove references (a digest or ID removes all of an image's references)."""
    store = _store(ctx)
    for ref in refs:
        for removed in store.remove(ref):
            click.echo(f"untagged {removed}")


@image.command()
@click.pass_context
@_errors
def prune(ctx: click.Context) -> None:
    """Delete blobs and unpacked layers that no image or snapshot uses."""
    click.echo(f"freed {_human(_store(ctx).prune())}")


COMMANDS = [image]
