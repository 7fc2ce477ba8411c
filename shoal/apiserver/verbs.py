"""One handler per REST verb: parse the request, call the `Registry`, render the result.

`shoal.apiserver.http` resolves the path to a `Target` (type, namespace, name,
subresource) and the method to a verb, then calls the handler of that verb from
`HANDLERS`: get, list, watch, create, update, patch, delete, deletecollection (kine's
one-verb-per-unit taste: each handler reads only its own query parameters and body).
Handlers raise `StatusError`s; the server's error middleware renders them as Status.

Concurrency: handlers are coroutines without shared state; a watch holds its response
open until the client leaves (noticed within `DISCONNECT_CHECK_SECONDS`),
`timeoutSeconds` passes, or the watch ends with an ERROR event (Gone when its revision
was compacted).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any, Awaitable, Callable

import yaml
from aiohttp import web

from shoal import tasks
from shoal.api import errors, kinds, printers
from shoal.api.kinds import ResourceType
from shoal.apiserver import protobuf
from shoal.apiserver.registry import Registry

PATCH_TYPES = {
    "application/merge-patch+json",
    "application/json-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
}
PROPAGATION_POLICIES = ("Orphan", "Background", "Foreground")
DISCONNECT_CHECK_SECONDS = 1.0
"""How often a quiet watch checks that its client is still connected (aiohttp does not
cancel a handler whose client left), so an abandoned watch stops within this time."""


@dataclasses.dataclass(frozen=True)
class Target:
    """What a resource path names: /api/v1/namespaces/{namespace}/pods/{name}/{subresource}."""

    type: ResourceType
    namespace: str | None
    name: str | None
    subresource: str | None


Handler = Callable[[Registry, web.Request, Target], Awaitable[web.StreamResponse]]
"""A verb handler: (registry, request, target) -> response."""


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(data, separators=(",", ":")).encode(), status=status,
                        content_type="application/json")


def wants_table(request: web.Request) -> bool:
    return "as=Table" in request.headers.get("Accept", "")


def _dry_run(request: web.Request) -> bool:
    return request.query.get("dryRun") == "All"


def _check_media_type(ctype: str) -> None:
    """JSON, YAML and Kubernetes protobuf (kubectl's typed commands send protobuf and do
    not fall back to JSON). CBOR gets 415."""
    if "cbor" in ctype or ("protobuf" in ctype and ctype != protobuf.MEDIA_TYPE):
        raise errors.UnsupportedMediaType(
            f"the body of the request was in an unknown format - accepted media types "
            f"include: application/json, application/yaml, {protobuf.MEDIA_TYPE} (got {ctype})"
        )


async def read_body(request: web.Request) -> Any:
    """The request's object: JSON, YAML or Kubernetes protobuf; BadRequest when empty
    or malformed (naming the format and the first parse error)."""
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
        form = "YAML" if "yaml" in ctype else "JSON"
        raise errors.BadRequest(f"the request body is not valid {form}: {detail}") from None


# -- reads ------------------------------------------------------------------------------

async def get(registry: Registry, request: web.Request, target: Target) -> web.StreamResponse:
    assert target.name is not None
    rt = target.type
    obj = await registry.get(rt, target.namespace, target.name)
    if target.subresource == "scale":
        return json_response(registry.scale_of(rt, obj))
    if wants_table(request):
        return json_response(printers.table(rt.kind, [obj]))
    return json_response(obj)


async def list_(registry: Registry, request: web.Request, target: Target) -> web.StreamResponse:
    rt, q = target.type, request.query
    items, rev = await registry.list(rt, target.namespace, label_selector=q.get("labelSelector"),
                                     field_selector=q.get("fieldSelector"))
    if wants_table(request):
        table = printers.table(rt.kind, items)
        table.setdefault("metadata", {})["resourceVersion"] = str(rev)
        return json_response(table)
    return json_response({"kind": rt.list_kind, "apiVersion": rt.api_version,
                          "metadata": {"resourceVersion": str(rev)}, "items": items})


def _watch_params(request: web.Request) -> tuple[int | None, float | None]:
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
    return rv, timeout


async def watch(registry: Registry, request: web.Request, target: Target) -> web.StreamResponse:
    rt, q = target.type, request.query
    rv, timeout = _watch_params(request)
    events = await registry.watch(rt, target.namespace, resource_version=rv,
                                  label_selector=q.get("labelSelector"),
                                  field_selector=q.get("fieldSelector"))
    table = wants_table(request)
    response = web.StreamResponse(headers={"Content-Type": "application/json",
                                           "Transfer-Encoding": "chunked"})
    await response.prepare(request)

    async def pump() -> None:
        async for event in events:
            obj = printers.table(rt.kind, [event.object]) if table else event.object
            line = json.dumps({"type": event.type, "object": obj}, separators=(",", ":"))
            await response.write(line.encode() + b"\n")

    task = asyncio.ensure_future(pump())
    deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
    try:
        while not task.done():
            wait = DISCONNECT_CHECK_SECONDS
            if deadline is not None:
                wait = min(wait, max(0.0, deadline - asyncio.get_running_loop().time()))
            await asyncio.wait({task}, timeout=wait)
            transport = request.transport
            gone = transport is None or transport.is_closing()
            expired = deadline is not None and asyncio.get_running_loop().time() >= deadline
            if not task.done() and (gone or expired):
                await tasks.cancel_and_wait(task)
                if gone:
                    return response  # the client left: nobody to end the stream for
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
    except errors.StatusError as err:
        line = json.dumps({"type": "ERROR", "object": err.to_status()})
        await response.write(line.encode() + b"\n")
    finally:
        await tasks.cancel_and_wait(task)
        await events.aclose()
    try:
        await response.write_eof()
    except ConnectionResetError:
        pass
    return response


# -- writes -----------------------------------------------------------------------------

async def create(registry: Registry, request: web.Request, target: Target) -> web.StreamResponse:
    body = await read_body(request)
    obj = await registry.create(target.type, target.namespace, body, dry_run=_dry_run(request))
    return json_response(obj, 201)


async def update(registry: Registry, request: web.Request, target: Target) -> web.StreamResponse:
    assert target.name is not None
    body = await read_body(request)
    return json_response(await registry.update(
        target.type, target.namespace, target.name, body,
        subresource=target.subresource, dry_run=_dry_run(request)))


async def patch(registry: Registry, request: web.Request, target: Target) -> web.StreamResponse:
    assert target.name is not None
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
    return json_response(await registry.patch(
        target.type, target.namespace, target.name, body, ctype,
        subresource=target.subresource, dry_run=_dry_run(request)))


@dataclasses.dataclass(frozen=True)
class DeleteOptions:
    propagation_policy: str | None
    grace_period_seconds: int | None
    preconditions: dict[str, Any] | None


async def _delete_options(request: web.Request) -> DeleteOptions:
    """DeleteOptions from the body (JSON or protobuf) and the query (which wins)."""
    q = request.query
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
    if policy is not None and policy not in PROPAGATION_POLICIES:
        raise errors.BadRequest(
            f'propagationPolicy: Unsupported value: "{policy}": supported values: '
            + ", ".join(f'"{p}"' for p in PROPAGATION_POLICIES)
        )
    grace = q.get("gracePeriodSeconds", opts.get("gracePeriodSeconds"))
    grace_int = None
    if grace is not None:
        try:
            grace_int = int(grace)
        except (TypeError, ValueError):
            raise errors.BadRequest(
                f"gracePeriodSeconds: expected an integer, got {grace!r}") from None
    return DeleteOptions(policy, grace_int, opts.get("preconditions"))


async def delete(registry: Registry, request: web.Request, target: Target) -> web.StreamResponse:
    assert target.name is not None
    rt = target.type
    opts = await _delete_options(request)
    obj = await registry.delete(
        rt, target.namespace, target.name,
        propagation_policy=opts.propagation_policy,
        grace_period_seconds=opts.grace_period_seconds,
        preconditions=opts.preconditions, dry_run=_dry_run(request),
    )
    meta = obj.get("metadata", {})
    if meta.get("deletionTimestamp") and meta.get("finalizers") and not kinds.strategy_of(rt).graceful:
        return json_response(obj, 202)  # held by finalizers: accepted, not yet deleted
    return json_response(obj)


async def delete_collection(registry: Registry, request: web.Request,
                            target: Target) -> web.StreamResponse:
    rt, q = target.type, request.query
    opts = await _delete_options(request)
    deleted = await registry.delete_collection(
        rt, target.namespace,
        label_selector=q.get("labelSelector"), field_selector=q.get("fieldSelector"),
        propagation_policy=opts.propagation_policy,
        grace_period_seconds=opts.grace_period_seconds,
    )
    return json_response({"kind": rt.list_kind, "apiVersion": rt.api_version,
                          "metadata": {}, "items": deleted})


HANDLERS: dict[str, Handler] = {
    "get": get, "list": list_, "watch": watch, "create": create, "update": update,
    "patch": patch, "delete": delete, "deletecollection": delete_collection,
}
"""Verb -> handler; `shoal.apiserver.http.verb_of` names the verb of a request."""
