"""Checks every Istio kind shares: durations, RE2 regexes, percentages, hosts, selectors.

Each check takes the field path and the value and returns `FieldError`s worded like the
API's (`spec.http[0].timeout: Invalid value: "1x": ...`). A value of the wrong JSON type
yields nothing here: the structural schema (`shoal.api.schema`) reports it, so the
semantic rules never pile a second error on the same field.

Durations are written as Istio writes them: Go's `time.ParseDuration` form (`0.5s`,
`1m`, `1h30m`, `100ms`, `250us`), which is also the form of protobuf JSON for whole
seconds (`10s`). Istio refuses durations under 1ms and finer than 1ms.

Regexes are checked with RE2 (`google-re2`), the engine Envoy runs, not Python's `re`:
look-arounds and back-references are errors here as they would be in Envoy.

Pure; thread-safe.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Iterable

import re2

from shoal.api import errors, names
from shoal.api.builtin import fields
from shoal.api.errors import FieldError

Errs = list[FieldError]

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # RE2 would print every bad pattern to stderr

_UNIT_NANOS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000,
               "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
DURATION_FORM = "a duration such as 0.5s, 100ms, 1m or 1h30m"
MILLISECOND_NANOS = 1_000_000

_DNS_LABEL = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?$")
MAX_HOST_LENGTH = 255


def parse_duration(text: str) -> int | None:
    """Nanoseconds of a Go-style duration ("1h30m", "0.5s", "-1s"), None if malformed."""
    if not isinstance(text, str) or not text:
        return None
    sign, rest = 1, text
    if rest[0] in "+-":
        sign, rest = (-1 if rest[0] == "-" else 1), rest[1:]
    if rest == "0":
        return 0
    total, pos = 0, 0
    while pos < len(rest):
        m = _DURATION_PART.match(rest, pos)
        if m is None:
            return None
        number, unit = m.groups()
        whole, _, frac = number.partition(".")
        nanos = int(whole or "0") * _UNIT_NANOS[unit]
        if frac:
            nanos += int(frac) * _UNIT_NANOS[unit] // 10 ** len(frac)
        total += nanos
        pos = m.end()
    return sign * total if pos else None


def duration(path: str, value: Any, *, allow_zero: bool = False) -> Errs:
    """A duration of at least 1ms (or 0 when `allow_zero`), to millisecond precision."""
    if not isinstance(value, str):
        return []
    nanos = parse_duration(value)
    if nanos is None:
        return [errors.invalid(path, value, f"must be {DURATION_FORM}")]
    if nanos == 0 and allow_zero:
        return []
    if nanos < MILLISECOND_NANOS:
        return [errors.invalid(path, value, "duration must be greater than or equal to 1ms")]
    if nanos % MILLISECOND_NANOS:
        return [errors.invalid(path, value, "only durations to ms precision are supported")]
    return []


def regex(path: str, value: Any) -> Errs:
    """A pattern RE2 (Envoy's regex engine) compiles."""
    if not isinstance(value, str):
        return []
    try:
        re2.compile(value, _RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else "invalid"
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        return [errors.invalid(path, value, f"must be a valid RE2 regular expression: {reason}")]
    return []


def percent(path: str, value: Any) -> Errs:
    """An Istio `Percent` object ({value: 0-100, fractions allowed}); the path names the object."""
    if not isinstance(value, dict):
        return []
    return number_between(f"{path}.value", value.get("value"), 0, 100)


def number_between(path: str, value: Any, low: float, high: float) -> Errs:
    if type(value) in (int, float) and not low <= value <= high:
        return [errors.invalid(path, value, f"must be between {low:g} and {high:g}, inclusive")]
    return []


def int_between(path: str, value: Any, low: int, high: int) -> Errs:
    return fields.between(path, value, low, high)


def non_negative(path: str, value: Any) -> Errs:
    return fields.at_least(path, value, 0)


def port(path: str, value: Any) -> Errs:
    """A port number 1-65535 (absent is fine; a wrong type is the schema's to report)."""
    if type(value) is int:
        return [errors.invalid(path, value, m) for m in names.check_port_number(value)]
    return []


def domain_errors(host: str, *, wildcard: bool) -> list[str]:
    """Why `host` is not a DNS name (with, when allowed, a leading `*` wildcard)."""
    if not host:
        return ["must not be empty"]
    if len(host) > MAX_HOST_LENGTH:
        return [f"must be no more than {MAX_HOST_LENGTH} characters"]
    rest = host
    if wildcard and rest.startswith("*"):
        rest = rest[1:]
        if rest.startswith("."):
            rest = rest[1:]
        if not rest:
            return []  # "*" alone
    if "*" in rest:
        return ["wildcards are only allowed as the leading part of a host (*.example.com)"
                if wildcard else "must not contain a wildcard"]
    for label in rest.rstrip(".").split("."):
        if len(label) > names.DNS1123_LABEL_MAX or not _DNS_LABEL.match(label):
            return ["must be a DNS name made of labels of letters, digits and '-' "
                    "(e.g. reviews, reviews.prod.svc.cluster.local, *.example.com)"]
    return []


def host(path: str, value: Any, *, wildcard: bool = True, allow_ip: bool = False) -> Errs:
    """A host name as Istio takes it: short name, FQDN, `*`-prefixed wildcard, or IP."""
    if not isinstance(value, str):
        return []
    if allow_ip and _is_ip_or_cidr(value):
        return []
    return [errors.invalid(path, value, m) for m in domain_errors(value, wildcard=wildcard)]


def _is_ip_or_cidr(value: str) -> bool:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return True


def cidr(path: str, value: Any) -> Errs:
    """An IP address or CIDR block (destinationSubnets, sourceSubnet)."""
    if isinstance(value, str) and not _is_ip_or_cidr(value):
        return [errors.invalid(path, value, "must be an IP address or CIDR (e.g. 10.0.0.0/8)")]
    return []


def dns_label(path: str, value: Any) -> Errs:
    """A DNS-1123 label (subset names, namespaces)."""
    return fields.check_format(path, value, names.check_dns1123_label)


def labels(path: str, value: Any) -> Errs:
    """A map of Kubernetes label keys to label values (workload and subset selectors)."""
    if not isinstance(value, dict):
        return []
    errs: Errs = []
    for key, val in value.items():
        if not isinstance(val, str):
            continue  # the schema reports it
        errs += [errors.invalid(f"{path}[{key}]", key, m)
                 for m in names.check_qualified_name(str(key))]
        errs += [errors.invalid(f"{path}[{key}]", val, m) for m in names.check_label_value(val)]
    return errs


def export_to(path: str, value: Any) -> Errs:
    """`exportTo`: "." (this namespace), "*" (every namespace) or namespace names; "*"
    cannot be mixed with other entries."""
    items = fields.as_list(value)
    errs: Errs = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        if not isinstance(item, str):
            continue
        at = f"{path}[{i}]"
        if item in seen:
            errs.append(errors.duplicate(at, item))
        seen.add(item)
        if item not in (".", "*"):
            errs += [errors.invalid(at, item, f'must be ".", "*" or a namespace name: {m}')
                     for m in names.check_dns1123_label(item)]
    if "*" in seen and len(seen) > 1:
        errs.append(errors.invalid(path, items,
                                   'cannot mix "*" (every namespace) with other entries'))
    return errs


def one_of_fields(path: str, obj: Any, keys: Iterable[str], *, required: bool = False,
                  what: str = "") -> Errs:
    """At most (or, when `required`, exactly) one of `keys` is set in `obj`."""
    if not isinstance(obj, dict):
        return []
    keys = list(keys)
    present = [k for k in keys if obj.get(k) not in (None, "", False)]
    listed = ", ".join(keys)
    if len(present) > 1:
        return [errors.invalid(path, {k: obj[k] for k in present},
                               f"only one of {listed} may be set{what}")]
    if required and not present:
        return [errors.required(path, f"one of {listed} is required{what}")]
    return []


def enum(path: str, value: Any, allowed: list[str]) -> Errs:
    if isinstance(value, str) and value not in allowed:
        return [errors.unsupported(path, value, allowed)]
    return []


def unique_names(path: str, items: list[Any], key: str = "name") -> Errs:
    """Duplicate `key` values among a list of objects."""
    errs: Errs = []
    seen: set[Any] = set()
    for i, item in enumerate(items):
        value = item.get(key) if isinstance(item, dict) else None
        if isinstance(value, (str, int)) and value != "":
            if value in seen:
                errs.append(errors.duplicate(f"{path}[{i}].{key}", value))
            seen.add(value)
    return errs


HEADER_NAME = re.compile(r"^[-!#$%&'*+.^_`|~0-9A-Za-z]+$")


def header_name(path: str, value: Any, *, claims: bool = False) -> Errs:
    """An HTTP header name (an RFC 7230 token). With `claims`, Istio's JWT claim routes
    (`@request.auth.claims.groups`) are names too (gateway header matches)."""
    if not isinstance(value, str):
        return []
    if claims and value.startswith("@request.auth.claims.") and \
            len(value) > len("@request.auth.claims."):
        return []
    if not value or not HEADER_NAME.match(value):
        return [errors.invalid(path, value, "must be a valid HTTP header name")]
    return []


def gateway_name(path: str, value: Any) -> Errs:
    """`mesh`, `NAME` or `NAMESPACE/NAME` (a Gateway)."""
    if not isinstance(value, str) or value == "mesh":
        return []
    namespace, _, name = value.rpartition("/")
    errs = [errors.invalid(path, value, f"gateway name: {m}")
            for m in names.check_dns1123_subdomain(name)]
    if "/" in value:
        errs += [errors.invalid(path, value, f"gateway namespace: {m}")
                 for m in names.check_dns1123_label(namespace)] if namespace != "." else []
    return errs


def as_dict(value: Any) -> dict[str, Any]:
    return fields.as_dict(value)


def as_list(value: Any) -> list[Any]:
    return fields.as_list(value)


TARGET_KINDS = {("", "Service"), ("networking.istio.io", "ServiceEntry"),
                ("gateway.networking.k8s.io", "Gateway"),
                ("gateway.networking.k8s.io", "GatewayClass")}
"""(group, kind) a security policy's targetRef may name (Istio's allowedTargetRefs)."""
TARGET_REF = {"group": "str", "kind": "str", "name": "str", "namespace": "str"}


def workload_target(spec: dict[str, Any]) -> Errs:
    """`selector` / `targetRef` / `targetRefs` of a security policy, as Istio checks
    them: at most one kind of target; selector labels without empty keys or `*`;
    each reference names a Service, ServiceEntry, Gateway or GatewayClass in the
    policy's own namespace."""
    errs: Errs = []
    set_ = [k for k in ("selector", "targetRef", "targetRefs") if spec.get(k)]
    if len(set_) > 1:
        errs.append(errors.invalid(f"spec.{set_[1]}", spec[set_[1]],
                                   "only one of selector, targetRef or targetRefs may be set"))
    labels_ = as_dict(as_dict(spec.get("selector")).get("matchLabels"))
    for key, value in labels_.items():
        at = f"spec.selector.matchLabels[{key}]"
        if key == "":
            errs.append(errors.invalid(at, key, "an empty label key is not allowed"))
        elif "*" in str(key) or "*" in str(value):
            errs.append(errors.invalid(at, value, "wildcards are not supported in a selector"))
    errs += labels("spec.selector.matchLabels", labels_)
    refs = [("spec.targetRef", spec.get("targetRef"))] if spec.get("targetRef") else []
    refs += [(f"spec.targetRefs[{i}]", r) for i, r in enumerate(as_list(spec.get("targetRefs")))]
    for at, ref in refs:
        ref = as_dict(ref)
        if not ref.get("name"):
            errs.append(errors.required(f"{at}.name"))
        if not ref.get("kind"):
            errs.append(errors.required(f"{at}.kind"))
        elif (ref.get("group") or "", ref.get("kind")) not in TARGET_KINDS and \
                not (ref.get("group") == "core" and ref.get("kind") == "Service"):
            errs.append(errors.invalid(f"{at}.kind", ref.get("kind"),
                                       "must be Service, networking.istio.io ServiceEntry, or "
                                       "gateway.networking.k8s.io Gateway or GatewayClass "
                                       "(with its group)"))
        if ref.get("namespace"):
            errs.append(errors.forbidden(f"{at}.namespace", "cross-namespace references are "
                                         "not supported: omit namespace"))
    return errs
