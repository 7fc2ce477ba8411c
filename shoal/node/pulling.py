"""Image pulls by `imagePullPolicy` (Always / IfNotPresent / Never).

Images come from the local store (`shoal image bootstrap|import|pull`). A reference that
names a registry host explicitly (`127.0.0.1:5000/app:v1`, `registry.example/x`) is pulled
with the distribution client when the policy asks for it; a bare name (`busybox`,
`library/app`) never goes to Docker Hub — it must be in the local store, and when it is
not the error says so. Loopback registries are pulled over plain HTTP.

Private registries: the pod's imagePullSecrets (dockerconfigjson / dockercfg Secrets) give
the credentials for the reference's registry host (`pull_credentials`).

Concurrency: the store's `resolve` is thread-safe and called in a thread; one pull per
reference at a time (a lock per reference), so ten replicas of one image pull once.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any, Awaitable, Callable, Mapping

from shoal.images import ImageError, ImageNotFound, ImageStore, Reference, registry
from shoal.node.errors import ImagePullError


def names_registry(image: str) -> bool:
    """True when the reference's first component is a registry host, as Docker decides."""
    first, sep, _ = image.partition("/")
    return bool(sep) and ("." in first or ":" in first or first == "localhost")


def _insecure(image: str) -> bool:
    host = image.partition("/")[0].rsplit(":", 1)[0]
    return host in ("localhost", "127.0.0.1", "[::1]")


def registry_host(image: str) -> str:
    return image.partition("/")[0]


def pull_credentials(secrets: list[Mapping[str, Any]], host: str) -> tuple[str, str] | None:
    """(user, password) for `host` from the pod's imagePullSecrets (pure): Secrets of type
    kubernetes.io/dockerconfigjson (`.dockerconfigjson`: {"auths": {host: ...}}) or
    kubernetes.io/dockercfg (`.dockercfg`: {host: ...}); an entry has `auth`
    (base64 "user:password") or `username`/`password`. First match wins."""
    for secret in secrets:
        data = secret.get("data") or {}
        try:
            if ".dockerconfigjson" in data:
                auths = json.loads(base64.b64decode(data[".dockerconfigjson"])).get("auths") or {}
            elif ".dockercfg" in data:
                auths = json.loads(base64.b64decode(data[".dockercfg"]))
            else:
                continue
        except ValueError:
            continue
        for key, entry in auths.items():
            name = key.removeprefix("https://").removeprefix("http://").split("/")[0]
            if name != host or not isinstance(entry, dict):
                continue
            if entry.get("auth"):
                user, _, password = base64.b64decode(entry["auth"]).decode(errors="replace").partition(":")
                return user, password
            if entry.get("username") is not None:
                return entry["username"], entry.get("password", "")
    return None


class ImagePuller:
    def __init__(self, store: ImageStore) -> None:
        self.store = store
        self._locks: dict[str, asyncio.Lock] = {}

    async def ensure(self, image: str, policy: str, on_pull: Callable[[], None] | None = None,
                     credentials: tuple[str, str] | None = None) -> tuple[Any, bool]:
        """(Image, pulled now?) or raises ImagePullError with the kubelet's wording.
        `on_pull` is called just before a registry pull starts (the `Pulling` event)."""
        try:
            ref = Reference.parse(image)
        except ImageError as exc:
            raise ImagePullError(f'Failed to apply default image tag "{image}": {exc}') from None
        async with self._locks.setdefault(str(ref), asyncio.Lock()):
            local = await self._resolve(ref)
            remote = names_registry(image)
            if policy == "Never":
                if local is None:
                    raise ImagePullError(
                        f'Container image "{image}" is not present with pull policy of Never')
                return local, False
            if local is not None and (policy == "IfNotPresent" or not remote):
                return local, False
            if not remote:
                raise ImagePullError(
                    f'Failed to pull image "{image}": image {ref} not found in the local store '
                    f"(names without a registry host are never pulled from Docker Hub; "
                    f"use `shoal image import|bootstrap|pull`)")
            if on_pull is not None:
                on_pull()
            try:
                img = await registry.pull(self.store, ref, insecure=_insecure(image), credentials=credentials)
            except ImageError as exc:
                if local is not None:
                    return local, False
                raise ImagePullError(f'Failed to pull image "{image}": {exc}') from None
            except OSError as exc:
                if local is not None:
                    return local, False
                raise ImagePullError(f'Failed to pull image "{image}": {exc}') from None
            return img, True

    async def _resolve(self, ref: Reference) -> Any:
        try:
            return await asyncio.to_thread(self.store.resolve, ref)
        except ImageNotFound:
            return None


Emit = Callable[[str, str, str], None]  # (type, reason, message) of an Event about the container
GetObject = Callable[[str, str, str], Awaitable["Mapping[str, Any] | None"]]


async def ensure_container_image(puller: ImagePuller, pod: Mapping[str, Any], c: Mapping[str, Any], *,
                                 get_object: GetObject, emit: Emit, announce_present: bool) -> tuple[Any, bool]:
    """The image of container `c` by its imagePullPolicy, with the pod's imagePullSecrets
    for a registry reference, emitting the kubelet's Pulling/Pulled events
    (`announce_present`: also say "already present", once per container). (image,
    pulled now?)"""
    image = c.get("image", "")
    started = time.monotonic()
    credentials = None
    pull_secrets = [ref.get("name") for ref in pod["spec"].get("imagePullSecrets") or []]
    if pull_secrets and names_registry(image):
        namespace = pod["metadata"]["namespace"]
        found = [await get_object("secrets", namespace, n) for n in pull_secrets if n]
        credentials = pull_credentials([f for f in found if f], registry_host(image))
    img, pulled = await puller.ensure(image, c.get("imagePullPolicy") or "IfNotPresent",
                                      lambda: emit("Normal", "Pulling", f'Pulling image "{image}"'),
                                      credentials=credentials)
    if pulled:
        emit("Normal", "Pulled", f'Successfully pulled image "{image}" in {time.monotonic() - started:.3f}s')
    elif announce_present:
        emit("Normal", "Pulled", f'Container image "{image}" already present on machine')
    return img, pulled
