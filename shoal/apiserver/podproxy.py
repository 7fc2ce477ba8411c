"""`pods/proxy`: the API server's HTTP proxy to a port of a pod, as Kubernetes serves it.

    GET /api/v1/namespaces/{ns}/pods/{[scheme:]name[:port]}/proxy[/{path}][?query]

dials `http://<pod IP>:<port>/<path>?<query>` from the host (pod IPs are reachable from
the host over the bridge) and streams the answer back with its status code and
`Content-Type`, so `kubectl get --raw /api/v1/namespaces/NS/pods/NAME:15090/proxy/
stats/prometheus` reads a sidecar's metrics without anyone entering the pod's network
namespace. `port` is a number or the name of a container port of the pod (no port: the
scheme's default); `scheme` is `http` (default) or `https` (the pod's certificate is
not verified, as Kubernetes does not).

Only GET and HEAD are served (405 otherwise). The caller's `Authorization` header is
never forwarded; only `Accept` and `User-Agent` are. Errors are Kubernetes Statuses: an
unknown pod 404, a malformed name or an unknown port name 400, a pod without an IP (or
with one that may not be proxied, e.g. loopback) 400/503, a pod that does not answer
503 `error trying to reach service: ...`, as kubectl prints them for Kubernetes.

Concurrency: one aiohttp client session per application, created on first use and
closed on the application's cleanup; requests share it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import urllib.parse
from typing import Any, Protocol

import aiohttp
from aiohttp import web

from shoal.api import errors

Obj = dict[str, Any]
log = logging.getLogger("shoal.apiserver.podproxy")

CONNECT_TIMEOUT_SECONDS = 5.0
RESPONSE_TIMEOUT_SECONDS = 30.0
FORWARDED_REQUEST_HEADERS = ("Accept", "User-Agent")
FORWARDED_RESPONSE_HEADERS = ("Content-Type", "Cache-Control", "Last-Modified", "ETag")
CHUNK_BYTES = 64 * 1024
_PATH = "/api/v1/namespaces/{namespace}/pods/{target}/proxy"


class PodReader(Protocol):
    """What the proxy needs of the API: read one pod (an `ApiClient` is one)."""

    async def get(self, resource: str, namespace: str | None, name: str) -> Obj: ...


def parse_target(target: str) -> tuple[str, str, str]:
    """`[scheme:]name[:port]` -> (scheme, name, port or ""), as Kubernetes splits it."""
    parts = target.split(":")
    if len(parts) == 1:
        return "http", parts[0], ""
    if len(parts) == 2:
        return "http", parts[0], parts[1]
    if len(parts) == 3 and parts[0] in ("http", "https"):
        return parts[0], parts[1], parts[2]
    raise errors.BadRequest(f'invalid pod request "{target}": expected [scheme:]name[:port], '
                            "with scheme http or https")


def resolve_port(pod: Obj, port: str) -> int | None:
    """A port number, or the number of the container port named `port`; None for none."""
    if not port:
        return None
    if port.isdigit():
        number = int(port)
        if 0 < number < 65536:
            return number
        raise errors.BadRequest(f"invalid port {port}: must be between 1 and 65535")
    for container in (pod.get("spec") or {}).get("containers") or []:
        for declared in container.get("ports") or []:
            if declared.get("name") == port:
                return int(declared["containerPort"])
    raise errors.BadRequest(f'pod "{pod["metadata"]["name"]}" has no container port named "{port}"')


def pod_address(pod: Obj) -> str:
    """The pod's IP if it may be proxied to (not unspecified, loopback or link-local)."""
    ip = (pod.get("status") or {}).get("podIP")
    name = pod["metadata"]["name"]
    if not ip:
        raise errors.ServiceUnavailable(f'pod "{name}" has no IP address yet (phase '
                                        f'{(pod.get("status") or {}).get("phase", "Pending")})')
    address = ipaddress.ip_address(ip)
    if address.is_unspecified or address.is_loopback or address.is_link_local:
        raise errors.BadRequest(f"address not allowed: {ip}")
    return ip


def target_url(scheme: str, ip: str, port: int | None, path: str, query: str) -> str:
    host = f"[{ip}]" if ":" in ip else ip
    url = f"{scheme}://{host}{f':{port}' if port else ''}{path or '/'}"
    return f"{url}?{query}" if query else url


def _rest_of_path(raw_path: str) -> str:
    """The raw (still percent-encoded) path after `.../proxy`: "" or "/...". """
    parts = raw_path.split("/")
    # ['', 'api', 'v1', 'namespaces', NS, 'pods', TARGET, 'proxy', ...]
    return "/" + "/".join(parts[8:]) if len(parts) > 8 else ""


class PodProxy:
    """The pods/proxy handler over a `PodReader`."""

    def __init__(self, pods: PodReader) -> None:
        self._pods = pods
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT_SECONDS,
                                              sock_read=RESPONSE_TIMEOUT_SECONDS),
                auto_decompress=False)
        return self._session

    async def close(self, _app: web.Application | None = None) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            raise errors.MethodNotAllowed(
                f"the server does not allow this method on the requested resource: "
                f"pods/proxy serves GET and HEAD, not {request.method}")
        namespace = request.match_info["namespace"]
        scheme, name, port = parse_target(urllib.parse.unquote(request.match_info["target"]))
        pod = await self._pods.get("pods", namespace, name)
        url = target_url(scheme, pod_address(pod), resolve_port(pod, port),
                         _rest_of_path(request.raw_path.split("?", 1)[0]), request.query_string)
        headers = {h: request.headers[h] for h in FORWARDED_REQUEST_HEADERS if h in request.headers}
        response: web.StreamResponse | None = None
        try:
            async with self._client().request(request.method, url, headers=headers,
                                              allow_redirects=False,
                                              ssl=False if scheme == "https" else None) as upstream:
                response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
                for header in FORWARDED_RESPONSE_HEADERS:
                    if header in upstream.headers:
                        response.headers[header] = upstream.headers[header]
                await response.prepare(request)
                async for chunk in upstream.content.iter_chunked(CHUNK_BYTES):
                    await response.write(chunk)
                await response.write_eof()
                return response
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            if response is not None and response.prepared:
                # The status line is out: a pod that stops mid-answer ends the stream.
                log.info("pods/proxy %s/%s: the pod stopped answering: %s", namespace, name, exc)
                return response
            detail = str(exc) or exc.__class__.__name__
            raise errors.ServiceUnavailable(f"error trying to reach service: {detail}") from None


def add_routes(app: web.Application, pods: PodReader) -> PodProxy:
    """Serve pods/proxy on `app` (all methods routed here, so no other handler sees a
    proxy path; the dispatcher prefers these longer static prefixes)."""
    proxy = PodProxy(pods)
    app.router.add_route("*", _PATH, proxy.handle)
    app.router.add_route("*", _PATH + "/{path:.*}", proxy.handle)
    app.on_cleanup.append(proxy.close)
    return proxy
