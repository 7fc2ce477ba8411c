"""Just enough OpenAPI v3 for kubectl: one document per group-version, listing for each
kind its paths with the `x-kubernetes-group-version-kind` extension and the
`fieldValidation` query parameter on PATCH/POST/PUT.

kubectl (1.27+) reads this to learn that the server validates fields itself
(`fieldValidation=Strict`), and then leaves validation to the server instead of
downloading full schemas. Unknown and mistyped fields are rejected by
`shoal.api.validation` with the field path either way.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from shoal.api import kinds
from shoal.api.kinds import ResourceType

_QUERY_PARAMS = [
    {"name": n, "in": "query", "schema": {"type": "string"}, "uniqueItems": True}
    for n in ("dryRun", "fieldManager", "fieldValidation", "pretty")
]


def _gv_key(rt: ResourceType) -> str:
    return f"apis/{rt.group}/{rt.version}" if rt.group else f"api/{rt.version}"


def _item_path(rt: ResourceType) -> str:
    base = f"/{_gv_key(rt)}"
    if rt.namespaced:
        base += "/namespaces/{namespace}"
    return f"{base}/{rt.plural}/{{name}}"


def _operation(rt: ResourceType, verb: str) -> dict[str, Any]:
    return {
        "operationId": f"{verb}{rt.kind}",
        "parameters": list(_QUERY_PARAMS),
        "responses": {"200": {"description": "OK"}},
        "x-kubernetes-action": verb,
        "x-kubernetes-group-version-kind": {"group": rt.group, "version": rt.version,
                                            "kind": rt.kind},
    }


def group_version_document(key: str) -> dict[str, Any] | None:
    """The OpenAPI v3 document of one group-version ('api/v1', 'apis/apps/v1')."""
    types = [rt for rt in kinds.all_types() if _gv_key(rt) == key]
    if not types:
        return None
    paths: dict[str, Any] = {}
    for rt in types:
        paths[_item_path(rt)] = {
            "get": _operation(rt, "get"),
            "put": _operation(rt, "put"),
            "patch": _operation(rt, "patch"),
            "delete": _operation(rt, "delete"),
        }
        collection = _item_path(rt).rsplit("/", 1)[0]
        paths[collection] = {"post": _operation(rt, "post"), "get": _operation(rt, "list")}
    return {"openapi": "3.0.0", "info": {"title": "shoal", "version": key}, "paths": paths,
            "components": {"schemas": {}}}


def root_document() -> dict[str, Any]:
    keys = sorted({_gv_key(rt) for rt in kinds.all_types()})
    paths = {}
    for key in keys:
        digest = hashlib.sha256(
            json.dumps(group_version_document(key), sort_keys=True).encode()).hexdigest()[:32]
        paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={digest.upper()}"}
    return {"paths": paths}
