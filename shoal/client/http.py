"""HttpClient: the `ApiClient` over HTTPS, configured from a kubeconfig.

Used by the CLI and by any component run as its own process. Kubernetes `Status`
responses become the same `StatusError` types the in-process client raises; transport
failures become `ServiceUnavailable` naming the server address.
"""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Any, AsyncIterator
from urllib.parse import quote

import httpx
import yaml

from shoal.api import client as api_client, errors, kinds
from shoal.api.client import PATCH_CONTENT_TYPES, Obj, WatchEvent
from shoal.api.kinds import ResourceType

__all__ = ["HttpClient", "KubeconfigError", "load_kubeconfig", "PATCH_CONTENT_TYPES", "TABLE_ACCEPT"]

TABLE_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


class KubeconfigError(errors.StatusError):
    code, reason = 500, "InternalError"


def load_kubeconfig(path: Path) -> tuple[str, Path | None, str]:
    """(server URL, CA file, token) of the current context of a kubeconfig."""
    try:
        config = yaml.safe_load(Path(path).read_text())
        contexts = {c["name"]: c["context"] for c in config["contexts"]}
        context = contexts[config["current-context"]]
        cluster = {c["name"]: c["cluster"] for c in config["clusters"]}[context["cluster"]]
        user = {u["name"]: u["user"] for u in config["users"]}[context["user"]]
    except FileNotFoundError:
        raise KubeconfigError(
            f"no kubeconfig at {path}: is shoal running with this state dir? (shoal up)"
        ) from None
    except (KeyError, TypeError, yaml.YAMLError) as exc:
        raise KubeconfigError(f"kubeconfig {path} is malformed: {exc}") from None
    ca = cluster.get("certificate-authority")
    return cluster["server"], Path(ca) if ca else None, user.get("token", "")


def _path(rt: ResourceType, namespace: str | None, name: str | None = None,
          sub: str | None = None) -> str:
    base = f"/api/{rt.version}" if not rt.group else f"/apis/{rt.group}/{rt.version}"
    if rt.namespaced and namespace:
        base += f"/namespaces/{quote(namespace)}"
    base += f"/{rt.plural}"
    if name:
        base += f"/{quote(name)}"
    if sub:
        base += f"/{sub}"
    return base


class HttpClient:
    """ApiClient over HTTPS. Use as `async with HttpClient.from_kubeconfig(path) as c:`."""

    def __init__(self, server: str, token: str, ca_file: Path | None, *, timeout: float = 30) -> None:
        self.server = server
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        self._http = httpx.AsyncClient(
            base_url=server,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            verify=context,
            timeout=httpx.Timeout(timeout, read=None),
        )

    @classmethod
    def from_kubeconfig(cls, path: Path, **kwargs: Any) -> "HttpClient":
        server, ca, token = load_kubeconfig(path)
        return cls(server, token, ca, **kwargs)

    async def __aenter__(self) -> "HttpClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                      body: Any = None, content_type: str = "application/json",
                      accept: str | None = None) -> Any:
        headers = {}
        content = None
        if body is not None:
            content = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        if accept:
            headers["Accept"] = accept
        params = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = await self._http.request(method, path, params=params, content=content,
                                                headers=headers)
        except httpx.HTTPError as exc:
            raise errors.ServiceUnavailable(
                f"cannot reach the shoal API at {self.server}: {exc.__class__.__name__}: {exc}"
            ) from None
        return self._decode(response)

    async def get_raw(self, path: str, *, params: dict[str, Any] | None = None) -> str:
        """GET a path whose answer is not a JSON object (`pods/NAME:PORT/proxy/...`, as
        `kubectl get --raw`): the body as text. Errors raise as for `request`."""
        try:
            response = await self._http.get(path, params={k: v for k, v in (params or {}).items()
                                                          if v is not None})
        except httpx.HTTPError as exc:
            raise errors.ServiceUnavailable(
                f"cannot reach the shoal API at {self.server}: {exc.__class__.__name__}: {exc}"
            ) from None
        if response.status_code >= 400:
            self._decode(response)
        return response.text

    @staticmethod
    def _decode(response: httpx.Response) -> Any:
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.status_code >= 400:
            if isinstance(data, dict) and data.get("kind") == "Status":
                raise errors.from_status(data)
            raise errors.from_status({"code": response.status_code,
                                      "message": response.text[:500]})
        return data

    # -- ApiClient -----------------------------------------------------------------------

    async def get(self, resource: str, namespace: str | None, name: str) -> Obj:
        return await self.request("GET", _path(kinds.by_resource(resource), namespace, name))

    async def list(self, resource: str, namespace: str | None = None, *,
                   label_selector: str | None = None,
                   field_selector: str | None = None) -> tuple[list[Obj], int]:
        data = await self.request(
            "GET", _path(kinds.by_resource(resource), namespace),
            params={"labelSelector": label_selector, "fieldSelector": field_selector},
        )
        return data.get("items") or [], int(data["metadata"].get("resourceVersion") or 0)

    async def table(self, resource: str, namespace: str | None = None, name: str | None = None,
                    *, label_selector: str | None = None) -> dict[str, Any]:
        """The server-side Table (what `kubectl get` prints) for a list or one object."""
        return await self.request(
            "GET", _path(kinds.by_resource(resource), namespace, name),
            params={"labelSelector": label_selector}, accept=TABLE_ACCEPT,
        )

    async def create(self, resource: str, obj: Obj) -> Obj:
        rt = kinds.by_resource(resource)
        namespace = (obj.get("metadata") or {}).get("namespace") or (
            "default" if rt.namespaced else None)
        return await self.request("POST", _path(rt, namespace), body=obj)

    async def update(self, resource: str, obj: Obj) -> Obj:
        rt = kinds.by_resource(resource)
        namespace, name = api_client.name_of(obj)
        return await self.request("PUT", _path(rt, namespace, name), body=obj)

    async def update_status(self, resource: str, obj: Obj) -> Obj:
        rt = kinds.by_resource(resource)
        namespace, name = api_client.name_of(obj)
        return await self.request("PUT", _path(rt, namespace, name, "status"), body=obj)

    async def patch(self, resource: str, namespace: str | None, name: str, patch: Any,
                    patch_type: str = "merge", *, subresource: str | None = None) -> Obj:
        rt = kinds.by_resource(resource)
        return await self.request(
            "PATCH", _path(rt, namespace, name, subresource), body=patch,
            content_type=api_client.patch_content_type(patch_type),
        )

    async def delete(self, resource: str, namespace: str | None, name: str, *,
                     propagation_policy: str = "Background",
                     grace_period_seconds: int | None = None) -> Obj:
        rt = kinds.by_resource(resource)
        return await self.request(
            "DELETE", _path(rt, namespace, name),
            params={"propagationPolicy": propagation_policy,
                    "gracePeriodSeconds": grace_period_seconds},
        )

    async def watch(self, resource: str, namespace: str | None = None, *,
                    resource_version: int | None = None, label_selector: str | None = None,
                    field_selector: str | None = None) -> AsyncIterator[WatchEvent]:
        rt = kinds.by_resource(resource)
        params = {"watch": "true", "resourceVersion": resource_version,
                  "labelSelector": label_selector, "fieldSelector": field_selector}
        params = {k: v for k, v in params.items() if v is not None}
        try:
            async with self._http.stream("GET", _path(rt, namespace), params=params) as response:
                if response.status_code >= 400:
                    await response.aread()
                    self._decode(response)
                async for line in response.aiter_lines():
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    if event.get("type") == "ERROR":
                        raise errors.from_status(event.get("object") or {})
                    yield WatchEvent(event["type"], event["object"])
        except httpx.HTTPError as exc:
            raise errors.ServiceUnavailable(
                f"watch of {resource} on {self.server} ended: {exc.__class__.__name__}: {exc}"
            ) from None
