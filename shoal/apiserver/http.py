"""The HTTP face of the registry: Kubernetes REST paths, discovery, watch, tables, auth.

Paths follow Kubernetes exactly (`/api/v1/namespaces/{ns}/pods/{name}/status`,
`/apis/apps/v1/deployments`), so kubectl and the official clients work unchanged.
`ApiServer.resource` resolves a path to a `Target` and a verb and calls that verb's
handler in `shoal.apiserver.verbs` (one per verb), which parses the request, calls the
`Registry`, and renders the result. Two extension points serve what the registry does
not: `add_subresource("pods", "log", handler, verbs)` for extra subresources (streaming
pods/log, pods/exec, pods/attach, pods/portforward) and `add_api_group(group)` for a
group/version served by its own code (metrics.k8s.io); both appear in discovery.
Every error is a `StatusError` rendered as a Kubernetes `Status` with its code, in
`_error_middleware`, the one place errors become HTTP responses. Any other exception becomes a 500 Status
whose message names the failure without internals; the server keeps serving.

Auth: `Authorization: Bearer <token>` on everything except /healthz, /livez, /readyz and
/version (as Kubernetes' public-info-viewer role allows).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from typing import Any, Awaitable, Callable, Protocol

from aiohttp import web

from shoal import __version__
from shoal.api import errors, kinds
from shoal.apiserver import openapi, verbs
from shoal.apiserver.registry import Registry
from shoal.apiserver.verbs import Target

__all__ = ["ApiServer", "ApiGroup", "SubresourceHandler", "Target", "verb_of"]

log = logging.getLogger("shoal.apiserver")

SubresourceHandler = Callable[[web.Request, Target], Awaitable[web.StreamResponse]]
"""Serves one extra subresource (pods/log, pods/exec, ...): (request, target) -> response.
`target.name` is the object's name; the handler checks the method itself."""


class ApiGroup(Protocol):
    """An API group/version served by its own code (e.g. metrics.k8s.io/v1beta1)."""

    group: str
    version: str

    def resources(self) -> list[dict[str, Any]]:
        """Its discovery entries (APIResource dicts: name, namespaced, kind, verbs)."""

    async def handle(self, request: web.Request, path: str) -> web.StreamResponse:
        """Serve `path`, the part after /apis/{group}/{version}/."""

MAX_BODY_BYTES = 3 * 1024 * 1024  # Kubernetes' limit for a request body
KUBE_VERSION = {"major": "1", "minor": "32", "gitVersion": f"v1.32.0+shoal.{__version__}",
                "gitCommit": "", "gitTreeState": "clean", "buildDate": "",
                "goVersion": "", "compiler": "shoal", "platform": "linux/amd64"}
PUBLIC_PATHS = {"/healthz", "/livez", "/readyz", "/version", "/version/"}


def _status_response(err: errors.StatusError) -> web.Response:
    return verbs.json_response(err.to_status(), err.code)


@web.middleware
async def _error_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except errors.StatusError as err:
        return _status_response(err)
    except web.HTTPRequestEntityTooLarge:
        return _status_response(errors.RequestEntityTooLarge(
            f"the request body is larger than the limit of {MAX_BODY_BYTES} bytes"
        ))
    except web.HTTPException as exc:
        if exc.status == 404:
            return _status_response(errors.NotFound("the server could not find the requested resource"))
        if exc.status == 405:
            return _status_response(errors.MethodNotAllowed(
                "the server does not allow this method on the requested resource"))
        raise
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        log.exception("internal error serving %s %s", request.method, request.path)
        return _status_response(errors.InternalError(
            f"an internal error occurred while serving {request.method} {request.path}; "
            "see the shoal log"
        ))


def _auth_middleware(token: str) -> Any:
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path in PUBLIC_PATHS:
            return await handler(request)
        given = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            raise errors.Unauthorized("Unauthorized")
        return await handler(request)

    return middleware


def _bool_param(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("true", "1")


class ApiServer:
    """The aiohttp application over a Registry. `app` is ready to be served."""

    def __init__(self, registry: Registry, token: str) -> None:
        self.registry = registry
        self.app = web.Application(
            middlewares=[_error_middleware, _auth_middleware(token)],
            client_max_size=MAX_BODY_BYTES,
        )
        r = self.app.router
        r.add_get("/version", self.version)
        r.add_get("/healthz", self.healthz)
        r.add_get("/livez", self.healthz)
        r.add_get("/readyz", self.healthz)
        r.add_get("/openapi/v3", self.openapi_root)
        r.add_get("/openapi/v3/{key:.+}", self.openapi_group_version)
        r.add_get("/api", self.api_versions)
        r.add_get("/apis", self.api_groups)
        r.add_route("*", "/api/{version}", self.group_version)
        r.add_route("*", "/apis/{group}/{version}", self.group_version)
        r.add_route("*", "/api/{version}/{rest:.+}", self.resource)
        r.add_route("*", "/apis/{group}/{version}/{rest:.+}", self.resource)
        self._subresources: dict[tuple[str, str], tuple[SubresourceHandler, tuple[str, ...]]] = {}
        self._groups: dict[tuple[str, str], ApiGroup] = {}

    # -- discovery ---------------------------------------------------------------------

    async def version(self, request: web.Request) -> web.Response:
        return verbs.json_response(KUBE_VERSION)

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def openapi_root(self, request: web.Request) -> web.Response:
        return verbs.json_response(openapi.root_document())

    async def openapi_group_version(self, request: web.Request) -> web.Response:
        doc = openapi.group_version_document(request.match_info["key"])
        if doc is None:
            raise errors.NotFound("the server could not find the requested resource")
        return verbs.json_response(doc)

    async def api_versions(self, request: web.Request) -> web.Response:
        host = request.host or "127.0.0.1"
        return verbs.json_response({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}],
        })

    async def api_groups(self, request: web.Request) -> web.Response:
        groups: dict[str, list[str]] = {}
        for rt in kinds.all_types():
            if rt.group:
                versions = groups.setdefault(rt.group, [])
                if rt.version not in versions:
                    versions.append(rt.version)
        for g, v in self._groups:
            versions = groups.setdefault(g, [])
            if v not in versions:
                versions.append(v)
        return verbs.json_response({
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [
                {
                    "name": g,
                    "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in vs],
                    "preferredVersion": {"groupVersion": f"{g}/{vs[0]}", "version": vs[0]},
                }
                for g, vs in sorted(groups.items())
            ],
        })

    async def group_version(self, request: web.Request) -> web.Response:
        group = request.match_info.get("group", "")
        version = request.match_info["version"]
        if request.method != "GET":
            raise errors.MethodNotAllowed("only GET is allowed on a discovery path")
        types = [rt for rt in kinds.all_types() if rt.group == group and rt.version == version]
        extra = self._groups.get((group, version))
        if not types and extra is None:
            raise errors.NotFound("the server could not find the requested resource")
        resources = list(extra.resources()) if extra is not None else []
        for rt in types:
            entry = {
                "name": rt.plural,
                "singularName": rt.singular,
                "namespaced": rt.namespaced,
                "kind": rt.kind,
                "verbs": list(rt.verbs),
            }
            if rt.short_names:
                entry["shortNames"] = list(rt.short_names)
            if rt.categories:
                entry["categories"] = list(rt.categories)  # `kubectl get all`
            resources.append(entry)
            for sub in rt.subresources:
                if (rt.resource, sub) in self._subresources:
                    continue
                resources.append({
                    "name": f"{rt.plural}/{sub}",
                    "singularName": "",
                    "namespaced": rt.namespaced,
                    "kind": "Scale" if sub == "scale" else rt.kind,
                    "group": "autoscaling" if sub == "scale" else None,
                    "version": "v1" if sub == "scale" else None,
                    "verbs": ["get", "patch", "update"],
                })
                if resources[-1]["group"] is None:
                    del resources[-1]["group"], resources[-1]["version"]
            for (resource, sub), (_, sub_verbs) in self._subresources.items():
                if resource == rt.resource:
                    resources.append({"name": f"{rt.plural}/{sub}", "singularName": "",
                                      "namespaced": rt.namespaced, "kind": rt.kind,
                                      "verbs": list(sub_verbs)})
        return verbs.json_response({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": resources,
        })

    # -- resources ---------------------------------------------------------------------

    def add_subresource(self, resource: str, name: str, handler: SubresourceHandler,
                        verbs: tuple[str, ...] = ("get",)) -> None:
        """Serve `{resource}/{name}` (e.g. "pods", "log") with `handler(request, target)`
        for every method; discovery lists it with `verbs`. This is the extension point
        for subresources the registry does not serve (pods/log, pods/exec, pods/attach,
        pods/portforward). Call before serving."""
        rt = kinds.by_resource(resource)
        self._subresources[(rt.resource, name)] = (handler, verbs)

    def add_api_group(self, group: ApiGroup) -> None:
        """Serve a whole group/version (e.g. metrics.k8s.io/v1beta1) with `group`: its
        paths go to `group.handle`, and discovery (/apis, /apis/{group}/{version}) lists
        it. Call before serving."""
        self._groups[(group.group, group.version)] = group

    def _route(self, request: web.Request) -> verbs.Target:
        group = request.match_info.get("group", "")
        version = request.match_info["version"]
        segs = [s for s in request.match_info["rest"].split("/") if s]
        namespace = None
        if (
            len(segs) >= 3
            and segs[0] == "namespaces"
            and not (len(segs) == 3 and segs[2] in ("status", "finalize"))
        ):
            namespace, segs = segs[1], segs[2:]
        if not segs or len(segs) > 3:
            raise errors.NotFound("the server could not find the requested resource")
        rt = kinds.by_path(group, version, segs[0])
        if rt is None:
            raise errors.NotFound(
                f"the server could not find the requested resource ({'/'.join(segs)})"
            )
        if namespace is not None and not rt.namespaced:
            raise errors.NotFound(f"{rt.resource} is not a namespaced resource")
        name = segs[1] if len(segs) > 1 else None
        sub = segs[2] if len(segs) > 2 else None
        if sub is not None and sub not in rt.subresources and (rt.resource, sub) not in self._subresources:
            raise errors.NotFound(f'{rt.resource} has no subresource "{sub}"')
        return verbs.Target(rt, namespace, name, sub)

    async def resource(self, request: web.Request) -> web.StreamResponse:
        extra = self._groups.get((request.match_info.get("group", ""),
                                  request.match_info["version"]))
        if extra is not None:
            return await extra.handle(request, request.match_info["rest"])
        target = self._route(request)
        if target.subresource is not None:
            served = self._subresources.get((target.type.resource, target.subresource))
            if served is not None:
                return await served[0](request, target)
        return await verbs.HANDLERS[verb_of(request.method, target, request)](
            self.registry, request, target)


def verb_of(method: str, target: verbs.Target, request: web.Request) -> str:
    """The Kubernetes verb of a request, or MethodNotAllowed."""
    named = target.name is not None
    if method == "GET":
        if named:
            return "get"
        return "watch" if _bool_param(request, "watch") else "list"
    if method == "POST":
        if named:
            raise errors.MethodNotAllowed(f"POST is not allowed on a named {target.type.singular}")
        return "create"
    if method == "PUT":
        if not named:
            raise errors.MethodNotAllowed("PUT needs a named object")
        return "update"
    if method == "PATCH":
        if not named:
            raise errors.MethodNotAllowed("PATCH needs a named object")
        return "patch"
    if method == "DELETE":
        return "delete" if named else "deletecollection"
    raise errors.MethodNotAllowed(f"{method} is not allowed")
