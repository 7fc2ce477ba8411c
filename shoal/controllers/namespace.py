"""Namespace lifecycle and per-namespace defaults.

- Every active namespace gets a `default` ServiceAccount (re-created if deleted) and,
  when the API CA certificate exists, the `kube-root-ca.crt` ConfigMap holding it
  (`ca.crt`), as Kubernetes' root-ca-cert-publisher does; a changed CA is re-published.
- A namespace being deleted (the API server sets deletionTimestamp, phase Terminating,
  and keeps spec.finalizers = ["kubernetes"]) is emptied: every object of every
  namespaced resource in it is deleted (Background propagation; pods on the node wait
  for the node agent). The contents are listed live from the API, not from caches,
  because resources registered later (Istio kinds) have no informer here. While
  anything is left the reconcile polls again after `poll` seconds; once nothing is
  left, the `kubernetes` finalizer is removed from spec.finalizers and the server
  removes the namespace.
- `ensure_namespaces` (from `shoal.api.builtin.namespaces`, the one home of the list)
  creates the namespaces every cluster has (default, kube-system, kube-public,
  kube-node-lease) at start if missing.

Nothing is written to a terminating namespace object until it is empty: with no
metadata.finalizers, any write to it completes its deletion on this API server.

Concurrency: reconciles are serialised per namespace by the engine.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Iterable

from shoal.api import errors as api_errors
from shoal.api import kinds
from shoal.api.builtin.namespaces import FINALIZER, SYSTEM_NAMESPACES, ensure_namespaces
from shoal.api.client import Obj
from shoal.controllers import engine, pods as podutil
from shoal.controllers.engine import Change, Controller, Manager, Request, Result
from shoal.controllers.events import EventRecorder

log = logging.getLogger(__name__)

NAMESPACES = "namespaces"
SERVICEACCOUNTS = "serviceaccounts"
CONFIGMAPS = "configmaps"
ROOT_CA = "kube-root-ca.crt"

__all__ = ["NamespaceController", "FINALIZER", "SYSTEM_NAMESPACES", "ensure_namespaces",
           "default_service_account", "namespaced_resources"]


def default_service_account(namespace: str) -> Obj:
    return {"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "default", "namespace": namespace}}


def namespaced_resources() -> list[str]:
    """Every namespaced resource that can be listed and deleted, known at call time."""
    return [rt.resource for rt in kinds.all_types()
            if rt.namespaced and "list" in rt.verbs and "delete" in rt.verbs]


class NamespaceController:
    """Reconciles Namespaces; build its engine `Controller` with `controller()`."""

    def __init__(self, manager: Manager, recorder: EventRecorder, *, poll: float = 1.0,
                 ca_cert: Path | None = None) -> None:
        self.manager = manager
        self.client = manager.client
        self.writer = manager.writer
        self.recorder = recorder
        self.poll = poll
        self.namespaces = manager.lister(NAMESPACES)
        self.service_accounts = manager.lister(SERVICEACCOUNTS)
        self.config_maps = manager.lister(CONFIGMAPS)
        self.ca_cert = ca_cert

    def controller(self) -> Controller:
        return Controller("namespace", self.reconcile, [
            (NAMESPACES, engine.map_own),
            (SERVICEACCOUNTS, self._map_defaults),
            (CONFIGMAPS, self._map_defaults),
        ])

    @staticmethod
    def _map_defaults(change: Change) -> Iterable[Request]:
        """A default object changed or went away: its namespace re-checks it."""
        meta = podutil.meta(change.object)
        if change.type != "ADDED" and meta.get("name") in ("default", ROOT_CA):
            return [Request(None, meta.get("namespace") or "")]
        return ()

    async def reconcile(self, request: Request) -> Result | None:
        ns = self.namespaces.get(None, request.name)
        if ns is None:
            return None
        if not podutil.is_deleting(ns):
            await self._ensure_service_account(request.name)
            await self._ensure_root_ca(request.name)
            return None
        remaining = await self._delete_content(request.name)
        if remaining:
            log.debug("namespace %s: %d objects left", request.name, remaining)
            return Result(requeue_after=self.poll)
        await self._finalize(request.name)
        return None

    async def _ensure_service_account(self, namespace: str) -> None:
        if self.service_accounts.get(namespace, "default") is not None:
            return
        try:
            await self.writer.create(SERVICEACCOUNTS, default_service_account(namespace))
        except (api_errors.AlreadyExists, api_errors.Forbidden):
            pass

    async def _ensure_root_ca(self, namespace: str) -> None:
        if self.ca_cert is None:
            return
        try:
            pem = await asyncio.to_thread(self.ca_cert.read_text)
        except FileNotFoundError:
            return
        current = self.config_maps.get(namespace, ROOT_CA)
        if current is not None and (current.get("data") or {}).get("ca.crt") == pem:
            return
        try:
            if current is None:
                await self.writer.create(CONFIGMAPS, {
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": ROOT_CA, "namespace": namespace},
                    "data": {"ca.crt": pem}})
            elif not podutil.is_deleting(current):
                body = engine.clone(current)
                body["data"] = {"ca.crt": pem}
                await self.writer.update(CONFIGMAPS, body)
        except (api_errors.AlreadyExists, api_errors.Forbidden):
            pass

    async def _delete_content(self, namespace: str) -> int:
        remaining = 0
        for resource in namespaced_resources():
            try:
                items, _ = await self.client.list(resource, namespace)
            except api_errors.NotFound:
                continue
            for item in items:
                remaining += 1
                if podutil.is_deleting(item):
                    continue
                try:
                    await self.writer.delete(resource, namespace, podutil.meta(item)["name"])
                except api_errors.NotFound:
                    remaining -= 1
        return remaining

    async def _finalize(self, name: str) -> None:
        try:
            current = await self.client.get(NAMESPACES, None, name)
        except api_errors.NotFound:
            return
        spec = current.setdefault("spec", {})
        if FINALIZER not in (spec.get("finalizers") or []):
            return
        spec["finalizers"] = [f for f in spec.get("finalizers") or [] if f != FINALIZER]
        try:
            await self.writer.update(NAMESPACES, current)
        except api_errors.NotFound:
            pass
