"""The HTTP face of the registry: Kubernetes REST paths, discovery, watch, tables, auth.

Paths follow Kubernetes exactly (`/api/v1/namespaces/{ns}/pods/{name}/status`,
`/apis/apps/v1/deployments`), so kubectl and the official clients work unchanged.
Handlers parse the request, call `Registry`, and render the result; every error is a
`StatusError` rendered as a Kubernetes `Status` with its code, in `_error_middleware`,
the one place errors become HTTP responses. Any other exception becomes a 500 Status
whose message names the failure without internals; the server keeps serving.

Auth: `Authorization: Bearer <token>` on everything except /healthz, /livez, /readyz and
/version (as Kubernetes' public-info-viewer role allows).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from typing import Any

import yaml
from aiohttp import web

from shoal import __version__
from shoal.api import errors, kinds, printers
from shoal.api.kinds import ResourceType
from shoal.apiserver import openapi, protobuf
from shoal.apiserver.registry import Registry

log = logging.getLogger("shoal.apiserver")

MAX_BODY_BYTES = 3 * 1024 * 1024  # Kubernetes' limit for a request body
KUBE_VERSION = {"major": "1", "minor": "32", "gitVersion": f"v1.32.0+shoal.{__version__}",
                "gitCommit": "", "gitTreeState": "clean", "buildDate": "",
                "goVersion": "", "compiler": "shoal", "platform": "linux/amd64"}
PUBLIC_PATHS = {"/healthz", "/livez", "/readyz", "/version", "/version/"}
PATCH_TYPES = {
    "application/merge-patch+json",
    "application/json-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
}


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(data, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
    )


def _status_response(err: errors.StatusError) -> web.Response:
    return _json(err.to_status(), err.code)


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
                f"the server does not allow this method on the requested resource"))
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


def _wants_table(request: web.Request) -> bool:
    return "as=Table" in request.headers.get("Accept", "")


def _check_media_type(ctype: str) -> None:
    """JSON, YAML and Kubernetes protobuf (kubectl's typed commands send protobuf and do
    not fall back to JSON). CBOR gets 415."""
    if "cbor" in ctype or ("protobuf" in ctype and ctype != protobuf.MEDIA_TYPE):
        raise errors.UnsupportedMediaType(
            f"the body of the request was in an unknown format - accepted media types "
            f"include: application/json, application/yaml, {protobuf.MEDIA_TYPE} (got {ctype})"
        )


async def _read_body(request: web.Request) -> Any:
    ctype = request.content_type
    _check_media_type(ctype)
    raw = await request.read()
    if not raw:
        raise errors.BadRequest("the request body is empty")
    if ctype == protobuf.MEDIA_TYPE:
        return protobuf.decode_body(raw)
    try:
        if "yaml" in ctype:
            return yaml.safe_load(raw)
        return json.loads(raw)
    except (ValueError, yaml.YAMLError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise errors.BadRequest(f"the request body is not valid {'YAML' if 'yaml' in ctype else 'JSON'}: {detail}") from None


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
        self._watchers: set[asyncio.Task[Any]] = set()

    # -- discovery ---------------------------------------------------------------------

    async def version(self, request: web.Request) -> web.Response:
        return _json(KUBE_VERSION)

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def openapi_root(self, request: web.Request) -> web.Response:
        return _json(openapi.root_document())

    async def openapi_group_version(self, request: web.Request) -> web.Response:
        doc = openapi.group_version_document(request.match_info["key"])
        if doc is None:
            raise errors.NotFound("the server could not find the requested resource")
        return _json(doc)

    async def api_versions(self, request: web.Request) -> web.Response:
        host = request.host or "127.0.0.1"
        return _json({
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
        return _json({
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
        if not types:
            raise errors.NotFound("the server could not find the requested resource")
        resources = []
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
            resources.append(entry)
            for sub in rt.subresources:
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
        return _json({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": resources,
        })

    # -- resources ---------------------------------------------------------------------

    def _route(self, request: web.Request) -> tuple[ResourceType, str | None, str | None, str | None]:
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
        if sub == "finalize" and rt.kind == "Namespace":
            sub = "status"  # namespace finalize: spec.finalizers, treated like status here
        if sub is not None and sub not in rt.subresources:
            raise errors.NotFound(f'{rt.resource} has no subresource "{sub}"')
        return rt, namespace, name, sub

    async def resource(self, request: web.Request) -> web.StreamResponse:
        rt, namespace, name, sub = self._route(request)
        method = request.method
        q = request.query
        dry_run = q.get("dryRun") == "All"
        reg = self.registry
        if method == "GET":
            if name is None:
                if _bool_param(request, "watch"):
                    return await self._watch(request, rt, namespace)
                items, rev = await reg.list(
                    rt, namespace,
                    label_selector=q.get("labelSelector"),
                    field_selector=q.get("fieldSelector"),
                )
                if _wants_table(request):
                    table = printers.table(rt.kind, items)
                    table.setdefault("metadata", {})["resourceVersion"] = str(rev)
                    return _json(table)
                return _json({
                    "kind": rt.list_kind,
                    "apiVersion": rt.api_version,
                    "metadata": {"resourceVersion": str(rev)},
                    "items": items,
                })
            obj = await reg.get(rt, namespace, name)
            if sub == "scale":
                return _json(reg.scale_of(rt, obj))
            if _wants_table(request):
                return _json(printers.table(rt.kind, [obj]))
            return _json(obj)
        if method == "POST":
            if name is not None:
                raise errors.MethodNotAllowed(f"POST is not allowed on a named {rt.singular}")
            body = await _read_body(request)
            obj = await reg.create(rt, namespace, body, dry_run=dry_run)
            return _json(obj, 201)
        if method == "PUT":
            if name is None:
                raise errors.MethodNotAllowed("PUT needs a named object")
            body = await _read_body(request)
            return _json(await reg.update(rt, namespace, name, body, subresource=sub, dry_run=dry_run))
        if method == "PATCH":
            if name is None:
                raise errors.MethodNotAllowed("PATCH needs a named object")
            ctype = request.content_type
            if ctype not in PATCH_TYPES:
                raise errors.UnsupportedMediaType(
                    f"the body of the request was in an unknown format - accepted media types "
                    f"include: {', '.join(sorted(PATCH_TYPES))}"
                )
            raw = await request.read()
            try:
                body = yaml.safe_load(raw) if "yaml" in ctype else json.loads(raw or b"null")
            except (ValueError, yaml.YAMLError) as exc:
                raise errors.BadRequest(f"the patch is not valid JSON: {exc}") from None
            return _json(await reg.patch(rt, namespace, name, body, ctype,
                                         subresource=sub, dry_run=dry_run))
        if method == "DELETE":
            opts: dict[str, Any] = {}
            raw = await request.read()
            if raw and request.content_type == protobuf.MEDIA_TYPE:
                opts = protobuf.decode_body(raw)
            elif raw:
                try:
                    opts = json.loads(raw) or {}
                except ValueError as exc:
                    raise errors.BadRequest(f"DeleteOptions are not valid JSON: {exc}") from None
                if not isinstance(opts, dict):
                    raise errors.BadRequest("DeleteOptions must be an object")
            policy = q.get("propagationPolicy") or opts.get("propagationPolicy")
            if policy is None and opts.get("orphanDependents") is True:
                policy = "Orphan"
            grace = q.get("gracePeriodSeconds", opts.get("gracePeriodSeconds"))
            grace_int = None
            if grace is not None:
                try:
                    grace_int = int(grace)
                except (TypeError, ValueError):
                    raise errors.BadRequest(f"gracePeriodSeconds: expected an integer, got {grace!r}") from None
            if policy is not None and policy not in ("Orphan", "Background", "Foreground"):
                raise errors.BadRequest(
                    f'propagationPolicy: Unsupported value: "{policy}": supported values: '
                    '"Orphan", "Background", "Foreground"'
                )
            if name is None:
                deleted = await reg.delete_collection(
                    rt, namespace,
                    label_selector=q.get("labelSelector"),
                    field_selector=q.get("fieldSelector"),
                    propagation_policy=policy,
                    grace_period_seconds=grace_int,
                )
                return _json({"kind": rt.list_kind, "apiVersion": rt.api_version,
                              "metadata": {}, "items": deleted})
            obj = await reg.delete(
                rt, namespace, name,
                propagation_policy=policy,
                grace_period_seconds=grace_int,
                preconditions=opts.get("preconditions"),
                dry_run=dry_run,
            )
            if obj.get("metadata", {}).get("deletionTimestamp") and rt.kind != "Pod":
                return _json(obj, 202 if obj["metadata"].get("finalizers") else 200)
            return _json(obj)
        raise errors.MethodNotAllowed(f"{method} is not allowed")

    async def _watch(
        self, request: web.Request, rt: ResourceType, namespace: str | None
    ) -> web.StreamResponse:
        q = request.query
        rv_text = q.get("resourceVersion") or ""
        try:
            rv = int(rv_text) if rv_text not in ("", "0") else None
        except ValueError:
            raise errors.BadRequest(f"resourceVersion: expected an integer, got {rv_text!r}") from None
        timeout = None
        if q.get("timeoutSeconds"):
            try:
                timeout = float(q["timeoutSeconds"])
            except ValueError:
                raise errors.BadRequest("timeoutSeconds: expected a number") from None
        events = await self.registry.watch(
            rt, namespace,
            resource_version=rv,
            label_selector=q.get("labelSelector"),
            field_selector=q.get("fieldSelector"),
        )
        table = _wants_table(request)
        response = web.StreamResponse(headers={"Content-Type": "application/json",
                                               "Transfer-Encoding": "chunked"})
        await response.prepare(request)

        async def pump() -> None:
            async for event in events:
                obj = event.object
                if table:
                    obj = printers.table(rt.kind, [obj])
                line = json.dumps({"type": event.type, "object": obj}, separators=(",", ":"))
                await response.write(line.encode() + b"\n")

        try:
            await asyncio.wait_for(pump(), timeout)
        except asyncio.TimeoutError:
            pass
        except errors.StatusError as err:
            line = json.dumps({"type": "ERROR", "object": err.to_status()})
            await response.write(line.encode() + b"\n")
        except (ConnectionResetError, asyncio.CancelledError):
            await events.aclose()
            raise
        finally:
            await events.aclose()
        try:
            await response.write_eof()
        except ConnectionResetError:
            pass
        return response
