"""SDS secrets from SVIDs: `default` (the workload's certificate chain and key) and
`ROOTCA` (the trust bundle). The only place key bytes enter an Envoy resource; the
messages are never logged (the server logs names and versions only)."""

from __future__ import annotations

from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2

from shoal.mesh.ca import Svid
from shoal.mesh.translate import names


def build_secrets(svid: Svid, root_pem: bytes) -> dict[str, secret_pb2.Secret]:
    default = secret_pb2.Secret(name=names.SECRET_DEFAULT)
    default.tls_certificate.certificate_chain.inline_bytes = svid.cert_chain_pem
    default.tls_certificate.private_key.inline_bytes = svid.key_pem
    root = secret_pb2.Secret(name=names.SECRET_ROOTCA)
    root.validation_context.CopyFrom(common_pb2.CertificateValidationContext())
    root.validation_context.trusted_ca.inline_bytes = root_pem
    return {names.SECRET_DEFAULT: default, names.SECRET_ROOTCA: root}
