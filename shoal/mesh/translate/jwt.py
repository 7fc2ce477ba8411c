"""RequestAuthentication (security.istio.io v1/v1beta1) -> Envoy `jwt_authn`. Pure.

Every RequestAuthentication that applies to a workload (root namespace and its own
namespace, by selector; see `rbac.attaches`) contributes its `jwtRules`; rules are
sorted by issuer and become providers `origins-0..N` (Istio's names), each with the
issuer, audiences, token locations (`fromHeaders` name/prefix, `fromParams`,
`fromCookies`; none given: Envoy's default, `Authorization: Bearer` and
`access_token`), `forwardOriginalToken` (default: the token is removed before the app
sees it), `outputPayloadToHeader`, `outputClaimToHeaders`, and the payload stored in
dynamic metadata under `payload` (what AuthorizationPolicy's request principals,
audiences, presenter and claims match).

Requirement (Istio's): a request without a token passes (an AuthorizationPolicy may
still require `requestPrincipals`, answered 403); a request with a token that no
provider accepts — bad signature, expired, wrong issuer or audience — is answered 401.
With several providers: any one accepting, or every one accepting-or-missing.

Keys: `jwks` inline is used as written. `jwksUri` (or, without it, the issuer's OpenID
discovery document) is fetched by the control plane, never by Envoy (`shoal.mesh.jwks`
does the I/O and hands the results in as a `JwksTable`); until a fetch has succeeded,
or when it fails, the provider gets `FAIL_CLOSED_JWKS` — a public key whose private half
was discarded when it was made — so every token is refused (401) and the reason is a
translation problem for `shoal mesh status`. Key material is never put in a problem or
log line, and tokens never reach the control plane.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

# Imported for its descriptors: the typed config below names this type.
from envoy.extensions.filters.http.jwt_authn.v3 import config_pb2  # noqa: F401

from shoal.mesh.source import REQUEST_AUTHENTICATIONS
from shoal.mesh.translate.protos import typed

Obj = dict[str, Any]

JWT_FILTER = "envoy.filters.http.jwt_authn"
PAYLOAD_KEY = "payload"
SPACE_DELIMITED_CLAIMS = ("permission", "scope")
"""Claims Istio always treats as space-delimited lists (`scope: "a b"` matches `a`)."""
DISCOVERY_SUFFIX = "/.well-known/openid-configuration"

FAIL_CLOSED_JWKS = (
    '{"keys":[{"kty":"RSA","e":"AQAB","kid":"shoal-fail-closed","alg":"RS256","use":"sig",'
    '"n":"rbYVMZ9RATaaAlmjvgza-CBTiOYsElBds3w2q75yufm31dORRiUQ6CXFPgPymq7IIOlXsg0pBWonjSWbeYvQ'
    'OE381vROOjEZykT_H-DzwF_Xk9kf33ltxMXpv3N6Z8Fk0HsSciLN3lEOry-VuXpyfUep6JK42mWjMMrEKRbd7sbXKr'
    'f_J1jGN6AsHhAToOTg81s7LjCbqe4KzJ7DkiShGkWjndJUfZEjj9wPH6RcEgJ3rK9Dpz3KyK3Yky_vCa1w0lxqi9Ig'
    'oHbSq0-7pRREDXagd0r544CbPFIjTwjU_OpzFKB5oYR-zbQELtJlmKUKmYzj6NrkxmJC4N7wh6hvJQ"}]}')
"""A JWKS nobody can sign for (the private key was generated and thrown away): what a
provider gets while its remote keys are unknown, so tokens fail closed."""

__all__ = ["REQUEST_AUTHENTICATIONS", "JwksEntry", "JwksTable", "jwks_source", "jwt_filter",
           "remote_sources"]


@dataclasses.dataclass(frozen=True)
class JwksEntry:
    """What the control plane knows of one remote JWKS source."""

    jwks: str | None = None
    """The last good JWKS document (JSON text), or None if never fetched."""
    error: str = ""
    """Why the last fetch failed ('' after a success); never contains key material."""


JwksTable = Mapping[str, JwksEntry]
"""Source (a jwksUri, or an issuer's discovery URL) -> what was fetched from it."""


def jwks_source(rule: Obj) -> str | None:
    """Where a rule's keys come from when they are not inline: its jwksUri, else the
    issuer's OpenID discovery document; None for inline `jwks`."""
    if rule.get("jwks"):
        return None
    if rule.get("jwksUri"):
        return str(rule["jwksUri"])
    issuer = str(rule.get("issuer") or "")
    return issuer.rstrip("/") + DISCOVERY_SUFFIX if issuer.startswith(("http://", "https://")) else None


def remote_sources(policies: list[Obj]) -> set[str]:
    """Every remote JWKS source the RequestAuthentications name (what to fetch)."""
    return {src for p in policies for r in (p.get("spec") or {}).get("jwtRules") or []
            if isinstance(r, dict) and (src := jwks_source(r))}


def _provider(rule: Obj, jwks: str) -> Obj:
    provider: Obj = {
        "payload_in_metadata": PAYLOAD_KEY,
        "normalize_payload_in_metadata": {"space_delimited_claims": sorted(
            set(rule.get("spaceDelimitedClaims") or ()) | set(SPACE_DELIMITED_CLAIMS))},
        "local_jwks": {"inline_string": jwks},
    }
    if rule.get("issuer"):
        provider["issuer"] = rule["issuer"]
    if rule.get("audiences"):
        provider["audiences"] = list(rule["audiences"])
    if rule.get("forwardOriginalToken"):
        provider["forward"] = True
    if rule.get("outputPayloadToHeader"):
        provider["forward_payload_header"] = rule["outputPayloadToHeader"]
    claims = [{"header_name": c["header"], "claim_name": c["claim"]}
              for c in rule.get("outputClaimToHeaders") or []]
    if claims:
        provider["claim_to_headers"] = claims
    headers = [{"name": h["name"], **({"value_prefix": h["prefix"]} if h.get("prefix") else {})}
               for h in rule.get("fromHeaders") or []]
    if headers:
        provider["from_headers"] = headers
    for field, key in (("fromParams", "from_params"), ("fromCookies", "from_cookies")):
        if rule.get(field):
            provider[key] = list(rule[field])
    return provider


def jwt_filter(policies: list[Obj], jwks: JwksTable) -> tuple[Obj | None, list[str]]:
    """The jwt_authn HTTP filter for a workload's RequestAuthentications (None without
    rules) and the problems to report (remote keys not available)."""
    rules: list[tuple[Obj, str]] = []  # (rule, where it is written)
    for p in policies:
        meta = p["metadata"]
        for i, rule in enumerate((p.get("spec") or {}).get("jwtRules") or []):
            if isinstance(rule, dict):
                rules.append((rule, f"RequestAuthentication {meta.get('namespace')}/"
                                    f"{meta['name']}: spec.jwtRules[{i}]"))
    if not rules:
        return None, []
    rules.sort(key=lambda r: str(r[0].get("issuer") or ""))
    providers: Obj = {}
    problems: list[str] = []
    for i, (rule, where) in enumerate(rules):
        source = jwks_source(rule)
        keys = rule.get("jwks")
        if not keys:
            entry = jwks.get(source) if source else None
            keys = entry.jwks if entry is not None else None
            if source is None:
                problems.append(f"{where}: no jwks, jwksUri or discoverable issuer: "
                                "tokens are refused")
            elif keys is None or (entry is not None and entry.error):
                reason = (entry.error if entry is not None and entry.error
                          else "not fetched yet")
                problems.append(f"{where}: keys from {source} unavailable ({reason})"
                                + ("; tokens are refused (401)" if keys is None
                                   else "; serving the last keys fetched"))
            keys = keys or FAIL_CLOSED_JWKS
        providers[f"origins-{i}"] = _provider(rule, str(keys))
    names = list(providers)
    optional = [{"requires_any": {"requirements": [{"provider_name": n}, {"allow_missing": {}}]}}
                for n in names]
    if len(names) == 1:
        requires = optional[0]
    else:
        requires = {"requires_any": {"requirements": [{"provider_name": n} for n in names]
                                     + [{"requires_all": {"requirements": optional}}]}}
    config = {"providers": providers, "bypass_cors_preflight": True,
              "rules": [{"match": {"prefix": "/"}, "requires": requires}]}
    return ({"name": JWT_FILTER,
             "typed_config": typed("envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
                                   config)}, problems)
