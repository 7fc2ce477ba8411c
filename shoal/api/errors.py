"""API errors: one family, each carrying the Kubernetes `Status` reason and HTTP code.

The API server turns any `StatusError` into a Kubernetes `Status` object with exactly this
code, reason and message (`to_status`); `from_status` maps a Status back through the one
table `STATUS_ERRORS` (by reason, then by code), rebuilding `Invalid.errors` from the
Status causes. So the in-process and HTTP clients raise the same types, and controllers
handle errors the same way whichever client they run on.

Validation collects every problem before failing: `Invalid` carries a list of `FieldError`
whose text follows Kubernetes (`spec.replicas: Invalid value: -1: must be greater than or
equal to 0`).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from shoal.errors import ShoalError


@dataclasses.dataclass(frozen=True)
class FieldError:
    """One problem at one field path, worded like Kubernetes' field.Error."""

    path: str
    """Dotted field path with list indexes, e.g. spec.template.spec.containers[0].image."""
    type: str
    """Kubernetes error type: 'Required value', 'Invalid value', 'Unsupported value',
    'Forbidden', 'Duplicate value', 'Too long', 'Not found', 'Unknown field'."""
    detail: str = ""
    value: Any = dataclasses.field(default=None)
    has_value: bool = False

    def __str__(self) -> str:
        text = f"{self.path}: {self.type}"
        if self.has_value:
            text += f": {_render_value(self.value)}"
        if self.detail:
            text += f": {self.detail}"
        return text

    @property
    def reason(self) -> str:
        """The Kubernetes StatusCause reason (FieldValueRequired, ...)."""
        return _CAUSE_REASONS.get(self.type, "FieldValueInvalid")


def _render_value(value: Any) -> str:
    """Values as Kubernetes prints them: strings JSON-quoted (Invalid value: "three"),
    objects and lists as compact JSON (also when a validator passed them pre-encoded)."""
    if isinstance(value, str):
        if value[:1] in ("{", "["):
            try:
                json.loads(value)
                return value
            except ValueError:
                pass
        return json.dumps(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), default=str)
    return str(value)


_CAUSE_REASONS = {
    "Required value": "FieldValueRequired",
    "Invalid value": "FieldValueInvalid",
    "Unsupported value": "FieldValueNotSupported",
    "Forbidden": "FieldValueForbidden",
    "Duplicate value": "FieldValueDuplicate",
    "Too long": "FieldValueTooLong",
    "Not found": "FieldValueNotFound",
    "Unknown field": "FieldValueInvalid",
}
_CAUSE_TYPES = {reason: kind for kind, reason in reversed(_CAUSE_REASONS.items())}
"""Cause reason -> field error type (FieldValueInvalid -> 'Invalid value')."""


def required(path: str, detail: str = "") -> FieldError:
    return FieldError(path, "Required value", detail)


def invalid(path: str, value: Any, detail: str) -> FieldError:
    return FieldError(path, "Invalid value", detail, value, True)


def unsupported(path: str, value: Any, allowed: list[str]) -> FieldError:
    quoted = ", ".join(f'"{a}"' for a in allowed)
    return FieldError(path, "Unsupported value", f"supported values: {quoted}", value, True)


def forbidden(path: str, detail: str) -> FieldError:
    return FieldError(path, "Forbidden", detail)


def duplicate(path: str, value: Any) -> FieldError:
    return FieldError(path, "Duplicate value", "", value, True)


def unknown_field(path: str) -> FieldError:
    return FieldError(path, "Unknown field", 'field not declared in schema')


class StatusError(ShoalError):
    """An API error with a Kubernetes Status reason and HTTP code."""

    code = 500
    reason = "InternalError"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    @classmethod
    def from_details(cls, message: str, details: dict[str, Any] | None) -> "StatusError":
        """This error rebuilt from a Status' message and details (see `from_status`)."""
        return cls(message, details=details)

    def to_status(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            status["details"] = self.details
        return status


class BadRequest(StatusError):
    code, reason = 400, "BadRequest"


class Unauthorized(StatusError):
    code, reason = 401, "Unauthorized"


class Forbidden(StatusError):
    code, reason = 403, "Forbidden"


class NotFound(StatusError):
    code, reason = 404, "NotFound"

    @classmethod
    def of(cls, resource: str, name: str) -> "NotFound":
        return cls(f'{resource} "{name}" not found', details=_details(resource, name))


class MethodNotAllowed(StatusError):
    code, reason = 405, "MethodNotAllowed"


class AlreadyExists(StatusError):
    code, reason = 409, "AlreadyExists"

    @classmethod
    def of(cls, resource: str, name: str) -> "AlreadyExists":
        return cls(f'{resource} "{name}" already exists', details=_details(resource, name))


class Conflict(StatusError):
    code, reason = 409, "Conflict"

    @classmethod
    def stale(cls, resource: str, name: str) -> "Conflict":
        return cls(
            f'Operation cannot be fulfilled on {resource} "{name}": the object has been '
            "modified; please apply your changes to the latest version and try again",
            details=_details(resource, name),
        )


class Gone(StatusError):
    """A watch or list asked for a revision that compaction already removed."""

    code, reason = 410, "Expired"


class RequestEntityTooLarge(StatusError):
    code, reason = 413, "RequestEntityTooLarge"


class UnsupportedMediaType(StatusError):
    code, reason = 415, "UnsupportedMediaType"


class Invalid(StatusError):
    """The object failed validation; `errors` lists every field problem."""

    code, reason = 422, "Invalid"

    def __init__(self, kind: str, name: str, errors: list[FieldError], group: str = "") -> None:
        joined = ", ".join(str(e) for e in errors)
        super().__init__(
            f'{kind} "{name}" is invalid: [{joined}]' if len(errors) > 1
            else f'{kind} "{name}" is invalid: {joined}',
            details={
                "name": name,
                "group": group,
                "kind": kind,
                "causes": [
                    {"reason": e.reason, "message": str(e).partition(": ")[2], "field": e.path}
                    for e in errors
                ],
            },
        )
        self.errors = errors

    @classmethod
    def from_details(cls, message: str, details: dict[str, Any] | None) -> "Invalid":
        """Rebuilt from a Status: the message as sent, `errors` from details.causes
        (field path, type from the cause reason, and the rest of the message)."""
        causes = (details or {}).get("causes") or []
        field_errors = []
        for cause in causes if isinstance(causes, list) else []:
            if not isinstance(cause, dict):
                continue
            text = str(cause.get("message") or "")
            kind = _CAUSE_TYPES.get(str(cause.get("reason") or ""), "Invalid value")
            for known in _CAUSE_REASONS:  # the message opens with its type when it is ours
                if text == known or text.startswith(known + ": "):
                    kind, text = known, text[len(known):].removeprefix(": ")
                    break
            field_errors.append(FieldError(str(cause.get("field") or ""), kind, text))
        err = cls.__new__(cls)
        StatusError.__init__(err, message, details=details)
        err.errors = field_errors
        return err


class TooManyRequests(StatusError):
    code, reason = 429, "TooManyRequests"


class InternalError(StatusError):
    code, reason = 500, "InternalError"


class ServiceUnavailable(StatusError):
    code, reason = 503, "ServiceUnavailable"


class Timeout(StatusError):
    code, reason = 504, "Timeout"


def _details(resource: str, name: str) -> dict[str, Any]:
    """Kubernetes StatusDetails for resource 'deployments.apps' or 'pods' and a name."""
    plural, _, group = resource.partition(".")
    return {"name": name, "group": group, "kind": plural}


STATUS_ERRORS: tuple[type[StatusError], ...] = (
    BadRequest, Unauthorized, Forbidden, NotFound, MethodNotAllowed, AlreadyExists, Conflict,
    Gone, RequestEntityTooLarge, UnsupportedMediaType, Invalid, TooManyRequests,
    InternalError, ServiceUnavailable, Timeout,
)
"""The one table of API errors: each class's `reason` and `code` are what the server
sends (`to_status`) and what `from_status` maps back."""

_BY_REASON = {cls.reason: cls for cls in STATUS_ERRORS}
_BY_REASON["Gone"] = Gone  # Kubernetes sends 410 with reason Expired or Gone
_BY_CODE: dict[int, type[StatusError]] = {}
for _cls in STATUS_ERRORS:
    _BY_CODE.setdefault(_cls.code, _cls)  # 409: AlreadyExists listed first, then Conflict
_BY_CODE[409] = Conflict  # a 409 without a known reason is a conflict


def from_status(status: dict[str, Any]) -> StatusError:
    """The typed StatusError a Kubernetes Status object stands for (used by the HTTP
    client, so `except errors.Invalid` works over HTTP as in-process). Looked up by
    reason, then by code; an unknown status keeps its code and reason on a StatusError."""
    code = int(status.get("code") or 500)
    reason = status.get("reason") or ""
    message = status.get("message") or reason or f"HTTP {code}"
    details = status.get("details")
    cls = _BY_REASON.get(reason) or _BY_CODE.get(code)
    if cls is None:
        err = StatusError(message, details=details)
        err.code, err.reason = code, reason or ("InternalError" if code >= 500 else "Unknown")
        return err
    return cls.from_details(message, details if isinstance(details, dict) else None)
