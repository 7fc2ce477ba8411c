"""Remove everything a shoal instance made on the host, with or without its daemon.

Called by `shoal down` after the daemon stopped (and by tests). Each layer offers its
own cleanup; this module only calls them in order: containers, then snapshots/mounts,
then sandboxes and network. This is `shoal down`'s composition root: it builds the
runtime, image store and pod network over the state dir and hands them to each layer's
teardown. Every step is idempotent and errors in one step do not stop
the others; what failed is reported.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from typing import Any

from shoal.config import Settings
from shoal.images import ImageStore
from shoal.network import PodNetwork
from shoal.node import build_runtime, teardown_node
from shoal.store import Allocations

log = logging.getLogger("shoal.teardown")


def teardown(settings: Settings) -> list[str]:
    """Clean up after the instance of settings; returns the steps that failed."""
    return asyncio.run(_teardown(settings))


async def _teardown(settings: Settings) -> list[str]:
    failed: list[str] = []
    for name, step in _steps():
        try:
            await step(settings)
        except Exception as exc:  # keep going: leave as little behind as possible
            log.warning("teardown step %s failed: %s", name, exc)
            failed.append(f"{name}: {exc}")
    return failed


async def _containers_and_sandboxes(settings: Settings) -> None:
    allocations = Allocations(settings.store_path)
    try:
        await teardown_node(
            settings, runtime=build_runtime(settings),
            images=ImageStore(settings.images_dir) if settings.images_dir.exists() else None,
            network=PodNetwork(settings, allocations, netns_prefix=settings.netns_prefix))
    finally:
        allocations.close()


async def _host_network(settings: Settings) -> None:
    allocations = Allocations(settings.store_path)
    try:
        await PodNetwork(settings, allocations, netns_prefix=settings.netns_prefix).teardown()
    finally:
        allocations.close()


async def _socket_dir(settings: Settings) -> None:
    if settings.socket_dir != settings.run_dir:
        shutil.rmtree(settings.socket_dir, ignore_errors=True)


def _steps() -> list[tuple[str, Any]]:
    return [
        ("containers, snapshots and pod sandboxes", _containers_and_sandboxes),
        ("bridge, routes and iptables chains", _host_network),
        ("socket directory", _socket_dir),
    ]
