"""`JwksResolver`: the control plane fetches the keys RequestAuthentications point at.

Istio's istiod does the same (`PILOT_JWT_ENABLE_REMOTE_JWKS=false`, its default): the
sidecars never reach out for keys, the control plane fetches each `jwksUri` (or the
issuer's OpenID discovery document, then its `jwks_uri`) and inlines the keys into the
proxies' jwt_authn config (see `translate.jwt`).

Contract:
- `want(sources)` names every source the current state needs; new ones are fetched at
  once (in the background), unneeded ones are dropped with their keys.
- Each source is re-fetched every `refresh_seconds` (20 min, Istio's default) after a
  success and every `retry_seconds` (60 s, Istio's) after a failure. A failed refresh
  keeps the last good keys (so a flapping key server does not lock users out) and
  records the error; a source never fetched has no keys, so translation gives it the
  fail-closed JWKS (every token 401).
- `table()` is the current value handed to translation; `on_change()` is called when
  it changes (new keys, or a new error), so the control loop recomputes.
- A fetched document must be a JSON object with a `keys` array, each key parsing as a
  JWK (PyJWT) with no private material (Istio rejects non-JWKS bodies too, so an
  arbitrary response is never copied into proxy config). Errors name the source and
  the HTTP status or exception class, never the body.

Concurrency: one asyncio task per source; `stop()` cancels them.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable, Iterable

import httpx

from shoal.mesh.translate.jwt import DISCOVERY_SUFFIX, JwksEntry
from shoal.mesh.validation.requestauthentication import JwksError, check_jwks
from shoal.tasks import cancel_and_wait

log = logging.getLogger(__name__)

class JwksResolver:
    def __init__(self, on_change: Callable[[], None] = lambda: None, *,
                 refresh_seconds: float = 20 * 60, retry_seconds: float = 60,
                 timeout_seconds: float = 5) -> None:
        self.on_change = on_change
        self.refresh_seconds = refresh_seconds
        self.retry_seconds = retry_seconds
        self.timeout_seconds = timeout_seconds
        self._entries: dict[str, JwksEntry] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def table(self) -> dict[str, JwksEntry]:
        return dict(self._entries)

    def want(self, sources: Iterable[str]) -> None:
        wanted = set(sources)
        for source in list(self._tasks):
            if source not in wanted:
                self._tasks.pop(source).cancel()
                self._entries.pop(source, None)
        for source in wanted - set(self._tasks):
            self._tasks[source] = asyncio.create_task(self._keep(source), name=f"jwks {source}")

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        await cancel_and_wait(tasks)

    async def _keep(self, source: str) -> None:
        async with httpx.AsyncClient(timeout=self.timeout_seconds, follow_redirects=True,
                                     trust_env=False) as client:
            while True:
                old = self._entries.get(source)
                try:
                    keys = await self.fetch(client, source)
                    entry = JwksEntry(keys, "")
                except (JwksError, httpx.HTTPError, OSError) as exc:
                    reason = str(exc) if isinstance(exc, JwksError) else type(exc).__name__
                    entry = JwksEntry(old.jwks if old else None, reason)
                    log.warning("mesh: JWKS from %s unavailable: %s", source, reason)
                if entry != old:
                    self._entries[source] = entry
                    self.on_change()
                await asyncio.sleep(self.retry_seconds if entry.error else self.refresh_seconds)

    async def fetch(self, client: httpx.AsyncClient, source: str) -> str:
        """The JWKS text at `source` (an OpenID discovery URL is followed to its jwks_uri)."""
        uri = source
        if source.endswith(DISCOVERY_SUFFIX):
            response = await client.get(source)
            if response.status_code != 200:
                raise JwksError(f"{source}: HTTP {response.status_code}")
            try:
                uri = response.json()["jwks_uri"]
            except (ValueError, KeyError, TypeError):
                raise JwksError(f"{source}: no jwks_uri in the discovery document") from None
            if not isinstance(uri, str) or not uri.startswith(("http://", "https://")):
                raise JwksError(f"{source}: jwks_uri is not an http(s) URL")
        response = await client.get(uri)
        if response.status_code != 200:
            raise JwksError(f"HTTP {response.status_code}")
        return check_jwks(response.text)
