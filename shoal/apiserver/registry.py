"""The registry: every API verb on plain dicts, shared by the HTTP server and LocalClient.

This is where Kubernetes' generic registry semantics live (k8s.io/apiserver's
`registry/generic`): server-set metadata (uid, creationTimestamp, generation,
resourceVersion), defaulting -> mutating admission -> validation -> validating admission,
compare-and-swap updates, no-op updates that write nothing, the `status` and `scale`
subresources, graceful deletion (deletionTimestamp while finalizers remain) and
namespace lifecycle checks. What differs per kind (status on create, a Service's
addresses, a pod's grace period, a namespace's Terminating phase) is asked of the kind's
`shoal.api.strategy.Strategy` (registered with the kind); nothing here names a kind, so
a kind registered later plugs in without changing this module. The registry itself is
the strategies' `ServerServices` (its `services` allocator). The HTTP layer only parses
requests and renders results.

Concurrency: every method is a coroutine; the store serialises writes, and each
read-modify-write here is guarded by the store's compare-and-swap, retried for patches
(which carry no resourceVersion precondition, as Kubernetes retries them).
"""

from __future__ import annotations

import copy
import secrets
import uuid
from typing import Any, AsyncIterator

from shoal import timestamps
from shoal.api import defaults, errors, kinds, patch as patches, selectors, validation
from shoal.api import strategy as strategies
from shoal.api.client import WatchEvent
from shoal.api.kinds import ResourceType
from shoal.api.strategy import ServiceAllocator
from shoal.apiserver import watches
from shoal.apiserver.admission import AdmissionChain, AdmissionRequest
from shoal.store import KeyExists, Store

__all__ = ["Registry", "ServiceAllocator", "PATCH_RETRIES"]

Obj = dict[str, Any]

PATCH_RETRIES = 5
_NAME_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' utilrand alphabet


def _ns_key(rt: ResourceType, namespace: str | None) -> str:
    return (namespace or "") if rt.namespaced else ""


def _meta(obj: Obj) -> Obj:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        meta = obj["metadata"] = {}
    return meta


def _without_volatile(obj: Obj) -> Obj:
    """The object minus fields that change on every write (for no-op detection)."""
    clean = dict(obj)
    meta = dict(clean.get("metadata") or {})
    meta.pop("resourceVersion", None)
    meta.pop("managedFields", None)
    clean["metadata"] = meta
    return clean


class Registry:
    """Verbs over the store for every registered kind. See the module docstring."""

    def __init__(
        self,
        store: Store,
        *,
        admission: AdmissionChain | None = None,
        services: ServiceAllocator | None = None,
    ) -> None:
        self.store = store
        self.admission = admission or AdmissionChain()
        self.services = services

    # -- lookup ------------------------------------------------------------------------

    @staticmethod
    def resolve(resource: str) -> ResourceType:
        return kinds.by_resource(resource)

    async def _namespace_obj(self, rt: ResourceType, namespace: str | None) -> Obj | None:
        if not rt.namespaced:
            return None
        if not namespace:
            raise errors.BadRequest("the namespace of the object is required")
        ns = await self.store.get("namespaces", "", namespace)
        if ns is None:
            raise errors.NotFound.of("namespaces", namespace)
        return ns

    # -- reads -------------------------------------------------------------------------

    async def get(self, rt: ResourceType, namespace: str | None, name: str) -> Obj:
        obj = await self.store.get(rt.resource, _ns_key(rt, namespace), name)
        if obj is None:
            raise errors.NotFound.of(rt.resource, name)
        return obj

    async def list(
        self,
        rt: ResourceType,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> tuple[list[Obj], int]:
        labels = selectors.parse_label_selector(label_selector)
        fields = selectors.parse_field_selector(field_selector, rt.kind)
        items, rev = await self.store.list(rt.resource, namespace if rt.namespaced else None)
        if not labels.empty:
            items = [o for o in items if labels.matches(o.get("metadata", {}).get("labels"))]
        if field_selector:
            items = [o for o in items if fields.matches(o)]
        return items, rev

    async def watch(
        self,
        rt: ResourceType,
        namespace: str | None,
        *,
        resource_version: int | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> AsyncIterator[WatchEvent]:
        """Watch semantics of Kubernetes: without a resourceVersion, ADDED for every
        current object first; an object that stops matching the selectors is sent as
        DELETED, one that starts matching as ADDED."""
        labels = selectors.parse_label_selector(label_selector)
        fields = selectors.parse_field_selector(field_selector, rt.kind)

        def matches(obj: Obj) -> bool:
            return (labels.empty or labels.matches(obj.get("metadata", {}).get("labels"))) and (
                not field_selector or fields.matches(obj)
            )

        ns = namespace if rt.namespaced else None
        if resource_version and resource_version < self.store.compacted_revision:
            raise errors.Gone(
                f"too old resource version: {resource_version} "
                f"({self.store.compacted_revision})"
            )
        return watches.filtered_events(self.store, rt.resource, ns, resource_version, matches)

    # -- create ------------------------------------------------------------------------

    async def create(
        self, rt: ResourceType, namespace: str | None, body: Any, *, dry_run: bool = False
    ) -> Obj:
        obj = self._check_body(rt, body, namespace)
        meta = _meta(obj)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + random_suffix()
        ns_obj = await self._namespace_obj(rt, meta.get("namespace"))
        if ns_obj is not None and ns_obj.get("metadata", {}).get("deletionTimestamp"):
            raise errors.Forbidden(
                f'{rt.resource} "{meta.get("name", "")}" is forbidden: unable to create new '
                f"content in namespace {ns_obj['metadata']['name']} because it is being terminated"
            )
        for key in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds",
                    "managedFields", "selfLink"):
            meta.pop(key, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = timestamps.now()
        meta["generation"] = 1
        strategy = kinds.strategy_of(rt)
        strategy.prepare_for_create(obj, rt.subresources)
        obj = defaults.apply_defaults(obj)
        request = AdmissionRequest("CREATE", rt, obj, None, ns_obj, dry_run)
        # Defaults apply again to what mutating admission added (as Kubernetes re-defaults
        # a webhook's output), so the stored object is fully defaulted.
        obj = defaults.apply_defaults(await self.admission.mutate(request))
        validation.validate(obj)
        await self.admission.validate(AdmissionRequest("CREATE", rt, obj, None, ns_obj, dry_run))
        name = obj["metadata"]["name"]
        if dry_run:
            return obj
        allocated = strategy.allocate(obj, None, self)
        try:
            return await self.store.create(rt.resource, _ns_key(rt, namespace), name, obj)
        except KeyExists:
            strategy.release(obj, allocated, self)
            raise errors.AlreadyExists.of(rt.resource, name) from None
        except BaseException:
            strategy.release(obj, allocated, self)
            raise

    def _check_body(self, rt: ResourceType, body: Any, namespace: str | None) -> Obj:
        if not isinstance(body, dict):
            raise errors.BadRequest(
                f"the body of the request must be a JSON or YAML object, got {type(body).__name__}"
            )
        obj = copy.deepcopy(body)
        # Typed clients may leave apiVersion/kind out; the URL names them, as Kubernetes
        # decodes into the URL's type.
        api_version = obj.setdefault("apiVersion", rt.api_version) or rt.api_version
        kind = obj.setdefault("kind", rt.kind) or rt.kind
        obj["apiVersion"], obj["kind"] = api_version, kind
        body_rt = kinds.by_kind(api_version, kind)
        if body_rt.resource != rt.resource:
            raise errors.BadRequest(
                f"the API version in the data ({api_version}) and kind ({kind}) do not match "
                f"the resource of the request ({rt.resource})"
            )
        meta = obj.get("metadata")
        if meta is None:
            meta = obj["metadata"] = {}
        if not isinstance(meta, dict):
            raise errors.BadRequest("metadata: expected an object")
        if rt.namespaced:
            body_ns = meta.get("namespace")
            if namespace and body_ns and body_ns != namespace:
                raise errors.BadRequest(
                    "the namespace of the provided object does not match the namespace sent "
                    f"on the request ({body_ns!r} != {namespace!r})"
                )
            meta["namespace"] = namespace or body_ns or "default"
        else:
            meta.pop("namespace", None)
        return obj

    # -- update ------------------------------------------------------------------------

    async def update(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        body: Any,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> Obj:
        if subresource == "scale":
            return await self._update_scale(rt, namespace, name, body, dry_run=dry_run)
        if subresource is not None and subresource not in rt.subresources:
            raise errors.NotFound(f'{rt.resource} has no subresource "{subresource}"')
        obj = self._check_body(rt, body, namespace)
        if obj["metadata"].get("name") not in (None, name):
            raise errors.BadRequest(
                f"the name of the object ({obj['metadata']['name']}) does not match the name "
                f"on the URL ({name})"
            )
        obj["metadata"]["name"] = name
        current = await self.get(rt, namespace, name)
        expected = obj["metadata"].get("resourceVersion")
        if expected and expected != current["metadata"]["resourceVersion"]:
            raise errors.Conflict.stale(rt.resource, name)
        return await self._replace(rt, current, obj, subresource=subresource, dry_run=dry_run)

    async def _replace(
        self, rt: ResourceType, current: Obj, obj: Obj, *, subresource: str | None, dry_run: bool
    ) -> Obj:
        name = current["metadata"]["name"]
        namespace = current["metadata"].get("namespace")
        strategy = kinds.strategy_of(rt)
        new = _merge_server_fields(rt, strategy, current, obj, subresource)
        if subresource is None:
            strategy.prepare_for_update(new, current)
        new = defaults.apply_defaults(new)
        ns_obj = await self._namespace_obj(rt, namespace) if rt.namespaced else None
        if subresource is None:
            new = defaults.apply_defaults(await self.admission.mutate(
                AdmissionRequest("UPDATE", rt, new, current, ns_obj, dry_run)
            ))
        if _spec_part(new) != _spec_part(current):
            # generation counts changes of the desired state (all but metadata/status),
            # compared after defaulting so a re-applied manifest is no change.
            new["metadata"]["generation"] = int(current["metadata"].get("generation") or 1) + 1
        validation.validate(new, current)
        if subresource is None:
            await self.admission.validate(
                AdmissionRequest("UPDATE", rt, new, current, ns_obj, dry_run)
            )
        if _without_volatile(new) == _without_volatile(current):
            return current  # a no-op update writes nothing, as Kubernetes does
        if dry_run:
            return new
        if _finalized(strategy, new):
            # The last finalizer is gone: the object goes away now.
            ok, deleted = await self.store.delete(
                rt.resource, _ns_key(rt, namespace), name,
                int(current["metadata"]["resourceVersion"]),
            )
            if not ok:
                raise errors.Conflict.stale(rt.resource, name)
            strategy.release(current, None, self)
            return deleted or new
        allocated = strategy.allocate(new, current, self) if subresource is None else None
        ok, stored = await self.store.update(
            rt.resource, _ns_key(rt, namespace), name, new,
            int(current["metadata"]["resourceVersion"]),
        )
        if not ok:
            if allocated:
                strategy.release(new, allocated, self)
            if stored is None:
                raise errors.NotFound.of(rt.resource, name)
            raise errors.Conflict.stale(rt.resource, name)
        assert stored is not None
        return stored

    async def _update_scale(
        self, rt: ResourceType, namespace: str | None, name: str, body: Any, *, dry_run: bool
    ) -> Obj:
        if "scale" not in rt.subresources:
            raise errors.NotFound(f"{rt.resource} has no scale subresource")
        if not isinstance(body, dict) or not isinstance(body.get("spec"), dict):
            raise errors.BadRequest("a Scale object with spec.replicas is required")
        replicas = body["spec"].get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise errors.Invalid(
                "Scale", name,
                [errors.invalid("spec.replicas", replicas, "must be greater than or equal to 0")],
                "autoscaling",
            )
        for _ in range(PATCH_RETRIES):
            current = await self.get(rt, namespace, name)
            expected = (body.get("metadata") or {}).get("resourceVersion")
            if expected and expected != current["metadata"]["resourceVersion"]:
                raise errors.Conflict.stale(rt.resource, name)
            new = copy.deepcopy(current)
            new["spec"]["replicas"] = replicas
            try:
                stored = await self._replace(rt, current, new, subresource=None, dry_run=dry_run)
            except errors.Conflict:
                if expected:
                    raise
                continue
            return self.scale_of(rt, stored)
        raise errors.Conflict.stale(rt.resource, name)

    @staticmethod
    def scale_of(rt: ResourceType, obj: Obj) -> Obj:
        """The autoscaling/v1 Scale view of a Deployment or ReplicaSet."""
        meta = obj["metadata"]
        selector = selectors.selector_from_spec(obj.get("spec", {}).get("selector"))
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                "name": meta["name"],
                "namespace": meta.get("namespace"),
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
                "creationTimestamp": meta.get("creationTimestamp"),
            },
            "spec": {"replicas": obj.get("spec", {}).get("replicas", 0)},
            "status": {
                "replicas": obj.get("status", {}).get("replicas", 0),
                "selector": str(selector),
            },
        }

    # -- patch -------------------------------------------------------------------------

    async def patch(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        body: Any,
        content_type: str,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> Obj:
        for _ in range(PATCH_RETRIES):
            current = await self.get(rt, namespace, name)
            if subresource == "scale":
                view = self.scale_of(rt, current)
                patched = patches.apply_patch(view, body, content_type, "Scale")
                return await self._update_scale(
                    rt, namespace, name, {"spec": patched.get("spec"),
                                          "metadata": {}}, dry_run=dry_run,
                )
            # Patch a copy without resourceVersion: one in the result came from the patch
            # itself and is a precondition; otherwise a lost race is retried on fresh state.
            base = copy.deepcopy(current)
            base["metadata"].pop("resourceVersion", None)
            patched = patches.apply_patch(base, body, content_type, rt.kind)
            if not isinstance(patched, dict):
                raise errors.BadRequest("the patch must produce an object")
            patched_meta = patched.get("metadata") or {}
            if patched_meta.get("name", name) != name:
                raise errors.BadRequest("metadata.name: the name of an object cannot be changed")
            expected = patched_meta.get("resourceVersion")
            if expected and expected != current["metadata"]["resourceVersion"]:
                raise errors.Conflict.stale(rt.resource, name)
            patched.setdefault("apiVersion", rt.api_version)
            patched.setdefault("kind", rt.kind)
            obj = self._check_body(rt, patched, namespace)
            try:
                return await self._replace(
                    rt, current, obj, subresource=subresource, dry_run=dry_run
                )
            except errors.Conflict:
                if expected:
                    raise
        raise errors.Conflict.stale(rt.resource, name)

    # -- delete ------------------------------------------------------------------------

    async def delete(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        *,
        propagation_policy: str | None = None,
        grace_period_seconds: int | None = None,
        preconditions: dict[str, Any] | None = None,
        dry_run: bool = False,
    ) -> Obj:
        for _ in range(PATCH_RETRIES):
            current = await self.get(rt, namespace, name)
            meta = current["metadata"]
            pre = preconditions or {}
            if pre.get("uid") and pre["uid"] != meta.get("uid"):
                raise errors.Conflict(
                    f"Precondition failed: UID in precondition: {pre['uid']}, "
                    f"UID in object meta: {meta.get('uid')}"
                )
            if pre.get("resourceVersion") and pre["resourceVersion"] != meta["resourceVersion"]:
                raise errors.Conflict.stale(rt.resource, name)
            strategy = kinds.strategy_of(rt)
            graceful = _graceful_delete(strategy, current, propagation_policy,
                                        grace_period_seconds)
            if dry_run:
                return graceful or current
            rev = int(meta["resourceVersion"])
            if graceful is not None:
                if _without_volatile(graceful) == _without_volatile(current):
                    return current
                ok, stored = await self.store.update(
                    rt.resource, _ns_key(rt, namespace), name, graceful, rev
                )
            else:
                ok, stored = await self.store.delete(rt.resource, _ns_key(rt, namespace), name, rev)
                if ok:
                    strategy.release(current, None, self)
            if ok:
                assert stored is not None
                return stored
            if stored is None:
                raise errors.NotFound.of(rt.resource, name)
        raise errors.Conflict.stale(rt.resource, name)

    async def delete_collection(
        self,
        rt: ResourceType,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        propagation_policy: str | None = None,
        grace_period_seconds: int | None = None,
    ) -> list[Obj]:
        items, _ = await self.list(
            rt, namespace, label_selector=label_selector, field_selector=field_selector
        )
        deleted = []
        for obj in items:
            try:
                deleted.append(await self.delete(
                    rt, obj["metadata"].get("namespace"), obj["metadata"]["name"],
                    propagation_policy=propagation_policy,
                    grace_period_seconds=grace_period_seconds,
                ))
            except errors.NotFound:
                continue
        return deleted


def _spec_part(obj: Obj) -> Obj:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


def random_suffix(n: int = 5) -> str:
    """n random characters from Kubernetes' name-suffix alphabet (no vowels, no 0/1/3)."""
    return "".join(secrets.choice(_NAME_SUFFIX_ALPHABET) for _ in range(n))



def _merge_server_fields(
    rt: ResourceType, strategy: strategies.Strategy, current: Obj, obj: Obj,
    subresource: str | None,
) -> Obj:
    """What the client may change: spec+metadata on the main resource, on a subresource
    what the strategy's `merge_subresource` takes (status only on /status). Server-owned
    metadata always comes from the stored object."""
    if subresource is not None:
        merged = strategy.merge_subresource(subresource, current, obj)
        if merged is None:
            raise errors.MethodNotAllowed(
                f'{rt.resource}/{subresource} cannot be written through the registry')
        return merged
    new = obj
    meta, cur_meta = new["metadata"], current["metadata"]
    for key in ("uid", "creationTimestamp", "deletionTimestamp",
                "deletionGracePeriodSeconds", "namespace", "generation"):
        if key in cur_meta:
            meta[key] = cur_meta[key]
        else:
            meta.pop(key, None)
    keeps_status = strategy.keeps_status
    if keeps_status is None:
        keeps_status = "status" in rt.subresources
    if keeps_status:
        if "status" in current:
            new["status"] = copy.deepcopy(current["status"])
        else:
            new.pop("status", None)
    return new


def _finalized(strategy: strategies.Strategy, obj: Obj) -> bool:
    """True when a deleted object has nothing left holding it: no finalizers, and
    nothing the kind's strategy still waits for (a namespace's spec.finalizers, a pod's
    grace period)."""
    meta = obj["metadata"]
    if not meta.get("deletionTimestamp") or meta.get("finalizers"):
        return False
    return strategy.finalized(obj)


def _graceful_delete(
    strategy: strategies.Strategy, current: Obj, policy: str | None, grace: int | None
) -> Obj | None:
    """The object with deletionTimestamp set when deletion must wait (finalizers, or what
    the kind's strategy waits for: a pod on a node, a namespace to empty), or None to
    delete it now."""
    meta = current["metadata"]
    finalizers = list(meta.get("finalizers") or [])
    if policy == "Foreground" and "foregroundDeletion" not in finalizers:
        finalizers.append("foregroundDeletion")
    elif policy == "Orphan" and "orphan" not in finalizers:
        finalizers.append("orphan")
    new = copy.deepcopy(current)
    wait = strategy.prepare_for_delete(current, new, grace) or bool(finalizers)
    if not wait:
        return None
    new_meta = new["metadata"]
    new_meta["finalizers"] = finalizers
    if not finalizers:
        new_meta.pop("finalizers")
    new_meta.setdefault("deletionTimestamp", timestamps.now())
    return new
