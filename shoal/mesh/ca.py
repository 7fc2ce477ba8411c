"""The mesh CA: a self-signed ECDSA P-256 root under a directory, issuing SPIFFE SVIDs.

Layout (decided here only): `<dir>/root-cert.pem` (trust bundle, 0644) and
`<dir>/root-key.pem` (0600). `MeshCA.load_or_create(dir)` reuses an existing root, so
workload certificates stay valid across daemon restarts.

`issue_svid(namespace, service_account, ttl)` returns a fresh key and a leaf certificate
with the single URI SAN `spiffe://<trust domain>/ns/NS/sa/SA`, usable for client and
server auth (mTLS both ways). The default lifetime is 24 h; callers rotate at half-life
(`Svid.rotate_at`). Lifetimes down to a second are allowed, for tests.

Key material never appears in logs, reprs or error messages: `Svid.__repr__` omits the
key. Issuing is CPU-bound but short (~1 ms); it is safe to call from the event loop for
a handful of proxies, and thread-safe (no shared mutable state besides the root).
"""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from shoal.fsutil import write_atomic
from shoal.mesh.errors import CaError

DEFAULT_TTL = datetime.timedelta(hours=24)
ROOT_TTL = datetime.timedelta(days=3650)
CLOCK_SKEW = datetime.timedelta(seconds=60)
"""Leaf certificates are valid from slightly in the past so a peer's clock may lag."""


def spiffe_id(trust_domain: str, namespace: str, service_account: str) -> str:
    return f"spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}"


@dataclasses.dataclass(frozen=True)
class Svid:
    """An X.509 SVID: leaf certificate, its private key, and the chain up to the root."""

    cert_pem: bytes
    key_pem: bytes = dataclasses.field(repr=False)
    chain: bytes
    """Intermediates (none today) followed by the root, PEM."""
    spiffe_id: str
    not_before: datetime.datetime
    not_after: datetime.datetime

    @property
    def rotate_at(self) -> datetime.datetime:
        """Half-life: when a fresh SVID should replace this one."""
        return self.not_before + (self.not_after - self.not_before) / 2

    @property
    def cert_chain_pem(self) -> bytes:
        """Leaf followed by intermediates: what a TLS endpoint presents."""
        return self.cert_pem


class MeshCA:
    """A root CA for one trust domain. Create with `load_or_create`."""

    def __init__(self, trust_domain: str, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate):
        self.trust_domain = trust_domain
        self._key = key
        self._cert = cert
        self.root_pem = cert.public_bytes(serialization.Encoding.PEM)

    def __repr__(self) -> str:
        return f"MeshCA(trust_domain={self.trust_domain!r})"

    @classmethod
    def load_or_create(cls, directory: Path, trust_domain: str = "cluster.local") -> "MeshCA":
        directory = Path(directory)
        cert_path, key_path = directory / "root-cert.pem", directory / "root-key.pem"
        try:
            if cert_path.exists() and key_path.exists():
                cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
                key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
                if not isinstance(key, ec.EllipticCurvePrivateKey):
                    raise CaError(f"{key_path}: expected an EC private key")
                return cls(trust_domain, key, cert)
            directory.mkdir(parents=True, exist_ok=True)
            key = ec.generate_private_key(ec.SECP256R1())
            cert = _self_signed_root(key, trust_domain)
            write_atomic(key_path, key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption()), 0o600)
            write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM))
            return cls(trust_domain, key, cert)
        except (OSError, ValueError) as exc:
            # never include file contents: the message names the path and the failure only
            raise CaError(f"mesh CA in {directory}: {type(exc).__name__}: {exc}") from None

    def issue_svid(
        self,
        namespace: str,
        service_account: str,
        ttl: datetime.timedelta | float = DEFAULT_TTL,
    ) -> Svid:
        """A new key pair and leaf certificate for spiffe://TD/ns/NAMESPACE/sa/SA."""
        if not namespace or not service_account:
            raise CaError(f"issue_svid: namespace and service_account are required, "
                          f"got {namespace!r}/{service_account!r}")
        if not isinstance(ttl, datetime.timedelta):
            ttl = datetime.timedelta(seconds=float(ttl))
        if ttl.total_seconds() < 1:
            raise CaError(f"issue_svid: ttl must be at least 1 second, got {ttl.total_seconds()}")
        uri = spiffe_id(self.trust_domain, namespace, service_account)
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        not_before, not_after = now - CLOCK_SKEW, now + ttl
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]),
                           critical=True)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, key_encipherment=True, content_commitment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        return Svid(
            cert_pem=cert.public_bytes(serialization.Encoding.PEM),
            key_pem=key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption()),
            chain=self.root_pem,
            spiffe_id=uri,
            not_before=not_before + CLOCK_SKEW,
            not_after=not_after,
        )


def _self_signed_root(key: ec.EllipticCurvePrivateKey, trust_domain: str) -> x509.Certificate:
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, trust_domain),
        x509.NameAttribute(NameOID.COMMON_NAME, "shoal mesh root CA"),
    ])
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + ROOT_TTL)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, key_encipherment=False, content_commitment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
