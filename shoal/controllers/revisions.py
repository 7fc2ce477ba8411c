"""ControllerRevisions: the template history of StatefulSets and DaemonSets.

As in Kubernetes (`pkg/controller/history`), each distinct pod template of a set is one
apps/v1 ControllerRevision owned by the set, named `<set>-<hash>`, whose `data` is the
patch that restores it (``{"spec": {"template": {..., "$patch": "replace"}}}``) and whose
`revision` is a number that grows with every change (going back to an older template
renumbers that revision as the newest rather than creating a twin). Pods carry the
revision's name in the `controller-revision-hash` label; a set recreates a pod from any
revision it still holds (a StatefulSet's ordinals below the partition keep the current
one).

Pure helpers plus `sync_revisions`, which reads the revision lister and writes through
the manager's writer (create, renumber, prune past `revisionHistoryLimit` keeping the
revisions live pods still use). Concurrency: called from a reconcile, which the engine
serialises per set.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, Iterable, Mapping

from shoal.api import errors as api_errors
from shoal.api.client import Obj
from shoal.controllers import engine, pods as podutil, rollout

REVISIONS = "controllerrevisions.apps"
HASH_LABEL = "controller-revision-hash"


def revision_data(template: Mapping[str, Any]) -> Obj:
    return {"spec": {"template": {**copy.deepcopy(dict(template)), "$patch": "replace"}}}


def template_of(revision: Mapping[str, Any]) -> Obj:
    """The pod template a revision restores."""
    template = dict(((revision.get("data") or {}).get("spec") or {}).get("template") or {})
    template.pop("$patch", None)
    return template


def revision_name(owner: Mapping[str, Any], template: Mapping[str, Any],
                  collisions: int | None = None) -> str:
    return f"{podutil.meta(owner)['name']}-{rollout.template_hash(template, collisions)}"


def revision_number(revision: Mapping[str, Any]) -> int:
    return int(revision.get("revision") or 0)


def owned_revisions(owner: Mapping[str, Any], revisions: Iterable[Mapping[str, Any]]) -> list[Obj]:
    """The owner's revisions, oldest first."""
    mine = [dict(r) for r in revisions if podutil.controlled_by(r, owner)]
    return sorted(mine, key=lambda r: (revision_number(r), podutil.meta(r).get("name", "")))


def pod_revision(pod: Mapping[str, Any]) -> str:
    return (podutil.meta(pod).get("labels") or {}).get(HASH_LABEL, "")


def _equal(revision: Mapping[str, Any], template: Mapping[str, Any]) -> bool:
    return rollout.templates_equal(template_of(revision), dict(template))


@dataclasses.dataclass(frozen=True)
class History:
    """What a reconcile needs: the update revision (the set's template now), the current
    one (what status.currentRevision names, if still held) and every revision held."""

    update: Obj
    current: Obj
    revisions: list[Obj]

    def by_name(self, name: str) -> Obj | None:
        return next((r for r in self.revisions if podutil.meta(r).get("name") == name), None)


def new_revision(owner: Mapping[str, Any], template: Mapping[str, Any], number: int,
                 collisions: int | None = None) -> Obj:
    labels = dict(((owner.get("spec") or {}).get("selector") or {}).get("matchLabels") or {})
    return {
        "apiVersion": "apps/v1", "kind": "ControllerRevision",
        "metadata": {"name": revision_name(owner, template, collisions),
                     "namespace": podutil.meta(owner)["namespace"], "labels": labels,
                     "ownerReferences": [podutil.owner_reference(owner)]},
        "data": revision_data(template), "revision": number,
    }


async def sync_revisions(writer: Any, lister: Any, owner: Obj, live_pods: list[Obj]) -> History:
    """Make sure the owner's template is its newest revision; prune the history."""
    ns = podutil.meta(owner)["namespace"]
    revisions = owned_revisions(owner, lister.list(ns))
    template = (owner.get("spec") or {}).get("template") or {}
    newest = max((revision_number(r) for r in revisions), default=0)
    update = next((r for r in reversed(revisions) if _equal(r, template)), None)
    if update is None:
        collisions = int((owner.get("status") or {}).get("collisionCount") or 0) or None
        for attempt in range(5):
            body = new_revision(owner, template, newest + 1, collisions)
            try:
                update = await writer.create(REVISIONS, body)
                break
            except api_errors.AlreadyExists:
                existing = lister.get(ns, body["metadata"]["name"])
                if existing is not None and podutil.controlled_by(existing, owner) \
                        and _equal(existing, template):
                    update = dict(existing)
                    break
                collisions = (collisions or 0) + 1  # a hash collision: draw again
        if update is None:
            raise api_errors.AlreadyExists(f"no free revision name for {podutil.meta(owner)['name']}")
        revisions.append(update)
    elif revision_number(update) < newest:
        body = engine.clone(update)
        body["revision"] = newest + 1
        update = await writer.update(REVISIONS, body)
        revisions = [update if podutil.meta(r)["name"] == podutil.meta(update)["name"] else r
                     for r in revisions]
    current_name = (owner.get("status") or {}).get("currentRevision")
    current = next((r for r in revisions if podutil.meta(r)["name"] == current_name), update)
    await _prune(writer, owner, revisions, {podutil.meta(update)["name"],
                                            podutil.meta(current)["name"]}, live_pods)
    return History(update=update, current=current, revisions=revisions)


async def _prune(writer: Any, owner: Obj, revisions: list[Obj], keep: set[str],
                 live_pods: list[Obj]) -> None:
    limit = int((owner.get("spec") or {}).get("revisionHistoryLimit", 10) or 0)
    used = keep | {pod_revision(p) for p in live_pods}
    history = [r for r in revisions if podutil.meta(r)["name"] not in used]
    for revision in history[:max(0, len(history) - limit)]:
        try:
            await writer.delete(REVISIONS, podutil.meta(revision)["namespace"],
                                podutil.meta(revision)["name"])
        except api_errors.NotFound:
            pass
