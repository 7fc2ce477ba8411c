"""`kubectl port-forward` (the real kubectl 1.32: SPDY/3.1 tunnelled in WebSocket, and
its plain SPDY fallback) and `shoal port-forward` against one real daemon: pod,
deployment and service forms (a named targetPort), 100 requests sequential and
concurrent, clients vanishing mid-request, a port the pod does not listen on, and
malformed SPDY or garbage on an upgraded connection ending only that session."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import re
import socket
import ssl
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shoal.apiserver import spdy
from tests.daemon_harness import ShoalInstance, wait_for

pytestmark = pytest.mark.slow

APP = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: busybox
        imagePullPolicy: IfNotPresent
        ports: [{name: http, containerPort: 80}]
        command: ["sh", "-c", "mkdir -p /www && echo hello-from-web > /www/index.html && exec httpd -f -p 80 -h /www"]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  selector: {app: web}
  ports: [{name: web, port: 8080, targetPort: http}]
"""


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    inst = ShoalInstance(tmp_path_factory.mktemp("pfwd") / "state")
    try:
        inst.shoal("image", "bootstrap", "busybox", "--busybox")
        inst.start()
        inst.kubectl("apply", "-f", "-", input=APP)
        inst.kubectl("rollout", "status", "deploy/web", "--timeout=90s")
        inst.kubectl("wait", "--for=condition=Ready", "pod", "-l", "app=web", "--timeout=90s")
        yield inst
    finally:
        inst.stop()
    procs = subprocess.run(["ps", "-ww", "-eo", "args"], capture_output=True, text=True).stdout
    left = [p for p in procs.splitlines() if str(inst.state_dir) in p]
    assert not left, f"left behind after shoal down: {left}"


@pytest.fixture(scope="module")
def pod(daemon) -> str:
    pods = json.loads(daemon.kubectl("get", "pods", "-l", "app=web", "-o", "json").stdout)["items"]
    return pods[0]["metadata"]["name"]


class Forward:
    """A running `kubectl port-forward` (or `shoal port-forward`) and its local port."""

    def __init__(self, argv: list[str], env: dict | None = None) -> None:
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        line = self.proc.stdout.readline()
        match = re.match(r"Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)", line)
        if not match:
            self.proc.kill()
            raise AssertionError(f"no forward: {line!r} {self.proc.stderr.read()}")
        self.port, self.remote = int(match[1]), int(match[2])

    def stop(self) -> tuple[str, str]:
        self.proc.kill()
        out, err = self.proc.communicate(timeout=10)
        return out, err


def kubectl_forward(daemon: ShoalInstance, target: str, ports: str, *, spdy_only: bool = False,
                    verbose: bool = False) -> Forward:
    import os

    env = {**os.environ}
    if spdy_only:
        env["KUBECTL_PORT_FORWARD_WEBSOCKETS"] = "false"
    argv = ["kubectl", "--kubeconfig", str(daemon.kubeconfig), "port-forward", target, ports]
    if verbose:
        argv.append("-v=4")
    return Forward(argv, env)


def http_get(port: int, path: str = "/") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: web\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        return data


def answered(data: bytes) -> bool:
    return data.startswith(b"HTTP/1.") and data.endswith(b"hello-from-web\n")


def fd_count(daemon: ShoalInstance) -> int:
    return len(list(Path(f"/proc/{daemon.pid}/fd").iterdir()))


def test_kubectl_port_forward_to_a_pod_serves_100_requests(daemon, pod):
    fwd = kubectl_forward(daemon, f"pod/{pod}", ":80", verbose=True)
    try:
        started = time.monotonic()
        sequential = [http_get(fwd.port) for _ in range(80)]
        with concurrent.futures.ThreadPoolExecutor(10) as pool:
            concurrent_answers = list(pool.map(lambda _: http_get(fwd.port), range(20)))
        elapsed = time.monotonic() - started
        assert all(answered(a) for a in sequential + concurrent_answers)
        assert elapsed < 30, f"100 forwarded requests took {elapsed:.1f}s"
    finally:
        out, err = fwd.stop()
    assert out.count("Handling connection for") == 100
    # kubectl took the WebSocket tunnel (no fallback to plain SPDY was needed)
    assert "negotiated protocol: portforward.k8s.io" in err and "fallback" not in err


def test_kubectl_plain_spdy_fallback_serves_requests(daemon, pod):
    fwd = kubectl_forward(daemon, f"pod/{pod}", ":80", spdy_only=True)
    try:
        with concurrent.futures.ThreadPoolExecutor(5) as pool:
            answers = list(pool.map(lambda _: http_get(fwd.port), range(20)))
        assert all(answered(a) for a in answers)
    finally:
        fwd.stop()


def test_deployment_and_service_forms_resolve_to_the_pod(daemon):
    for target, ports in (("deploy/web", ":80"), ("deployment/web", ":http"), ("svc/web", ":8080"),
                          ("service/web", ":web")):
        fwd = kubectl_forward(daemon, target, ports)
        try:
            assert fwd.remote == 80, (target, fwd.remote)  # svc 8080 -> targetPort "http" -> 80
            assert answered(http_get(fwd.port)), target
        finally:
            fwd.stop()


def test_clients_vanishing_mid_request_leave_nothing_behind(daemon, pod):
    fwd = kubectl_forward(daemon, f"pod/{pod}", ":80")
    try:
        assert answered(http_get(fwd.port))
        time.sleep(0.5)
        fds_before = fd_count(daemon)
        for _ in range(10):
            with socket.create_connection(("127.0.0.1", fwd.port), timeout=10) as sock:
                sock.sendall(b"GET / HTTP/1.0\r\n")  # half a request, then gone
        assert all(answered(http_get(fwd.port)) for _ in range(10))
    finally:
        fwd.stop()  # kubectl itself vanishes too, with its connection to the API
    wait_for(lambda: fd_count(daemon) <= fds_before + 2, timeout=15,
             what="the daemon's fds back to where they were")
    fwd = kubectl_forward(daemon, f"pod/{pod}", ":80")
    try:
        assert answered(http_get(fwd.port))
    finally:
        fwd.stop()


def test_a_port_the_pod_does_not_listen_on_gives_kubectls_error(daemon, pod):
    good = kubectl_forward(daemon, f"pod/{pod}", ":80")
    bad = kubectl_forward(daemon, f"pod/{pod}", ":81")
    try:
        with socket.create_connection(("127.0.0.1", bad.port), timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
            sock.settimeout(10)
            assert sock.recv(100) == b""
        bad.proc.wait(timeout=15)  # client-go ends the whole forward after an error, as against Kubernetes
        _, err = bad.stop()
        uid = json.loads(daemon.kubectl("get", "pod", pod, "-o", "json").stdout)["metadata"]["uid"]
        assert (f"an error occurred forwarding {bad.port} -> 81: error forwarding port 81 to pod {pod}, "
                f"uid {uid}: failed to connect to localhost:81 inside the pod's network namespace: "
                "connection refused") in err
        assert "lost connection to pod" in err
        assert answered(http_get(good.port))  # the other forward keeps serving
    finally:
        good.stop()
        bad.stop()


def test_shoal_port_forward_pod_deploy_and_service(daemon, pod):
    shoal = [sys.executable, "-m", "shoal.cli.main", "port-forward"]
    for target, ports in ((pod, ":80"), ("deploy/web", ":http"), ("svc/web", ":8080")):
        fwd = Forward([*shoal, target, ports], env=daemon.env)
        try:
            assert fwd.remote == 80
            assert all(answered(http_get(fwd.port)) for _ in range(5)), target
        finally:
            out, _ = fwd.stop()
        assert "Handling connection for" in out
    fwd = Forward([*shoal, pod, ":81"], env=daemon.env)
    try:
        with socket.create_connection(("127.0.0.1", fwd.port), timeout=10) as sock:
            sock.settimeout(10)
            assert sock.recv(100) == b""
    finally:
        _, err = fwd.stop()
    assert "error forwarding port 81 to pod" in err and "connection refused" in err
    r = daemon.shoal("port-forward", "svc/nosuch", "8080", check=False, timeout=30)
    assert r.returncode != 0 and 'services "nosuch" not found' in r.stderr


# -- malformed input on the upgraded connection ---------------------------------------------------


def _tls(daemon: ShoalInstance) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=daemon.ca)


def raw_spdy_upgrade(daemon: ShoalInstance, pod: str, version: str | None = "portforward.k8s.io"):
    sock = _tls(daemon).wrap_socket(socket.create_connection(("127.0.0.1", daemon.api_port), timeout=10),
                                    server_hostname="127.0.0.1")
    lines = [f"POST /api/v1/namespaces/default/pods/{pod}/portforward HTTP/1.1", "Host: 127.0.0.1",
             f"Authorization: Bearer {daemon.token}", "Connection: Upgrade", "Upgrade: SPDY/3.1",
             "Content-Length: 0"]
    if version:
        lines.append(f"X-Stream-Protocol-Version: {version}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    return sock, head


def read_frames(sock: socket.socket, decoder: spdy.FrameDecoder, until) -> list:
    frames = []
    while not any(until(f) for f in frames):
        chunk = sock.recv(65536)
        if not chunk:
            break
        frames += decoder.feed(chunk)
    return frames


def test_plain_spdy_handshake_errors_read_like_kubelets(daemon, pod):
    sock, head = raw_spdy_upgrade(daemon, pod, version=None)
    sock.close()
    assert head.startswith(b"HTTP/1.1 400") and b"X-Stream-Protocol-Version is required" in head
    sock, head = raw_spdy_upgrade(daemon, pod, version="v4.channel.k8s.io")
    sock.close()
    assert head.startswith(b"HTTP/1.1 403") and b"unable to negotiate protocol" in head
    r = daemon.kubectl("get", "--raw", f"/api/v1/namespaces/default/pods/{pod}/portforward", check=False)
    assert r.returncode != 0 and "Upgrade request required" in r.stderr


def test_garbage_on_an_upgraded_connection_ends_only_that_session(daemon, pod):
    fwd = kubectl_forward(daemon, f"pod/{pod}", ":80")
    try:
        assert answered(http_get(fwd.port))
        fds_before = fd_count(daemon)
        # plain SPDY: a frame that does not inflate -> GOAWAY(PROTOCOL_ERROR), then the close
        sock, head = raw_spdy_upgrade(daemon, pod)
        assert head.startswith(b"HTTP/1.1 101") and b"X-Stream-Protocol-Version: portforward.k8s.io" in head
        sock.sendall(struct.pack(">HHI", 0x8003, spdy.SYN_STREAM, 12) + b"\x00\x00\x00\x01" + b"\xff" * 8)
        frames = read_frames(sock, spdy.FrameDecoder(), lambda f: isinstance(f, spdy.GoAway))
        assert spdy.GoAway(0, spdy.GOAWAY_PROTOCOL_ERROR) in frames
        assert sock.recv(100) == b""
        sock.close()
        # plain SPDY: an oversized frame header and pure garbage
        for junk in (struct.pack(">II", 1, 0xFFFFFF), b"\x80\x02" + b"\x00" * 30, b"GET / HTTP/1.1\r\n\r\n"):
            sock, head = raw_spdy_upgrade(daemon, pod)
            assert head.startswith(b"HTTP/1.1 101")
            sock.sendall(junk)
            frames = read_frames(sock, spdy.FrameDecoder(), lambda f: isinstance(f, spdy.GoAway))
            assert any(isinstance(f, spdy.GoAway) for f in frames), junk
            sock.close()
        # WebSocket tunnel: garbage in a binary message, then a text message
        asyncio.run(_tunnel_garbage(daemon, pod))
        assert all(answered(http_get(fwd.port)) for _ in range(5))  # kubectl's session was untouched
        wait_for(lambda: fd_count(daemon) <= fds_before + 2, timeout=15,
                 what="the daemon's fds back to where they were")
    finally:
        fwd.stop()


async def _tunnel_garbage(daemon: ShoalInstance, pod: str) -> None:
    import aiohttp

    url = f"{daemon.url}/api/v1/namespaces/default/pods/{pod}/portforward"
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {daemon.token}"}) as http:
        async with http.ws_connect(url, ssl=_tls(daemon), protocols=["SPDY/3.1+portforward.k8s.io"]) as ws:
            assert ws.protocol == "SPDY/3.1+portforward.k8s.io"
            await ws.send_bytes(b"\x80\x03\x00\x06\x00\x00\x00\x04\x00\x00\x00\x01")  # a PING: echoed
            await ws.send_bytes(b"\xff" * 64)  # control frame of version 0x7fff: refused
            got = b""
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.BINARY:
                    got += msg.data
            frames = spdy.FrameDecoder().feed(got)
            assert frames[0] == spdy.Ping(1) and isinstance(frames[-1], spdy.GoAway)
        async with http.ws_connect(url, ssl=_tls(daemon), protocols=["SPDY/3.1+portforward.k8s.io"]) as ws:
            await ws.send_str("not binary")
            msg = await asyncio.wait_for(ws.receive(), 10)
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.BINARY)
