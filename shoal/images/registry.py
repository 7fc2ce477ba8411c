"""Pulling and pushing images with the OCI distribution-spec API (Docker Registry v2).

    image = await pull(store, "127.0.0.1:5000/app:v1", insecure=True)
    digest = await push(store, "localhost/app:v1", "127.0.0.1:5000/app:v1", insecure=True)

Flow: GET /v2/ (ping, learns the auth challenge) -> GET manifests/<tag|digest> with
every OCI and Docker v2 media type accepted -> an index picks the host platform ->
config and layer blobs streamed (3 at a time) into the content store -> the manifest
is stored and tagged last, so a failed pull leaves no image and no half blob.

Auth: on 401 the `WWW-Authenticate` challenge is followed. `Bearer` asks the realm
(token server) for a token for `repository:<name>:pull` (sending Basic credentials if
given) and retries; `Basic` sends the credentials. Tokens are cached per scope for the
client's life. Credentials never appear in errors or logs.

Push: for each blob the registry lacks (HEAD), a monolithic upload (POST, then PUT
with ?digest=, the file streamed from the content store); then PUT of the manifest.

Integrity: manifests are hashed and compared with the digest in the reference or the
`Docker-Content-Digest` header; blobs are written through `ContentStore.writer`, which
checks size and digest before the blob becomes visible. A body cut mid-way is resumed
with a Range request (BLOB_ATTEMPTS in all); if it still cannot be completed the pull
raises `RegistryError` and the partial file is deleted.

Transport: https with verification by default. `insecure=True` (like podman's
--tls-verify=false) skips certificate checks and falls back to plain http when the
registry does not speak TLS (e.g. a local docker-registry on 127.0.0.1).

Concurrency: one `RegistryClient` per pull; disk writes and hashing run in threads so
the event loop is never blocked by I/O on large layers.
"""

from __future__ import annotations

import asyncio
import base64
import json
import urllib.request
from pathlib import Path
from typing import Callable

import httpx

from shoal.images import mediatypes
from shoal.images.digests import sha256_digest, validate_digest
from shoal.images.errors import DigestMismatch, ManifestError, RegistryAuthError, RegistryError
from shoal.images.reference import DEFAULT_REGISTRY, Reference

DOCKER_HUB_API = "registry-1.docker.io"
BLOB_CONCURRENCY = 3
BLOB_ATTEMPTS = 3
FLUSH_BYTES = 1 << 20

Progress = Callable[[str, int, int], None]
"""progress(digest, bytes_done, bytes_total), called as blob bytes arrive."""


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="x",service="y"` -> ("bearer", {"realm": "x", "service": "y"}). Pure."""
    scheme, _, rest = header.strip().partition(" ")
    params = urllib.request.parse_keqv_list(urllib.request.parse_http_list(rest)) if rest else {}
    return scheme.lower(), {k.lower(): v for k, v in params.items()}


def basic_auth_header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def api_host(registry: str) -> str:
    return DOCKER_HUB_API if registry == DEFAULT_REGISTRY else registry


def _registry_error(resp: httpx.Response, what: str) -> RegistryError:
    code = message = None
    try:
        errors = resp.json().get("errors") or []
        if errors:
            code, message = errors[0].get("code"), errors[0].get("message")
    except (ValueError, AttributeError):
        pass
    detail = f"{message} ({code})" if code else f"HTTP {resp.status_code}"
    cls = RegistryAuthError if resp.status_code in (401, 403) else RegistryError
    return cls(f"{what}: {detail}", status=resp.status_code, code=code)


class RegistryClient:
    """One registry, one repository scope at a time; use as an async context manager."""

    def __init__(self, registry: str, *, insecure: bool = False,
                 credentials: tuple[str, str] | None = None, timeout: float = 60.0,
                 transport: httpx.AsyncBaseTransport | None = None):
        self.registry = registry
        self.insecure = insecure
        self._credentials = credentials
        self._client = httpx.AsyncClient(
            verify=not insecure, follow_redirects=True, transport=transport,
            timeout=httpx.Timeout(timeout, connect=10.0),
            headers={"User-Agent": "shoal/0.1"},
        )
        self._base: str | None = None
        self._challenge: tuple[str, dict[str, str]] | None = None
        self._tokens: dict[str, str] = {}

    async def __aenter__(self) -> "RegistryClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self._client.aclose()

    # -- connection and auth -----------------------------------------------------------

    async def _ping(self) -> None:
        host = api_host(self.registry)
        schemes = ["https", "http"] if self.insecure else ["https"]
        last: Exception | None = None
        for scheme in schemes:
            try:
                resp = await self._client.get(f"{scheme}://{host}/v2/")
            except httpx.TransportError as exc:
                last = exc
                continue
            if resp.status_code == 401 and "www-authenticate" in resp.headers:
                self._challenge = parse_challenge(resp.headers["www-authenticate"])
            elif resp.status_code not in (200, 401):
                raise _registry_error(resp, f"registry {self.registry}: GET /v2/")
            self._base = f"{scheme}://{host}"
            return
        raise RegistryError(f"registry {self.registry}: unreachable ({type(last).__name__}: {last})")

    async def _authorize(self, scope: str) -> dict[str, str]:
        if self._challenge is None:
            return {}
        scheme, params = self._challenge
        if scheme == "basic":
            if not self._credentials:
                raise RegistryAuthError(f"registry {self.registry}: requires credentials (Basic auth)", status=401)
            return {"Authorization": basic_auth_header(*self._credentials)}
        if scheme != "bearer":
            raise RegistryAuthError(f"registry {self.registry}: unsupported auth scheme {scheme!r}", status=401)
        if scope not in self._tokens:
            self._tokens[scope] = await self._fetch_token(params, scope)
        return {"Authorization": f"Bearer {self._tokens[scope]}"}

    async def _fetch_token(self, params: dict[str, str], scope: str) -> str:
        realm = params.get("realm")
        if not realm:
            raise RegistryAuthError(f"registry {self.registry}: Bearer challenge without a realm", status=401)
        query = {"scope": scope}
        if "service" in params:
            query["service"] = params["service"]
        auth = httpx.BasicAuth(*self._credentials) if self._credentials else None
        try:
            resp = await self._client.get(realm, params=query, auth=auth)
        except httpx.TransportError as exc:
            raise RegistryAuthError(f"token server {realm}: unreachable ({exc})") from None
        if resp.status_code != 200:
            raise RegistryAuthError(
                f"token server {realm}: refused a token for {scope!r} (HTTP {resp.status_code})",
                status=resp.status_code)
        try:
            body = resp.json()
            return body.get("token") or body["access_token"]
        except (ValueError, KeyError):
            raise RegistryAuthError(f"token server {realm}: response has no token") from None

    async def _send(self, method: str, path: str, scope: str, headers: dict | None = None,
                    stream: bool = False, body: bytes | Path | None = None) -> httpx.Response:
        """One request, re-authenticated once on 401. `path` may be an absolute URL (an
        upload Location); a Path body is streamed from disk and re-read on a retry."""
        if self._base is None:
            await self._ping()
        url = path if path.startswith(("http://", "https://")) else f"{self._base}{path}"
        for attempt in range(2):
            extra = {**(headers or {}), **await self._authorize(scope)}
            content = _file_chunks(body) if isinstance(body, Path) else body
            if isinstance(body, Path):
                extra["Content-Length"] = str(body.stat().st_size)
            req = self._client.build_request(method, url, headers=extra, content=content)
            try:
                resp = await self._client.send(req, stream=stream)
            except httpx.TransportError as exc:
                raise RegistryError(f"registry {self.registry}: {method} {path}: {type(exc).__name__}: {exc}") from None
            if resp.status_code == 401 and attempt == 0 and "www-authenticate" in resp.headers:
                challenge = parse_challenge(resp.headers["www-authenticate"])
                await resp.aclose()
                self._challenge = challenge
                scope = challenge[1].get("scope", scope)
                self._tokens.pop(scope, None)
                continue
            return resp
        return resp

    # -- API ---------------------------------------------------------------------------

    async def get_manifest(self, repository: str, reference: str) -> tuple[bytes, str, str]:
        """(body, media type, digest) of a manifest or index, digest verified."""
        scope = f"repository:{repository}:pull"
        resp = await self._send("GET", f"/v2/{repository}/manifests/{reference}", scope,
                                headers={"Accept": mediatypes.MANIFEST_ACCEPT})
        if resp.status_code != 200:
            raise _registry_error(resp, f"manifest {self.registry}/{repository}:{reference}")
        body = resp.content
        digest = sha256_digest(body)
        expected = reference if reference.startswith("sha256:") else resp.headers.get("docker-content-digest")
        if expected and expected.startswith("sha256:") and expected != digest:
            raise DigestMismatch(f"manifest {self.registry}/{repository}:{reference}: hashes to {digest}, expected {expected}")
        media_type = resp.headers.get("content-type", "").split(";")[0].strip()
        return body, media_type, digest

    async def upload_blob(self, repository: str, digest: str, path: Path) -> bool:
        """Monolithic upload of the file `path` as `digest`; False if already there."""
        scope = f"repository:{repository}:pull,push"
        head = await self._send("HEAD", f"/v2/{repository}/blobs/{digest}", scope)
        if head.status_code == 200:
            return False
        start = await self._send("POST", f"/v2/{repository}/blobs/uploads/", scope)
        if start.status_code != 202 or "location" not in start.headers:
            raise _registry_error(start, f"push {self.registry}/{repository}: starting the upload of {digest}")
        location = httpx.URL(self._base or "").join(start.headers["location"])
        location = location.copy_merge_params({"digest": digest})  # keeps the upload _state
        done = await self._send("PUT", str(location), scope, body=path,
                                headers={"Content-Type": "application/octet-stream"})
        if done.status_code != 201:
            raise _registry_error(done, f"push {self.registry}/{repository}: uploading {digest}")
        return True

    async def put_manifest(self, repository: str, tag: str, body: bytes, media_type: str) -> str:
        """PUT a manifest by tag; returns the digest the registry reports."""
        scope = f"repository:{repository}:pull,push"
        resp = await self._send("PUT", f"/v2/{repository}/manifests/{tag}", scope, body=body,
                                headers={"Content-Type": media_type})
        if resp.status_code != 201:
            raise _registry_error(resp, f"push {self.registry}/{repository}:{tag}: manifest")
        return resp.headers.get("docker-content-digest") or sha256_digest(body)

    async def fetch_blob(self, store, repository: str, desc: dict, progress: Progress | None = None) -> str:
        """Stream one blob into the content store (verified); no-op if already stored.

        A connection lost mid-body is resumed with `Range: bytes=<received>-` (up to
        BLOB_ATTEMPTS requests); a server that answers 200 instead of 206 is read again
        from the start. Whatever happens, only a complete blob with the right digest
        becomes visible."""
        digest = validate_digest(desc["digest"])
        size = desc.get("size")
        if store.content.has(digest):
            return digest
        scope = f"repository:{repository}:pull"
        what = f"blob {digest} of {self.registry}/{repository}"
        writer = await asyncio.to_thread(store.content.writer, digest, size)
        with writer:
            done, failure = 0, ""
            for attempt in range(BLOB_ATTEMPTS):
                headers = {"Range": f"bytes={done}-"} if done else None
                try:
                    resp = await self._send("GET", f"/v2/{repository}/blobs/{digest}", scope,
                                            headers=headers, stream=True)
                except RegistryError as exc:
                    if attempt == 0:
                        raise
                    failure = str(exc)
                    break
                try:
                    if resp.status_code == 200 and done:
                        await asyncio.to_thread(writer.reset)
                        done = 0
                    elif resp.status_code not in (200, 206) or (resp.status_code == 206 and not done):
                        await resp.aread()
                        raise _registry_error(resp, what)
                    buf = bytearray()
                    try:
                        async for chunk in resp.aiter_bytes():
                            buf += chunk
                            done += len(chunk)
                            if len(buf) >= FLUSH_BYTES:
                                await asyncio.to_thread(writer.write, bytes(buf))
                                buf.clear()
                            if progress:
                                progress(digest, done, size or 0)
                    except httpx.HTTPError as exc:
                        failure = type(exc).__name__
                        continue
                    finally:
                        await asyncio.to_thread(writer.write, bytes(buf))
                    failure = ""
                    break
                finally:
                    await resp.aclose()
            else:
                failure = failure or "no complete response"
            if failure and (size is None or done < size):
                raise RegistryError(
                    f"{what}: download interrupted after {done} of {size} bytes "
                    f"({failure}, {BLOB_ATTEMPTS} attempts); nothing was stored")
            await asyncio.to_thread(writer.commit)
        return digest


async def pull(store, ref: Reference | str, *, insecure: bool = False, progress: Progress | None = None,
               credentials: tuple[str, str] | None = None, platform: dict | None = None,
               transport: httpx.AsyncBaseTransport | None = None):
    """Pull `ref` into `store` and return the stored Image (see module docstring)."""
    ref = ref if isinstance(ref, Reference) else Reference.parse(ref)
    async with RegistryClient(ref.registry, insecure=insecure, credentials=credentials,
                              transport=transport) as client:
        body, media_type, digest = await client.get_manifest(ref.repository, ref.digest or ref.tag or "latest")
        doc = _json(body, f"manifest of {ref}")
        if mediatypes.manifest_kind(doc, media_type) == "index":
            await asyncio.to_thread(store.write_blob, body, digest)
            chosen = mediatypes.select_platform(doc, platform)
            body, media_type, digest = await client.get_manifest(ref.repository, chosen["digest"])
            doc = _json(body, f"manifest {chosen['digest']} of {ref}")
            if mediatypes.manifest_kind(doc, media_type) != "manifest":
                raise ManifestError(f"{ref}: index entry {chosen['digest']} is not an image manifest")
        for desc in doc.get("layers", []):
            if desc.get("mediaType") not in mediatypes.LAYER_TYPES:
                raise ManifestError(f"{ref}: layer {desc.get('digest')} has unsupported mediaType {desc.get('mediaType')!r}")
        sem = asyncio.Semaphore(BLOB_CONCURRENCY)

        async def fetch(desc: dict) -> None:
            async with sem:
                await client.fetch_blob(store, ref.repository, desc, progress)

        try:
            async with asyncio.TaskGroup() as group:  # first failure cancels the other downloads
                for desc in [doc["config"], *doc.get("layers", [])]:
                    group.create_task(fetch(desc))
        except BaseExceptionGroup as eg:
            raise eg.exceptions[0] from None
        return await asyncio.to_thread(store.add_manifest, body, [ref], digest)


async def _file_chunks(path: Path):
    with open(path, "rb") as f:
        while block := await asyncio.to_thread(f.read, FLUSH_BYTES):
            yield block


async def push(store, src: Reference | str, dest: Reference | str, *, insecure: bool = False,
               credentials: tuple[str, str] | None = None, progress: Progress | None = None,
               transport: httpx.AsyncBaseTransport | None = None) -> str:
    """Push the stored image `src` to `dest` (blobs the registry lacks, then the manifest
    by tag); return the manifest digest the registry reports."""
    image = await asyncio.to_thread(store.resolve, src)
    dest = dest if isinstance(dest, Reference) else Reference.parse(dest)
    async with RegistryClient(dest.registry, insecure=insecure, credentials=credentials,
                              transport=transport) as client:
        for desc in [image.manifest["config"], *image.layer_descriptors]:
            await client.upload_blob(dest.repository, desc["digest"], store.blob_path(desc["digest"]))
            if progress:
                progress(desc["digest"], desc.get("size", 0), desc.get("size", 0))
        body = await asyncio.to_thread(store.content.read_bytes, image.digest)
        media_type = image.manifest.get("mediaType") or mediatypes.OCI_MANIFEST
        pushed = await client.put_manifest(dest.repository, dest.tag or "latest", body, media_type)
        if pushed != image.digest:
            raise DigestMismatch(f"push {dest}: registry stored manifest {pushed}, expected {image.digest}")
        return pushed


def _json(body: bytes, what: str) -> dict:
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise ManifestError(f"{what}: not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ManifestError(f"{what}: expected a JSON object")
    return doc
