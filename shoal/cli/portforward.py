"""`shoal port-forward TYPE/NAME [LOCAL:]REMOTE...` through the API, in kubectl's habits.

The target is a pod (`web`, `pod/web`) or an object kubectl resolves to one of its
pods itself: `deploy/X` (also `deployment`, `rs`/`replicaset`) by its selector, and
`svc/X` (`service`) by its selector, with the port translated from the Service's
`port` to its `targetPort` (a number, or a container port *name* looked up in the
chosen pod). The pod must be Running. As kubectl: `8080:80`, `80` (same both sides),
`:80` (a free local port); it prints `Forwarding from 127.0.0.1:L -> R` and
`Handling connection for L`.

Wire: the channel form of `pods/portforward` (`v4.channel.k8s.io`), one WebSocket per
accepted local connection: channel 0 data both ways, channel 1 the server's error
text, each opening with a two-byte port header. An error is printed and the forward
keeps listening (kubectl 1.32 exits on the first error instead).

Concurrency: one listener per port; per local connection one task relaying local ->
WebSocket while the handler relays WebSocket -> local; both end with the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import click
import httpx

from shoal.cli import podstreams
from shoal.cli.context import settings_from

CHANNEL_PROTOCOL = "v4.channel.k8s.io"
DATA, ERROR = 0, 1
READ_CHUNK = 65536

KINDS = {
    "pod": ("pods", "api/v1"), "pods": ("pods", "api/v1"), "po": ("pods", "api/v1"),
    "deploy": ("deployments", "apis/apps/v1"), "deployment": ("deployments", "apis/apps/v1"),
    "deployments": ("deployments", "apis/apps/v1"),
    "rs": ("replicasets", "apis/apps/v1"), "replicaset": ("replicasets", "apis/apps/v1"),
    "replicasets": ("replicasets", "apis/apps/v1"),
    "svc": ("services", "api/v1"), "service": ("services", "api/v1"), "services": ("services", "api/v1"),
}


@dataclass(frozen=True)
class PortPair:
    local: int  # 0: any free port
    remote: str  # a number, or (pods and services) a port name


def parse_port_pair(text: str) -> PortPair:
    """kubectl's forms: `L:R`, `R`, `:R`; R may be a port name, L must be a number."""
    parts = text.split(":")
    if len(parts) == 1:
        local_text, remote = parts[0], parts[0]
    elif len(parts) == 2:
        local_text, remote = parts[0] or "0", parts[1]
    else:
        raise click.UsageError(f"invalid port format '{text}'")
    try:
        local = int(local_text)
    except ValueError:
        raise click.UsageError(f"error parsing local port '{local_text}': not a number") from None
    if not 0 <= local < 65536:
        raise click.UsageError(f"local port {local} must be between 0 and 65535")
    if not remote or remote == "0":
        raise click.UsageError("remote port must be > 0")
    return PortPair(local, remote)


def selector_query(selector: dict[str, Any] | None) -> str:
    """A label selector (matchLabels, or a Service's plain map) as a query string."""
    labels = (selector or {}).get("matchLabels", selector) or {}
    expressions = (selector or {}).get("matchExpressions") or []
    parts = [f"{k}={v}" for k, v in labels.items() if isinstance(v, str)]
    for expr in expressions:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


def _is_ready(pod: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def choose_pod(pods: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The pod kubectl would attach to: running and ready first, then the newest."""
    live = [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]
    if not live:
        return None
    return sorted(live, key=lambda p: ((p.get("status") or {}).get("phase") == "Running", _is_ready(p),
                                       (p.get("metadata") or {}).get("creationTimestamp") or ""),
                  reverse=True)[0]


def container_port(pod: dict[str, Any], name: str) -> int | None:
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == name:
                return port.get("containerPort")
    return None


def pod_port(pod: dict[str, Any], remote: str) -> int:
    """A pod's port by number or by container port name."""
    if remote.isdigit():
        return int(remote)
    number = container_port(pod, remote)
    if number is None:
        raise click.ClickException(f"Pod '{pod['metadata']['name']}' does not have a named port '{remote}'")
    return number


def service_target_port(service: dict[str, Any], pod: dict[str, Any], remote: str) -> int:
    """kubectl's translation of a Service port (number or name) to the pod's port."""
    name = service["metadata"]["name"]
    for port in (service.get("spec") or {}).get("ports") or []:
        if str(port.get("port")) == remote or (not remote.isdigit() and port.get("name") == remote):
            target = port.get("targetPort", port.get("port"))
            if isinstance(target, int) or str(target).isdigit():
                return int(target)
            number = container_port(pod, str(target))
            if number is None:
                raise click.ClickException(f"Pod '{pod['metadata']['name']}' does not have a named port '{target}'")
            return number
    raise click.ClickException(f"Service {name} does not have a service port {remote}")


async def _get(client: httpx.AsyncClient, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
    """GET an object; a refusal becomes a ClickException with the Status's message."""
    response = await client.get(path, params=params)
    if response.status_code != 200:
        try:
            message = response.json().get("message")
        except ValueError:
            message = None
        raise click.ClickException(message or f"the API answered {response.status_code}")
    return response.json()


async def resolve_target(client: httpx.AsyncClient, namespace: str, target: str,
                         pairs: list[PortPair]) -> tuple[str, list[tuple[int, int]]]:
    """(pod name, [(local, pod port)]) for what the user typed."""
    kind, _, name = target.rpartition("/")
    resource, prefix = KINDS.get(kind.lower() or "pod", (None, None))
    if resource is None:
        raise click.UsageError(f"cannot port-forward to a {kind}: expected pod, deploy, rs or svc")
    base = f"/{prefix}/namespaces/{quote(namespace)}/{resource}/{quote(name)}"
    obj = await _get(client, base)
    if resource == "pods":
        pod = obj
    else:
        selector = (obj.get("spec") or {}).get("selector")
        query = selector_query(selector)
        if not query:
            raise click.ClickException(f"{kind}/{name} has no selector: no pod to forward to")
        pods = await _get(client, f"/api/v1/namespaces/{quote(namespace)}/pods", {"labelSelector": query})
        pod = choose_pod(pods.get("items") or [])
        if pod is None:
            raise click.ClickException(f"no pods found for {kind}/{name} (selector {query})")
    phase = (pod.get("status") or {}).get("phase")
    if phase != "Running":
        raise click.ClickException(f"unable to forward port because pod is not running. Current status={phase}")
    ports = [(p.local, service_target_port(obj, pod, p.remote) if resource == "services" else pod_port(pod, p.remote))
             for p in pairs]
    return pod["metadata"]["name"], ports


class Forwarder:
    def __init__(self, api: podstreams.Api, namespace: str, pod: str) -> None:
        self.api, self.namespace, self.pod = api, namespace, pod
        self.path = f"/api/v1/namespaces/{quote(namespace)}/pods/{quote(pod)}/portforward"

    async def handle(self, http: aiohttp.ClientSession, local: int, remote: int,
                     reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        click.echo(f"Handling connection for {local}")
        pump: asyncio.Task[None] | None = None
        try:
            async with http.ws_connect(self.api.server + self.path, params={"ports": str(remote)},
                                       protocols=[CHANNEL_PROTOCOL], ssl=self.api.ssl(),
                                       headers=self.api.headers(), max_msg_size=0) as ws:
                pump = asyncio.create_task(self._local_to_ws(reader, ws), name="port-forward-up")
                seen_header = {DATA: False, ERROR: False}
                async for msg in ws:
                    if msg.type != aiohttp.WSMsgType.BINARY or not msg.data:
                        continue
                    channel, data = msg.data[0], msg.data[1:]
                    if channel in seen_header and not seen_header[channel]:
                        seen_header[channel] = True  # the port header
                        continue
                    if channel == DATA:
                        writer.write(data)
                        await writer.drain()
                    elif channel == ERROR and data:
                        click.echo(f"an error occurred forwarding {local} -> {remote}: "
                                   f"{data.decode(errors='replace')}", err=True)
        except aiohttp.WSServerHandshakeError as exc:
            click.echo(f"error: upgrading the connection to {self.pod}: {exc.status} {exc.message}", err=True)
        except (ConnectionError, OSError, aiohttp.ClientError):
            pass
        finally:
            if pump is not None:
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pump
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    @staticmethod
    async def _local_to_ws(reader: asyncio.StreamReader, ws: aiohttp.ClientWebSocketResponse) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(READ_CHUNK):
                await ws.send_bytes(bytes([DATA]) + data)


async def forward(api: podstreams.Api, namespace: str, target: str, pairs: list[PortPair], address: str) -> None:
    async with httpx.AsyncClient(base_url=api.server, headers=api.headers(), verify=api.ssl(),
                                 timeout=30) as client:
        pod, ports = await resolve_target(client, namespace, target, pairs)
    forwarder = Forwarder(api, namespace, pod)
    async with aiohttp.ClientSession() as http:
        servers = []
        for local, remote in ports:
            def on_connect(r, w, local=local, remote=remote):
                port = w.get_extra_info("sockname")[1]
                return forwarder.handle(http, port, remote, r, w)
            server = await asyncio.start_server(on_connect, address, local)
            bound = server.sockets[0].getsockname()[1]
            click.echo(f"Forwarding from {address}:{bound} -> {remote}")
            servers.append(server)
        sys.stdout.flush()
        try:
            await asyncio.gather(*(s.serve_forever() for s in servers))
        finally:
            for s in servers:
                s.close()


@click.command("port-forward")
@click.option("-n", "--namespace", default="default", help="Namespace of the target.")
@click.option("--address", default="127.0.0.1", help="Local address to listen on (default 127.0.0.1).")
@click.argument("target")
@click.argument("ports", nargs=-1, required=True)
@click.pass_context
def port_forward(ctx: click.Context, namespace: str, address: str, target: str, ports: tuple[str, ...]) -> None:
    """Forward local ports to a pod (POD, pod/X, deploy/X, rs/X or svc/X), as kubectl does."""
    if address == "localhost":
        address = "127.0.0.1"
    pairs = [parse_port_pair(p) for p in ports]
    api = podstreams.kubeconfig_api(settings_from(ctx).kubeconfig_path)
    try:
        asyncio.run(forward(api, namespace, target, pairs, address))
    except KeyboardInterrupt:
        pass


COMMANDS = [port_forward]
