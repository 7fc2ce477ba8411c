"""Transport sockets for mesh mTLS, with certificates fetched over SDS (same ADS stream).

Upstream (client side): present secret `default`, validate the server against `ROOTCA`
and the exact SPIFFE IDs of the service's workloads (`match_typed_subject_alt_names`),
offer Istio's ALPN. Downstream (server side): present `default`, require and validate a
client certificate from the trust domain. Key material never appears here: only the
SDS names, so listeners and clusters can be logged and dumped freely.
"""

from __future__ import annotations

from typing import Any, Iterable

from shoal.mesh.translate import names
from shoal.mesh.translate.protos import ADS_SOURCE, typed

Obj = dict[str, Any]


def _common(san_matchers: list[Obj], alpn: Iterable[str] = ()) -> Obj:
    common: Obj = {
        "tls_params": {"tls_minimum_protocol_version": "TLSv1_2"},
        "tls_certificate_sds_secret_configs": [
            {"name": names.SECRET_DEFAULT, "sds_config": ADS_SOURCE}],
        "combined_validation_context": {
            "default_validation_context": (
                {"match_typed_subject_alt_names": san_matchers} if san_matchers else {}),
            "validation_context_sds_secret_config": {
                "name": names.SECRET_ROOTCA, "sds_config": ADS_SOURCE},
        },
    }
    if alpn:
        common["alpn_protocols"] = list(alpn)
    return common


def upstream_mtls(spiffe_ids: Iterable[str], sni: str) -> Obj:
    """Client-side mTLS socket accepting only servers with one of `spiffe_ids`."""
    matchers = [{"san_type": "URI", "matcher": {"exact": sid}} for sid in sorted(spiffe_ids)]
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": typed("envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext", {
            "common_tls_context": _common(matchers, names.ISTIO_ALPNS),
            "sni": sni,
        }),
    }


def downstream_mtls(trust_domain: str) -> Obj:
    """Server-side socket requiring a client certificate from `trust_domain`."""
    matchers = [{"san_type": "URI", "matcher": {"prefix": f"spiffe://{trust_domain}/"}}]
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": typed("envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext", {
            "common_tls_context": _common(matchers),
            "require_client_certificate": True,
        }),
    }


def raw_buffer() -> Obj:
    return {"name": "envoy.transport_sockets.raw_buffer",
            "typed_config": typed("envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer")}
