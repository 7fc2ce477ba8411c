"""RequestAuthentication (security.istio.io v1/v1beta1): its schema and Istio's rules.

`validate_request_authentication(obj)` adds Istio's `validateJwtRule` checks to the
structural `SCHEMA`, each at its field path under `spec.jwtRules[i]`:

- `issuer` or `jwksUri` set; audiences, fromParams, fromCookies and fromHeaders names
  non-empty; `jwksUri` an http(s) URL with a host;
- `jwks` (inline) a JWKS whose every key parses as a JWK (PyJWT) and carries no private
  key material (Istio only warns; shoal refuses, since the proxies' config can be
  dumped). The error never repeats the document;
- `outputClaimToHeaders` entries have a valid header name and a claim;
  `outputPayloadToHeader` is a valid header name; `timeout` a duration;
- at most one of selector / targetRef / targetRefs (`common.workload_target`).

`check_jwks(text)` is the JWKS check, shared with the control plane's fetcher. Pure.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

import jwt as pyjwt

from shoal.api import errors
from shoal.mesh.validation import common
from shoal.mesh.validation.common import Errs, as_dict, as_list

JWT_RULE = {
    "issuer": "str", "audiences": "List[str]", "jwksUri": "str", "jwks": "str",
    "fromHeaders": [{"name": "str", "prefix": "str"}], "fromParams": "List[str]",
    "fromCookies": "List[str]", "outputPayloadToHeader": "str",
    "forwardOriginalToken": "bool",
    "outputClaimToHeaders": [{"header": "str", "claim": "str"}],
    "timeout": "str", "spaceDelimitedClaims": "List[str]",
}
SPEC = {
    "selector": {"matchLabels": "Dict[str, str]"},
    "targetRef": common.TARGET_REF,
    "targetRefs": [common.TARGET_REF],
    "jwtRules": [JWT_RULE],
}
SCHEMA = {"spec": SPEC, "status": "object"}

PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "k")
"""JWK members that carry private or symmetric key material (RFC 7518)."""


class JwksError(ValueError):
    """Not an acceptable public JWKS; the message never contains the document."""


def check_jwks(text: str) -> str:
    """`text` if it is a JWKS of public keys, else JwksError saying why."""
    try:
        doc = json.loads(text)
    except ValueError:
        raise JwksError("not valid JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise JwksError('not a JWKS: expected an object with a "keys" array')
    for i, key in enumerate(doc["keys"]):
        if not isinstance(key, dict):
            raise JwksError(f"key {i} is not an object")
        if any(m in key for m in PRIVATE_MEMBERS):
            raise JwksError(f"key {i} contains private key material; a JWKS for "
                            "verification holds public keys only")
        try:
            pyjwt.PyJWK.from_dict(key)
        except (pyjwt.exceptions.PyJWTError, ValueError, TypeError, KeyError) as exc:
            raise JwksError(f"key {i} is not a usable JWK ({type(exc).__name__})") from None
    return text


def validate_request_authentication(obj: dict[str, Any]) -> Errs:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return []
    errs = common.workload_target(spec)
    for i, rule in enumerate(as_list(spec.get("jwtRules"))):
        errs += _jwt_rule(f"spec.jwtRules[{i}]", as_dict(rule))
    return errs


def _jwt_rule(path: str, rule: dict[str, Any]) -> Errs:
    errs: Errs = []
    if not rule.get("issuer") and not rule.get("jwksUri"):
        errs.append(errors.required(f"{path}.issuer", "issuer or jwksUri must be set"))
    for field in ("audiences", "fromParams", "fromCookies"):
        for k, value in enumerate(as_list(rule.get(field))):
            if value == "":
                errs.append(errors.invalid(f"{path}.{field}[{k}]", value, "must not be empty"))
    uri = rule.get("jwksUri")
    if isinstance(uri, str) and uri:
        parsed = urllib.parse.urlsplit(uri)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            errs.append(errors.invalid(f"{path}.jwksUri", uri,
                                       "must be an http:// or https:// URL with a host"))
        else:
            try:
                parsed.port
            except ValueError:
                errs.append(errors.invalid(f"{path}.jwksUri", uri, "has an invalid port"))
    jwks = rule.get("jwks")
    if isinstance(jwks, str) and jwks:
        try:
            check_jwks(jwks)
        except JwksError as exc:
            # FieldError without its value: the document may hold key material
            errs.append(errors.FieldError(f"{path}.jwks", "Invalid value",
                                          f"<jwks not shown>: {exc}"))
    for k, header in enumerate(as_list(rule.get("fromHeaders"))):
        if not as_dict(header).get("name"):
            errs.append(errors.required(f"{path}.fromHeaders[{k}].name"))
        else:
            errs += common.header_name(f"{path}.fromHeaders[{k}].name", as_dict(header)["name"])
    for k, item in enumerate(as_list(rule.get("outputClaimToHeaders"))):
        item, at = as_dict(item), f"{path}.outputClaimToHeaders[{k}]"
        for field in ("header", "claim"):
            if not item.get(field):
                errs.append(errors.required(f"{at}.{field}"))
        if item.get("header"):
            errs += common.header_name(f"{at}.header", item["header"])
    if rule.get("outputPayloadToHeader"):
        errs += common.header_name(f"{path}.outputPayloadToHeader", rule["outputPayloadToHeader"])
    errs += common.duration(f"{path}.timeout", rule.get("timeout"))
    return errs
