"""The API server's credentials: a CA, a serving certificate, a bearer token, a kubeconfig.

All generated on first start into `<state>/pki/` (mode 0600 for keys and the token) and
reused afterwards, so kubeconfigs handed out stay valid across restarts. The serving
certificate names 127.0.0.1, localhost and the configured host. Nothing here logs key
material or the token.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import os
import secrets
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from shoal.config import Settings
from shoal.fsutil import write_atomic


@dataclasses.dataclass(frozen=True)
class ApiCredentials:
    ca_cert: Path
    server_cert: Path
    server_key: Path
    token_file: Path

    @property
    def token(self) -> str:
        return self.token_file.read_text().strip()


def _write_private(path: Path, data: bytes) -> None:
    write_atomic(path, data, 0o600)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def ensure_credentials(settings: Settings) -> ApiCredentials:
    """Create the CA, serving cert and token if missing; return their paths."""
    pki = settings.pki_dir
    pki.mkdir(parents=True, exist_ok=True)
    os.chmod(pki, 0o700)
    creds = ApiCredentials(
        ca_cert=pki / "ca.crt",
        server_cert=pki / "apiserver.crt",
        server_key=pki / "apiserver.key",
        token_file=pki / "token",
    )
    now = datetime.datetime.now(datetime.timezone.utc)
    if not creds.ca_cert.exists() or not (pki / "ca.key").exists():
        ca_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "shoal-ca")])
        ca = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, key_cert_sign=True, crl_sign=True,
                    content_commitment=False, key_encipherment=False, data_encipherment=False,
                    key_agreement=False, encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .sign(ca_key, hashes.SHA256())
        )
        _write_private(pki / "ca.key", _key_pem(ca_key))
        write_atomic(creds.ca_cert, ca.public_bytes(serialization.Encoding.PEM))
        creds.server_cert.unlink(missing_ok=True)
    if not creds.server_cert.exists() or not creds.server_key.exists() or not _covers(
        creds.server_cert, settings.api_host
    ):
        ca_key = serialization.load_pem_private_key((pki / "ca.key").read_bytes(), None)
        ca = x509.load_pem_x509_certificate(creds.ca_cert.read_bytes())
        key = ec.generate_private_key(ec.SECP256R1())
        alt: list[x509.GeneralName] = [
            x509.DNSName("localhost"),
            x509.DNSName("kubernetes.default.svc"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        ]
        try:
            host_ip = ipaddress.ip_address(settings.api_host)
            if str(host_ip) != "127.0.0.1":
                alt.append(x509.IPAddress(host_ip))
        except ValueError:
            alt.append(x509.DNSName(settings.api_host))
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "shoal-apiserver")]))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=825))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
        )
        _write_private(creds.server_key, _key_pem(key))
        write_atomic(creds.server_cert, cert.public_bytes(serialization.Encoding.PEM))
    if not creds.token_file.exists():
        _write_private(creds.token_file, (secrets.token_urlsafe(32) + "\n").encode())
    return creds


def _covers(cert_path: Path, host: str) -> bool:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    try:
        return ipaddress.ip_address(host) in san.get_values_for_type(x509.IPAddress)
    except ValueError:
        return host in san.get_values_for_type(x509.DNSName)


def write_kubeconfig(settings: Settings, creds: ApiCredentials) -> Path:
    """Write `<state>/kubeconfig` (mode 0600) for kubectl and the kubernetes client."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": "shoal",
            "cluster": {
                "server": settings.api_url,
                "certificate-authority": str(creds.ca_cert),
            },
        }],
        "users": [{"name": "shoal-admin", "user": {"token": creds.token}}],
        "contexts": [{
            "name": "shoal",
            "context": {"cluster": "shoal", "user": "shoal-admin", "namespace": "default"},
        }],
        "current-context": "shoal",
        "preferences": {},
    }
    path = settings.kubeconfig_path
    _write_private(path, yaml.safe_dump(config, sort_keys=False).encode())
    return path
