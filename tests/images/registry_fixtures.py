"""A real Distribution registry (Debian's docker-registry) on 127.0.0.1, optionally with
token auth backed by a tiny in-test token server, and a proxy that cuts blob downloads.
Every process and server is stopped by the fixture that started it."""

from __future__ import annotations

import base64
import contextlib
import datetime
import hashlib
import http.server
import json
import socket
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

USER, PASSWORD = "shoal", "s3cret-pass"
SERVICE, ISSUER = "shoal-test-registry", "shoal-test-issuer"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def libtrust_key_id(public_key) -> str:
    """The `kid` Distribution derives from a public key (libtrust format)."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    s = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(s[i:i + 4] for i in range(0, len(s), 4))


class TokenServer:
    """Issues RS256 JWTs for any requested repository scope to USER:PASSWORD."""

    def __init__(self, workdir: Path):
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "shoal test token signer")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=1))
                .sign(self.key, hashes.SHA256()))
        self.cert_path = workdir / "token-signer.pem"
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self.requests: list[dict] = []
        self.port = free_port()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
                auth = self.headers.get("Authorization", "")
                expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
                server.requests.append({"query": query, "authorized": auth == expected})
                if auth != expected:
                    self.send_response(401)
                    self.end_headers()
                    return
                body = json.dumps({"token": server.token(query.get("scope", []))}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def token(self, scopes: list[str]) -> str:
        access = []
        for scope in scopes:
            kind, name, actions = scope.split(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        header = {"alg": "RS256", "typ": "JWT", "kid": libtrust_key_id(self.key.public_key())}
        claims = {"iss": ISSUER, "sub": USER, "aud": SERVICE, "exp": now + 300, "nbf": now - 10,
                  "iat": now, "jti": _b64(hashlib.sha256(str(time.time_ns()).encode()).digest()),
                  "access": access}
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        sig = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64(sig)}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class Registry:
    def __init__(self, workdir: Path, token: TokenServer | None = None):
        self.port = free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        config = {
            "version": 0.1,
            "log": {"level": "error", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(workdir / "data")}, "delete": {"enabled": True}},
            "http": {"addr": f"127.0.0.1:{self.port}"},
        }
        if token:
            config["auth"] = {"token": {"realm": token.realm, "service": SERVICE, "issuer": ISSUER,
                                        "rootcertbundle": str(token.cert_path)}}
        path = workdir / "config.yml"
        path.write_text(json.dumps(config))  # JSON is YAML
        self.log = open(workdir / "registry.log", "wb")
        self.proc = subprocess.Popen(["docker-registry", "serve", str(path)],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"http://{self.host}/v2/", timeout=1).status_code in (200, 401):
                    break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"docker-registry did not start: {(workdir / 'registry.log').read_text()}")
            time.sleep(0.1)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def seed(self, archive: Path, repo: str, creds: str | None = None, fmt: str | None = None) -> None:
        argv = ["skopeo", "copy", "--quiet", "--dest-tls-verify=false"]
        if fmt:
            argv += ["--format", fmt]
        if creds:
            argv += ["--dest-creds", creds]
        argv += [f"oci-archive:{archive}", f"docker://{self.host}/{repo}"]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class CuttingProxy:
    """Forwards to an upstream registry; the blob `victim` is cut short.

    mode "cut": full Content-Length is announced, half is sent, the connection closes.
    mode "short": a consistent but shorter body (Content-Length = half) is served.
    Only the first `times` requests for the victim are damaged; Range headers are
    forwarded and recorded in `ranges`.
    """

    def __init__(self, upstream: str, victim: str, mode: str, times: int = 1_000_000):
        self.port = free_port()
        self.ranges: list[str | None] = []
        self.remaining = times
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() in ("accept", "authorization", "range")}
                resp = httpx.get(f"http://{upstream}{self.path}", headers=headers, timeout=30)
                body = resp.content
                cut = self.path.endswith(f"/blobs/{victim}")
                if cut:
                    proxy.ranges.append(self.headers.get("Range"))
                    cut = proxy.remaining > 0
                    proxy.remaining -= 1
                self.send_response(resp.status_code)
                for k, v in resp.headers.items():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                        self.send_header(k, v)
                if cut and mode == "short":
                    body = body[: len(body) // 2]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if cut and mode == "cut":
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
