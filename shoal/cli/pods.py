"""Pod targets for `shoal logs` and `shoal exec`: `shoal logs POD [-c C] [-n NS] [-p]`.

A resolver for `shoal.cli.containers.RESOLVERS`: it asks the API for the pod (through
the state dir's kubeconfig) and the node agent's `resolve_container` for the runtime
container id and the CRI log file of the chosen container (the previous restart's with
`-p`; `shoal stop/rm` use these). The target carries the pod (`podstreams.PodRef`), so
`logs` and `exec` go through the API's pods/log and pods/exec as kubectl's do. Plain
container names and ids are tried first by the runtime's own resolver.
"""

from __future__ import annotations

import click

from shoal.api import errors
from shoal.client import HttpClient
from shoal.cli import podstreams
from shoal.cli.containers import Lookup, Target
from shoal.cli.context import settings_from
from shoal.node.access import resolve_container
from shoal.node.errors import ContainerNotFound
from shoal.runtime import Runtime


async def resolve_pod(ctx: click.Context, rt: Runtime, lookup: Lookup) -> Target | None:
    settings = settings_from(ctx)
    if not settings.kubeconfig_path.exists():
        return None  # no daemon on this state dir: no pods
    namespace = lookup.namespace or "default"
    try:
        async with HttpClient.from_kubeconfig(settings.kubeconfig_path) as client:
            cid, log_path = await resolve_container(
                client, settings, namespace, lookup.name, lookup.container, lookup.previous)
    except ContainerNotFound as exc:
        if f'pods "{lookup.name}" not found' in str(exc):
            if lookup.container or lookup.namespace:
                raise click.ClickException(f'pods "{lookup.name}" not found in namespace {namespace}') from None
            return None
        raise click.ClickException(str(exc)) from None
    except errors.ServiceUnavailable:
        return None
    pod = podstreams.PodRef(namespace, lookup.name, lookup.container, lookup.previous)
    return Target(None if lookup.previous else cid, log_path, pod=pod)
