"""The mesh's seams into the API server: Istio kinds and the sidecar-injection step.

`register_kinds()` makes the API serve `security.istio.io` PeerAuthentication,
AuthorizationPolicy and RequestAuthentication (v1, and v1beta1 as Istio still accepts
it) and `networking.istio.io` VirtualService and
DestinationRule (v1, v1beta1, v1alpha3) and EnvoyFilter (v1alpha3), each with its
structural schema and semantic validator from `shoal.mesh.validation`, so a malformed
object is rejected at the API with the field path (`spec.mtls.mode: Unsupported value:
"MUTUAL"`, `spec.http[0].route[1].weight: Invalid value: 120: ...`). Call it once at
start-up, before serving (the API's kind registry is not meant to change while serving).
It also registers tables with Istio's printer columns (VirtualService NAME, GATEWAYS,
HOSTS, AGE; DestinationRule NAME, HOST, AGE) for `kubectl get vs,dr`.

`injection_step(options)` is a mutating admission step (`shoal.apiserver.admission`):
on Pod CREATE it injects the sidecar when `inject.needs_injection` says so, and rejects
a pod that cannot be meshed with `Invalid` naming the field. The daemon appends it to
the chain's `mutating` list.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from shoal.api import kinds, printcells, printers
from shoal.api.errors import Invalid
from shoal.mesh import inject
from shoal.mesh.validation import (
    authorizationpolicy, destinationrule, envoyfilter, requestauthentication, virtualservice,
)
from shoal.mesh.validation.peerauthentication import validate_peer_authentication

Obj = dict[str, Any]

PEER_AUTHENTICATION_VERSIONS = ("v1", "v1beta1")
NETWORKING_VERSIONS = ("v1", "v1beta1", "v1alpha3")
"""Istio serves VirtualService and DestinationRule at all three; YAML from its docs uses each."""

NETWORKING_KINDS = (
    # kind, plural, singular, short names, versions
    ("VirtualService", "virtualservices", "virtualservice", ("vs",), NETWORKING_VERSIONS),
    ("DestinationRule", "destinationrules", "destinationrule", ("dr",), NETWORKING_VERSIONS),
    ("EnvoyFilter", "envoyfilters", "envoyfilter", (), ("v1alpha3",)),
)
NETWORKING_VALIDATION = {
    # kind: (structural schema, semantic validator)
    "VirtualService": (virtualservice.SCHEMA, virtualservice.validate_virtual_service),
    "DestinationRule": (destinationrule.SCHEMA, destinationrule.validate_destination_rule),
    "EnvoyFilter": (envoyfilter.SCHEMA, envoyfilter.validate_envoy_filter),
}


def peer_authentication_type(version: str = "v1") -> kinds.ResourceType:
    return kinds.ResourceType(
        "security.istio.io", version, "PeerAuthentication", "peerauthentications",
        "peerauthentication", True, ("pa",), categories=("istio-io", "security-istio-io"))


SECURITY_KINDS = (
    # kind, plural, singular, short names, (schema, validator)
    ("AuthorizationPolicy", "authorizationpolicies", "authorizationpolicy", ("ap",),
     (authorizationpolicy.SCHEMA, authorizationpolicy.validate_authorization_policy)),
    ("RequestAuthentication", "requestauthentications", "requestauthentication", ("ra",),
     (requestauthentication.SCHEMA, requestauthentication.validate_request_authentication)),
)


def security_type(kind: str, version: str = "v1") -> kinds.ResourceType:
    for name, plural, singular, short, _ in SECURITY_KINDS:
        if name == kind:
            return kinds.ResourceType(
                "security.istio.io", version, name, plural, singular, True, short,
                subresources=("status",), categories=("istio-io", "security-istio-io"))
    raise KeyError(kind)


def networking_type(kind: str, version: str) -> kinds.ResourceType:
    for name, plural, singular, short, _ in NETWORKING_KINDS:
        if name == kind:
            return kinds.ResourceType(
                "networking.istio.io", version, name, plural, singular, True, short,
                subresources=("status",), categories=("istio-io", "networking-istio-io"))
    raise KeyError(kind)


def _column(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "type": "string", "format": "", "description": description,
            "priority": 0}


def _json_cell(value: Any) -> str | None:
    """An array cell as kubectl prints a CRD's JSONPath column: ["a","b"]."""
    return json.dumps(value, separators=(",", ":")) if value else None


def _virtual_service_row(obj: Obj, now: dt.datetime) -> tuple[list[Any], list[Any]]:
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    return ([obj["metadata"]["name"], _json_cell(spec.get("gateways")),
             _json_cell(spec.get("hosts")), printcells.age(obj, now)], [])


def _destination_rule_row(obj: Obj, now: dt.datetime) -> tuple[list[Any], list[Any]]:
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    return ([obj["metadata"]["name"], spec.get("host"), printcells.age(obj, now)], [])


PRINTER_COLUMNS = {
    # Istio's CRD additionalPrinterColumns
    "VirtualService": ([printers.NAME, _column("Gateways", "The names of gateways "
                        "and sidecars that should apply these routes"),
                        _column("Hosts", "The destination hosts to which traffic is "
                                        "being sent"), printers.AGE], _virtual_service_row),
    "DestinationRule": ([printers.NAME, _column("Host", "The name of a service from "
                         "the service registry"), printers.AGE], _destination_rule_row),
}


def register_kinds() -> None:
    for version in PEER_AUTHENTICATION_VERSIONS:
        kinds.register(peer_authentication_type(version),
                       validator=lambda obj, old: validate_peer_authentication(obj))
    for kind, _, _, _, (schema, validate) in SECURITY_KINDS:
        for version in PEER_AUTHENTICATION_VERSIONS:
            kinds.register(security_type(kind, version), schema=schema,
                           validator=lambda obj, old, validate=validate: validate(obj))
    for kind, _, _, _, versions in NETWORKING_KINDS:
        schema, validate = NETWORKING_VALIDATION[kind]
        for version in versions:
            kinds.register(networking_type(kind, version), schema=schema,
                           validator=lambda obj, old, validate=validate: validate(obj))
    for kind, (columns, row) in PRINTER_COLUMNS.items():
        printers.register(kind, columns, row)


def injection_step(options: inject.InjectOptions = inject.InjectOptions()):
    """An admission step: `async (AdmissionRequest) -> dict | None`."""

    async def inject_sidecar(request: Any) -> Obj | None:
        if request.type.kind != "Pod" or request.type.group != "" or request.operation != "CREATE":
            return None
        pod, errors = inject.admit_pod(request.object, request.namespace, options)
        if errors:
            meta = request.object.get("metadata") or {}
            raise Invalid("Pod", meta.get("name") or meta.get("generateName") or "", errors)
        return None if pod is request.object else pod

    return inject_sidecar
