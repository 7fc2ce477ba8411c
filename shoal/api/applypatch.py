"""The patch client-side apply sends: kubectl's three-way strategic merge patch.

`three_way_patch(original, modified, current, kind)` is what `kubectl apply` computes
(CreateThreeWayMergePatch): `original` is the last applied configuration (the
`kubectl.kubernetes.io/last-applied-configuration` annotation), `modified` the new
manifest, `current` the live object. The patch

- sets every field `modified` sets that `current` does not have or has differently;
- deletes (null) every field `original` set that `modified` no longer sets;
- leaves fields nobody applied (status, defaults, other writers' fields) alone;
- for lists with a patch merge key (containers by name, ports by containerPort, ...):
  sends the changed or new elements keyed by the merge key, `{"<key>": K, "$patch":
  "delete"}` for an element `original` had and `modified` dropped, and
  `$setElementOrder/<field>` with `modified`'s order — so a Deployment whose containers
  shrink from two to one and grow back ends with exactly the listed containers;
- for merge lists of scalars (finalizers): the new values plus
  `$deleteFromPrimitiveList/<field>` for the dropped ones;
- replaces any other list whole when it differs.

Kinds without patch metadata (Istio's, CRDs) get the same three-way logic as a JSON
merge patch (`strategic=False`): lists are replaced, as kubectl does for them. Pure.
"""

from __future__ import annotations

from typing import Any

from shoal.api import patchmeta

Obj = dict[str, Any]
_MISSING = object()


def three_way_patch(original: Any, modified: Obj, current: Obj, kind: str,
                    strategic: bool = True) -> Obj:
    """The patch that takes `current` to `modified`, deleting what only `original` had."""
    type_name = patchmeta.root_type(kind) if strategic else patchmeta.UNKNOWN_KIND
    return _map(original if isinstance(original, dict) else {}, modified, current,
                type_name, strategic)


def _map(original: Obj, modified: Obj, current: Obj, type_name: str, strategic: bool) -> Obj:
    patch: Obj = {}
    for key, value in modified.items():
        field = patchmeta.field_of(type_name, key) if strategic else patchmeta.Field()
        live = current.get(key, _MISSING)
        before = original.get(key, _MISSING)
        if isinstance(value, dict) and isinstance(live, dict):
            sub = _map(before if isinstance(before, dict) else {}, value, live, field.type, strategic)
            if sub:
                patch[key] = sub
        elif strategic and field.strategy == patchmeta.MERGE and isinstance(value, list) \
                and isinstance(live, list):
            _merge_list(patch, key, field, before if isinstance(before, list) else [], value, live,
                        strategic)
        elif live is _MISSING or value != live:
            patch[key] = value
    for key in original:
        if key not in modified and key in current:
            patch[key] = None
    return patch


def _merge_list(patch: Obj, key: str, field: patchmeta.Field, original: list, modified: list,
                current: list, strategic: bool) -> None:
    merge_key = field.merge_key
    if merge_key and all(isinstance(e, dict) and merge_key in e for e in modified):
        live = {e[merge_key]: e for e in current if isinstance(e, dict) and merge_key in e}
        before = {e[merge_key]: e for e in original if isinstance(e, dict) and merge_key in e}
        items = []
        for element in modified:
            name = element[merge_key]
            if name not in live:
                items.append(element)
                continue
            sub = _map(before.get(name, {}), element, live[name], field.type, strategic)
            if sub:
                items.append({merge_key: name, **sub})
        wanted = {e[merge_key] for e in modified}
        items += [{merge_key: name, "$patch": "delete"} for name in before
                  if name not in wanted and name in live]
        if items:
            patch[key] = items
            patch[f"$setElementOrder/{key}"] = [{merge_key: e[merge_key]} for e in modified]
    elif not merge_key and all(not isinstance(e, (dict, list)) for e in modified):
        added = [v for v in modified if v not in current]
        dropped = [v for v in original if v not in modified and v in current]
        if added:
            patch[key] = added
        if dropped:
            patch[f"$deleteFromPrimitiveList/{key}"] = dropped
        if added or dropped:
            patch[f"$setElementOrder/{key}"] = list(modified)
    elif modified != current:
        patch[key] = modified
