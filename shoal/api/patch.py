"""PATCH bodies applied to objects: JSON merge patch, JSON patch, strategic merge patch.

Pure functions, no I/O, no shared state (safe from any thread or task). Every function
deep-copies its inputs first and never mutates them; the result shares nothing with the
arguments.

- `merge_patch`: RFC 7386 (what `kubectl label`, `annotate`, `scale` send:
  ``application/merge-patch+json``).
- `json_patch`: RFC 6902 through the `jsonpatch` library (``application/json-patch+json``).
- `strategic_merge_patch`: Kubernetes' strategic merge patch
  (``application/strategic-merge-patch+json``, what `kubectl apply`, `edit`, `set image`,
  `rollout restart` send). It follows `k8s.io/apimachinery/pkg/util/strategicpatch`
  server-side (``StrategicMergeMapPatch``: parallel lists merged, unmatched nulls
  ignored): lists whose Go field carries ``patchStrategy:"merge"`` are merged by their
  ``patchMergeKey`` (lists of scalars such as ``metadata.finalizers`` become a union),
  every other list is replaced; ``null`` deletes a key; the directives ``$patch``
  (``replace`` / ``delete`` on maps and list items), ``$retainKeys``,
  ``$deleteFromPrimitiveList/<field>`` and ``$setElementOrder/<field>`` are honoured,
  with the same element ordering rules ($setElementOrder, then patch order, then live
  order). The merge keys come from the Go struct tags of core/v1 and apps/v1 (see
  `shoal.api.patchmeta`); kinds not listed there get merge semantics with every list
  replaced, except in ``metadata`` (ObjectMeta is shared by every kind).
- `apply_patch`: picks one of the above from the request's Content-Type. Server-side
  apply (``application/apply-patch+yaml``) is a simplified version: the applied
  configuration is strategic-merged onto the live object. There is no field ownership
  (managedFields) yet, so fields removed from an applied configuration are not removed
  from the object and no conflicts are reported.

Errors: a malformed patch raises `errors.BadRequest` naming the problem (400, as
Kubernetes does for undecodable patches, unknown directives and malformed JSON-patch
operations). A well-formed JSON patch that cannot apply to this object (a failing
``test``, a path that does not exist) raises `errors.Invalid` (422, as Kubernetes does).
"""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonpatch
import jsonpointer
import yaml

from shoal.api import errors, patchmeta

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
SUPPORTED_CONTENT_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH)

_DIRECTIVE = "$patch"
_RETAIN_KEYS = "$retainKeys"
_DELETE_FROM_PRIMITIVE_LIST = "$deleteFromPrimitiveList/"
_SET_ELEMENT_ORDER = "$setElementOrder/"


# --------------------------------------------------------------------------- public API


def merge_patch(obj: dict, patch: Any) -> dict:
    """RFC 7386 JSON merge patch: objects merge recursively, null deletes, anything else
    (lists included) replaces. The patch must be a JSON object (Kubernetes refuses
    anything else with 400)."""
    _require_object(patch, "merge patch")
    _require_object(obj, "object")
    return _merge_patch_value(copy.deepcopy(obj), patch)


def json_patch(obj: dict, patch: Any) -> dict:
    """RFC 6902 JSON patch (add, remove, replace, move, copy, test) via `jsonpatch`.

    A patch that is not a list of valid operations -> BadRequest; an operation that
    cannot apply to this object (test fails, path missing) -> Invalid (422)."""
    _require_object(obj, "object")
    if not isinstance(patch, list):
        raise errors.BadRequest(
            f"json patch must be a JSON array of operations, got {_json_type(patch)}"
        )
    for index, op in enumerate(patch):
        if not isinstance(op, dict):
            raise errors.BadRequest(
                f"json patch operation {index} must be a JSON object, got {_json_type(op)}"
            )
        if "op" not in op:
            raise errors.BadRequest(f"json patch operation {index} has no 'op' member")
        for member in ("path", "from") if op["op"] in ("move", "copy") else ("path",):
            pointer = op.get(member)
            if not isinstance(pointer, str) or (pointer and not pointer.startswith("/")):
                raise errors.BadRequest(
                    f"json patch operation {index} ({op['op']!r}): {member!r} must be a JSON "
                    f"pointer string starting with '/', got {pointer!r}"
                )
    try:
        compiled = jsonpatch.JsonPatch(copy.deepcopy(patch))
        result = compiled.apply(copy.deepcopy(obj), in_place=True)
    except jsonpatch.JsonPatchTestFailed as exc:
        raise _cannot_apply(obj, f"test operation failed: {exc}") from None
    except jsonpatch.JsonPatchConflict as exc:
        raise _cannot_apply(obj, str(exc)) from None
    except jsonpatch.InvalidJsonPatch as exc:
        raise errors.BadRequest(f"invalid json patch: {exc}") from None
    except jsonpointer.JsonPointerException as exc:
        raise _cannot_apply(obj, f"path does not exist: {exc}") from None
    except (TypeError, ValueError, KeyError, IndexError) as exc:
        raise errors.BadRequest(f"invalid json patch: {exc}") from None
    if not isinstance(result, dict):
        raise _cannot_apply(obj, "the patch replaced the whole object with a non-object")
    return result


def strategic_merge_patch(obj: dict, patch: Any, kind: str) -> dict:
    """Kubernetes strategic merge patch of `patch` onto `obj` (see the module docstring).

    `kind` selects the merge keys (Pod, Deployment, ...); unknown kinds merge maps and
    replace lists."""
    _require_object(patch, "strategic merge patch")
    _require_object(obj, "object")
    return _merge_map(copy.deepcopy(obj), copy.deepcopy(patch), patchmeta.root_type(kind), "")


def apply_patch(obj: dict, patch: Any, content_type: str, kind: str) -> dict:
    """Apply a PATCH request body. `patch` is the decoded body (dict / list) or the raw
    body (str / bytes, decoded here: JSON, or YAML for apply patches). `content_type`
    may carry parameters (``; charset=utf-8``)."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type not in SUPPORTED_CONTENT_TYPES:
        supported = ", ".join(SUPPORTED_CONTENT_TYPES)
        raise errors.UnsupportedMediaType(
            f"the body of the request was in an unknown format - accepted media types "
            f"include: {supported} (got {content_type!r})"
        )
    body = _decode_body(patch, yaml_allowed=media_type == APPLY_PATCH)
    if media_type == JSON_PATCH:
        return json_patch(obj, body)
    if media_type == MERGE_PATCH:
        return merge_patch(obj, body)
    if media_type == STRATEGIC_MERGE_PATCH:
        return strategic_merge_patch(obj, body, kind)
    return _server_side_apply(obj, body, kind)


# ------------------------------------------------------------------ strategic merge


def _merge_map(original: dict, patch: dict, type_name: str, path: str) -> dict:
    """apimachinery's mergeMap: `original` and `patch` are private copies, mutated."""
    if _DIRECTIVE in patch:
        directive = patch[_DIRECTIVE]
        if directive == "replace":
            del patch[_DIRECTIVE]
            return _clean(patch, type_name, path)
        if directive == "delete":
            return {}
        if directive != "merge":
            raise _bad_directive(directive, path)
        del patch[_DIRECTIVE]

    _apply_retain_keys(original, patch, path)
    _apply_set_element_order(original, patch, type_name, path)

    # Deletions from primitive lists first, so a value may be deleted and re-added.
    for key in [k for k in patch if k.startswith(_DELETE_FROM_PRIMITIVE_LIST)]:
        to_delete = patch.pop(key)
        field_name = key[len(_DELETE_FROM_PRIMITIVE_LIST):]
        where = _join(path, key)
        if not field_name:
            raise errors.BadRequest(f"invalid patch format of primitive list at {where}")
        if not isinstance(to_delete, list):
            raise errors.BadRequest(
                f"{where}: $deleteFromPrimitiveList must be a list, got {_json_type(to_delete)}"
            )
        current = original.get(field_name)
        if isinstance(current, list):
            original[field_name] = [v for v in current if not _contains(to_delete, v)]

    for key, value in patch.items():
        where = _join(path, key)
        if value is None:
            original.pop(key, None)
            continue
        field = patchmeta.field_of(type_name, key)
        if key not in original or original[key] is None:
            original[key] = _clean_value(value, field, where)
            continue
        current = original[key]
        if isinstance(current, dict) and isinstance(value, dict):
            if field.strategy == "replace":
                original[key] = _clean(value, field.type, where)
            else:
                original[key] = _merge_map(current, value, field.type, where)
        elif isinstance(current, list) and isinstance(value, list):
            if field.strategy == patchmeta.MERGE:
                original[key] = _merge_list(current, value, field, where)
            else:
                original[key] = _clean_list(value, field, where)
        else:
            original[key] = _clean_value(value, field, where)
    return original


def _merge_list(original: list, patch: list, field: patchmeta.Field, path: str) -> list:
    """apimachinery's mergeSlice for a list with patchStrategy merge."""
    if not original and not patch:
        return original
    maps = _element_kind_is_map(original, patch, path)
    server_order = list(original)
    if not maps:
        merged = list(original)
        for value in patch:
            if not _contains(merged, value):
                merged.append(value)
        patch_items = [v for v in merged if _contains(patch, v)]
        server_only = [v for v in merged if not _contains(patch, v)]
        return _normalize_order(patch_items, server_only, patch, server_order, "")
    if not field.merge_key:
        raise errors.BadRequest(f"{path}: cannot merge lists without merge key")
    key = field.merge_key
    original, patch = _merge_list_special_elements(original, patch, key, field.type, path)
    server_order = list(original)
    merged = list(original)
    for item in patch:
        if key not in item:
            raise _no_merge_key(item, key, path)
        index = _find_by_key(merged, key, item[key], path)
        if index >= 0:
            merged[index] = _merge_map(merged[index], item, field.type, f"{path}[{key}={item[key]}]")
        else:
            merged.append(_clean(item, field.type, f"{path}[{key}={item[key]}]"))
    patch_items = [v for v in merged if _find_by_key(patch, key, v.get(key), path) >= 0]
    server_only = [v for v in merged if _find_by_key(patch, key, v.get(key), path) < 0]
    return _normalize_order(patch_items, server_only, patch, server_order, key)


def _merge_list_special_elements(
    original: list, patch: list, key: str, item_type: str, path: str
) -> tuple[list, list]:
    """Handle list items carrying ``$patch``: delete removes the item with the same merge
    key from the live list, replace makes the (other) patch items the whole list."""
    plain: list = []
    replace = False
    for item in patch:
        if _DIRECTIVE not in item:
            plain.append(item)
            continue
        directive = item[_DIRECTIVE]
        if directive == "delete":
            if key not in item:
                raise _no_merge_key(item, key, path)
            original = [o for o in original if not _scalar_equal(o.get(key), item[key])]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            raise errors.BadRequest(
                f"{path}: merging lists cannot yet be specified in the patch ($patch: merge)"
            )
        else:
            raise _bad_directive(directive, path)
    if replace:
        return [_clean(item, item_type, path) for item in plain], []
    return original, plain


def _apply_retain_keys(original: dict, patch: dict, path: str) -> None:
    if _RETAIN_KEYS not in patch:
        return
    retain = patch.pop(_RETAIN_KEYS)
    where = _join(path, _RETAIN_KEYS)
    if not isinstance(retain, list) or not all(isinstance(k, str) for k in retain):
        raise errors.BadRequest(f"invalid patch format of retainKeys at {where}: "
                                f"must be a list of field names")
    keep = set(retain)
    for key, value in patch.items():
        if value is None or key.startswith((_DELETE_FROM_PRIMITIVE_LIST, _SET_ELEMENT_ORDER)):
            continue
        if key not in keep:
            raise errors.BadRequest(
                f"invalid patch format of retainKeys at {where}: the patch sets {key!r}, "
                f"which is not in the $retainKeys list {sorted(keep)}"
            )
    for key in list(original):
        if key not in keep:
            del original[key]


def _apply_set_element_order(original: dict, patch: dict, type_name: str, path: str) -> None:
    """apimachinery's mergePatchIntoOriginal: merge each list named by a
    ``$setElementOrder/<field>`` directive and order it by that directive."""
    for directive_key in [k for k in patch if k.startswith(_SET_ELEMENT_ORDER)]:
        order = patch.pop(directive_key)
        field_name = directive_key[len(_SET_ELEMENT_ORDER):]
        where = _join(path, directive_key)
        if not field_name or not isinstance(order, list):
            raise errors.BadRequest(f"invalid patch format of setElementOrder list at {where}")
        field = patchmeta.field_of(type_name, field_name)
        list_path = _join(path, field_name)
        live = original.get(field_name)
        in_patch = field_name in patch
        patch_list = patch.get(field_name)
        if live is not None and not isinstance(live, list):
            live = None
        if in_patch and not isinstance(patch_list, list):
            continue  # not a list in the patch: merged (replaced) like any other value
        _validate_set_element_order(patch_list or [], order, field.merge_key, where)
        if live is None and not in_patch:
            continue
        if live is not None and not in_patch:
            merged = live
        elif live is None:
            merged = _clean_list(patch_list, field, list_path)
        elif field.strategy == patchmeta.MERGE:
            merged = _merge_list(live, patch_list, field, list_path)
        else:
            merged = _clean_list(patch_list, field, list_path)
        if merged and all(isinstance(v, dict) for v in merged) and field.merge_key:
            key = field.merge_key
            for item in order:
                if not isinstance(item, dict) or key not in item:
                    raise _no_merge_key(item, key, where)
            patch_items = [v for v in merged if _find_by_key(order, key, v.get(key), where) >= 0]
            server_only = [v for v in merged if _find_by_key(order, key, v.get(key), where) < 0]
        else:
            key = ""
            patch_items = [v for v in merged if _contains(order, v)]
            server_only = [v for v in merged if not _contains(order, v)]
        original[field_name] = _normalize_order(patch_items, server_only, order, live or [], key)
        patch.pop(field_name, None)


def _validate_set_element_order(patch_list: list, order: list, key: str, where: str) -> None:
    """Every (non-deleted) item of the patch list must appear in $setElementOrder, in the
    same relative order."""
    items = [i for i in patch_list if not (isinstance(i, dict) and _DIRECTIVE in i)]
    if not items or not order:
        return
    position = 0
    for candidate in order:
        if position >= len(items):
            break
        if _order_key(items[position], key) == _order_key(candidate, key):
            position += 1
    if position < len(items):
        raise errors.BadRequest(
            f"{where}: the order in the patch list {json.dumps(patch_list)} doesn't match "
            f"the $setElementOrder list {json.dumps(order)}"
        )


def _normalize_order(
    patch_items: list, server_only: list, patch_order: list, server_order: list, key: str
) -> list:
    """apimachinery's normalizeElementOrder + mergeSortedSlice: patch items in patch
    order, server-only items in live order, interleaved by their live positions."""
    patch_items = _sort_by(patch_items, patch_order, key)
    server_only = _sort_by(server_only, server_order, key)

    def live_index(item: Any) -> int:
        return _index(server_order, item, key)

    result: list = []
    i = j = 0
    while i < len(server_only) or j < len(patch_items):
        if i >= len(server_only):
            result.append(patch_items[j])
            j += 1
        elif j >= len(patch_items):
            result.append(server_only[i])
            i += 1
        else:
            li, ri = live_index(server_only[i]), live_index(patch_items[j])
            if li >= 0 and ri >= 0 and li < ri:
                result.append(server_only[i])
                i += 1
            else:
                result.append(patch_items[j])
                j += 1
    return result


def _sort_by(items: list, order: list, key: str) -> list:
    """Stable sort of `items` by their position in `order`; deletion items and items not
    in `order` go last, in their current order."""
    deletes = [v for v in items if isinstance(v, dict) and v.get(_DIRECTIVE) == "delete"]
    rest = [v for v in items if not (isinstance(v, dict) and v.get(_DIRECTIVE) == "delete")]
    found = [v for v in rest if _index(order, v, key) >= 0]
    missing = [v for v in rest if _index(order, v, key) < 0]
    found.sort(key=lambda v: _index(order, v, key))
    return found + missing + deletes


def _index(items: list, value: Any, key: str) -> int:
    wanted = _order_key(value, key)
    for position, item in enumerate(items):
        if _order_key(item, key) == wanted:
            return position
    return -1


def _order_key(value: Any, key: str) -> Any:
    if key:
        return _scalar_key(value.get(key)) if isinstance(value, dict) else ("<not a map>",)
    return _scalar_key(value)


# ------------------------------------------------------------------ cleaning new values


def _clean_value(value: Any, field: patchmeta.Field, path: str) -> Any:
    """A value that lands where the object had nothing comparable: drop nulls and
    directives inside it, as typed decoding does in Kubernetes."""
    if isinstance(value, dict):
        return _clean(value, field.type, path)
    if isinstance(value, list):
        return _clean_list(value, field, path)
    return value


def _clean(value: dict, type_name: str, path: str) -> dict:
    # $retainKeys only clears live fields; with nothing live there is nothing to check
    # (Kubernetes does not validate it either when the field is new).
    value = {k: v for k, v in value.items() if k != _RETAIN_KEYS}
    return _merge_map({}, value, type_name, path)


def _clean_list(value: list, field: patchmeta.Field, path: str) -> list:
    if field.strategy == patchmeta.MERGE and field.merge_key and value and all(
        isinstance(v, dict) and (field.merge_key in v or _DIRECTIVE in v) for v in value
    ):
        return _merge_list([], value, field, path)
    return [_clean(v, field.type, path) if isinstance(v, dict) else v for v in value]


# ------------------------------------------------------------------ helpers


def _merge_patch_value(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(target, dict):
        target = {}
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = _merge_patch_value(target.get(key), value)
    return target


def _server_side_apply(obj: dict, applied: Any, kind: str) -> dict:
    _require_object(applied, "apply patch")
    applied_kind = applied.get("kind")
    if applied_kind and kind and applied_kind != kind:
        raise errors.BadRequest(
            f"apply patch: kind {applied_kind!r} does not match the object's kind {kind!r}"
        )
    return strategic_merge_patch(obj, applied, kind)


def _decode_body(body: Any, *, yaml_allowed: bool) -> Any:
    if isinstance(body, (bytes, bytearray)):
        try:
            body = bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            raise errors.BadRequest("the patch body is not UTF-8") from None
    if not isinstance(body, str):
        return body
    try:
        return json.loads(body)
    except ValueError as exc:
        if not yaml_allowed:
            raise errors.BadRequest(f"the patch body is not valid JSON: {exc}") from None
    try:
        return yaml.safe_load(body)
    except yaml.YAMLError as exc:
        raise errors.BadRequest(f"the apply patch body is not valid YAML: {exc}") from None


def _element_kind_is_map(original: list, patch: list, path: str) -> bool:
    kinds = {isinstance(v, dict) for v in (*original, *patch)}
    if any(isinstance(v, list) for v in (*original, *patch)):
        raise errors.BadRequest(f"{path}: lists of lists are not supported")
    if len(kinds) > 1:
        raise errors.BadRequest(f"{path}: list element types are not identical "
                                f"(maps mixed with scalars)")
    return kinds == {True}


def _find_by_key(items: list, key: str, value: Any, path: str) -> int:
    wanted = _scalar_key(value)
    for position, item in enumerate(items):
        if not isinstance(item, dict):
            raise errors.BadRequest(f"{path}: list item {position} is not a map")
        if key in item and _scalar_key(item[key]) == wanted:
            return position
    return -1


def _scalar_key(value: Any) -> Any:
    """Equality as Go compares decoded JSON values: 1 == 1.0, but true != 1."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, (int, float)):
        return ("number", float(value))
    if isinstance(value, (dict, list)):
        return ("json", json.dumps(value, sort_keys=True))
    return (type(value).__name__, value)


def _scalar_equal(a: Any, b: Any) -> bool:
    return _scalar_key(a) == _scalar_key(b)


def _contains(items: list, value: Any) -> bool:
    wanted = _scalar_key(value)
    return any(_scalar_key(v) == wanted for v in items)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _require_object(value: Any, what: str) -> None:
    if not isinstance(value, dict):
        raise errors.BadRequest(f"{what} must be a JSON object, got {_json_type(value)}")


def _bad_directive(directive: Any, path: str) -> errors.BadRequest:
    where = f" at {path}" if path else ""
    return errors.BadRequest(
        f"unknown patch type: {directive!r}{where} ($patch must be replace, delete or merge)"
    )


def _no_merge_key(item: Any, key: str, path: str) -> errors.BadRequest:
    return errors.BadRequest(
        f"{path}: map {json.dumps(item, sort_keys=True)} does not contain declared merge "
        f"key: {key}"
    )


def _cannot_apply(obj: dict, detail: str) -> errors.Invalid:
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    return errors.Invalid(
        str(obj.get("kind") or "object"),
        str(meta.get("name") or ""),
        [errors.FieldError("patch", "Invalid value", detail)],
    )
