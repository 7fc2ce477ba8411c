"""Validation of the Istio kinds: one module per kind family, sharing `common`.

Each module exposes the kind's structural `SCHEMA` (for `kinds.register(schema=...)`)
and a `validate_*` function returning `FieldError`s with Kubernetes-style field paths;
`shoal.mesh.kinds` registers them. Everything here is pure and imports only
`shoal.api`, so the API server can run it on every create and update.
"""

from shoal.mesh.validation.destinationrule import validate_destination_rule
from shoal.mesh.validation.envoyfilter import validate_envoy_filter
from shoal.mesh.validation.peerauthentication import validate_peer_authentication
from shoal.mesh.validation.virtualservice import validate_virtual_service

__all__ = ["validate_destination_rule", "validate_envoy_filter",
           "validate_peer_authentication", "validate_virtual_service"]
