"""MeshConfig: the mesh-wide settings (Istio's MeshConfig subset), one frozen value.

Passed to the translator, the server and the CA. Defaults are shoal's: mTLS STRICT when
no PeerAuthentication says otherwise (Istio defaults to PERMISSIVE), unknown outbound
destinations pass through (Istio's ALLOW_ANY).
"""

from __future__ import annotations

import dataclasses

from shoal.config import Settings

ALLOW_ANY = "ALLOW_ANY"
REGISTRY_ONLY = "REGISTRY_ONLY"


@dataclasses.dataclass(frozen=True)
class MeshConfig:
    trust_domain: str = "cluster.local"
    """SPIFFE trust domain: SVIDs are spiffe://<trust_domain>/ns/NS/sa/SA."""

    cluster_domain: str = "cluster.local"
    """DNS suffix of services: web.default.svc.<cluster_domain>."""

    root_namespace: str = "istio-system"
    """Namespace whose selector-less PeerAuthentication is the mesh-wide policy."""

    default_mtls_mode: str = "STRICT"
    """mTLS mode when no PeerAuthentication applies: STRICT, PERMISSIVE or DISABLE."""

    outbound_traffic_policy: str = ALLOW_ANY
    """ALLOW_ANY: unknown destinations pass through; REGISTRY_ONLY: they are dropped."""

    deny_by_default: bool = False
    """True: every workload denies what no ALLOW AuthorizationPolicy allows, as if an
    allow-nothing policy (`spec: {}`) were in the root namespace. Off by default, as in
    Istio (where the same is done by applying that policy)."""

    proxy_uid: int = 1337
    """UID (and GID) the sidecar runs as; its traffic is never captured."""

    cert_ttl_seconds: float = 24 * 3600.0
    """Lifetime of workload SVIDs in seconds (default 24 h); rotated at half-life."""

    debounce_seconds: float = 0.05
    """At most one recomputation per window (seconds): a change after a quiet window is
    pushed at once, later changes within the window are merged into one push."""

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: object) -> "MeshConfig":
        values: dict[str, object] = {
            "trust_domain": settings.cluster_domain,
            "cluster_domain": settings.cluster_domain,
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]
