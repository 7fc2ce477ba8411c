"""Probes and lifecycle handlers: httpGet, tcpSocket, exec, grpc — one attempt each.

`run_handler(handler, ...)` performs one probe attempt and returns a `ProbeResult`
(success, message); the message is what the kubelet puts into `Unhealthy` events
(`Liveness probe failed: HTTP probe failed with statuscode: 500`). httpGet and tcpSocket
connect from the host to the pod IP (the host routes to the pod bridge) — or, for meshed
pods, from inside the pod's netns to 127.0.0.1, which the sidecar's capture leaves alone
(a socket made in the netns by a thread that setns(2)s in and back); HTTP is spoken with
h11. exec runs through the runtime; grpc calls grpc.health.v1.Health/Check with grpcio
(request/response are one-field protobuf messages, encoded by hand).

`ProbeLoop` runs one probe of one container instance on its schedule (initialDelaySeconds,
periodSeconds, timeoutSeconds, successThreshold, failureThreshold; Kubernetes defaults
10/1/1/3 when absent) and reports each result transition through a callback. It is an
asyncio task owned by the pod worker and cancelled when the instance stops.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any, Awaitable, Callable, Mapping, Protocol

import ctypes
import os
import socket
import ssl

import h11

log = logging.getLogger(__name__)
Obj = Mapping[str, Any]
CLONE_NEWNET = 0x40000000


class ExecRunner(Protocol):
    async def __call__(self, args: list[str], timeout: float) -> tuple[int, bytes, bytes]: ...


@dataclasses.dataclass(frozen=True)
class ProbeResult:
    success: bool
    message: str = ""


def resolve_port(port: Any, container: Obj) -> int:
    """A probe port by number or by the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    if isinstance(port, str) and port.isdigit():
        return int(port)
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    raise ValueError(f"port {port!r}: no container port has this name")


def _socket_in_netns(netns_path: str) -> socket.socket:
    """A TCP socket created inside the network namespace at `netns_path`. Runs in a worker
    thread: setns(2) moves only the calling thread, which is moved back before returning;
    the socket stays in the namespace it was made in."""
    libc = ctypes.CDLL(None, use_errno=True)
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(netns_path, os.O_RDONLY)
        try:
            if libc.setns(target, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"setns {netns_path}: {os.strerror(err)}")
            try:
                return socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            finally:
                if libc.setns(own, CLONE_NEWNET) != 0:  # pragma: no cover - would poison the thread
                    os._exit(70)
        finally:
            os.close(target)
    finally:
        os.close(own)


async def open_stream(host: str, port: int, timeout: float, *, netns: str | None = None,
                      ssl_context: ssl.SSLContext | None = None
                      ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to host:port from the host, or, with `netns`, from inside that
    network namespace (used for meshed pods: probing 127.0.0.1 in the pod bypasses the
    sidecar's inbound capture, as Istio's agent does)."""
    if netns is None:
        return await asyncio.wait_for(asyncio.open_connection(host, port, ssl=ssl_context), timeout)
    sock = await asyncio.to_thread(_socket_in_netns, netns)
    try:
        sock.setblocking(False)
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, (host, port)), timeout)
        return await asyncio.wait_for(asyncio.open_connection(
            sock=sock, ssl=ssl_context, server_hostname=host if ssl_context else None), timeout)
    except BaseException:
        sock.close()
        raise


async def _http_get(spec: Obj, host: str, port: int, timeout: float, netns: str | None) -> ProbeResult:
    scheme = (spec.get("scheme") or "HTTP").lower()
    path = spec.get("path") or "/"
    path = path if path.startswith("/") else "/" + path
    target = spec.get("host") or host
    headers = [("Host", f"{target}:{port}"), ("User-Agent", "kube-probe/1.30"), ("Accept", "*/*"),
               ("Connection", "close")]
    custom = [(h["name"], h["value"]) for h in spec.get("httpHeaders") or []]
    names = {n.lower() for n, _ in custom}
    headers = [h for h in headers if h[0].lower() not in names] + custom
    url = f"{scheme}://{target}:{port}{path}"
    context = None
    if scheme == "https":  # the kubelet does not verify probe certificates
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    writer = None
    try:
        reader, writer = await open_stream(target, port, timeout, netns=netns, ssl_context=context)
        conn = h11.Connection(h11.CLIENT)
        writer.write(conn.send(h11.Request(method="GET", target=path, headers=headers))
                     + conn.send(h11.EndOfMessage()))
        await asyncio.wait_for(writer.drain(), timeout)
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await asyncio.wait_for(reader.read(65536), timeout))
                continue
            if isinstance(event, h11.Response):
                code = event.status_code
                break
            if isinstance(event, h11.ConnectionClosed):
                return ProbeResult(False, f'Get "{url}": EOF')
    except asyncio.TimeoutError:
        return ProbeResult(False, f'Get "{url}": context deadline exceeded (Client.Timeout exceeded while awaiting headers)')
    except (OSError, h11.ProtocolError, ssl.SSLError) as exc:
        return ProbeResult(False, f'Get "{url}": {getattr(exc, "strerror", None) or exc or type(exc).__name__}')
    finally:
        if writer is not None:
            writer.close()
    if 200 <= code < 400:
        return ProbeResult(True)
    return ProbeResult(False, f"HTTP probe failed with statuscode: {code}")


async def _tcp(host: str, port: int, timeout: float, netns: str | None) -> ProbeResult:
    try:
        _, writer = await open_stream(host, port, timeout, netns=netns)
    except asyncio.TimeoutError:
        return ProbeResult(False, f"dial tcp {host}:{port}: i/o timeout")
    except OSError as exc:
        return ProbeResult(False, f"dial tcp {host}:{port}: {exc.strerror or exc}")
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return ProbeResult(True)


async def _grpc(host: str, port: int, service: str, timeout: float) -> ProbeResult:
    import grpc  # imported lazily: only pods with grpc probes pay for it

    svc = service.encode()
    request = (b"\x0a" + bytes([len(svc)]) + svc) if svc else b""
    try:
        async with grpc.aio.insecure_channel(f"{host}:{port}") as channel:
            call = channel.unary_unary("/grpc.health.v1.Health/Check",
                                       request_serializer=lambda b: b, response_deserializer=lambda b: b)
            reply = await call(request, timeout=timeout)
    except grpc.aio.AioRpcError as exc:
        return ProbeResult(False, f"failed to connect service {host}:{port} within {timeout:g}s: {exc.code().name}")
    # HealthCheckResponse { ServingStatus status = 1; } SERVING = 1
    status = reply[1] if len(reply) >= 2 and reply[0] == 0x08 else 0
    if status == 1:
        return ProbeResult(True)
    names = {0: "UNKNOWN", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}
    return ProbeResult(False, f"service unhealthy (responded with \"{names.get(status, status)}\")")


async def run_handler(handler: Obj, *, host: str, container: Obj, timeout: float,
                      exec_runner: ExecRunner, netns: str | None = None) -> ProbeResult:
    """One attempt of a probe or lifecycle handler. With `netns`, httpGet and tcpSocket
    connect from inside that network namespace (host is then usually 127.0.0.1)."""
    try:
        if handler.get("exec") is not None:
            cmd = list(handler["exec"].get("command") or [])
            try:
                code, out, err = await exec_runner(cmd, timeout)
            except asyncio.TimeoutError:
                return ProbeResult(False, f"command {cmd!r} timed out")
            if code == 0:
                return ProbeResult(True)
            text = (out + err).decode(errors="replace").strip()
            return ProbeResult(False, text or f"command {cmd!r} exited with {code}")
        if handler.get("httpGet") is not None:
            spec = handler["httpGet"]
            return await _http_get(spec, host, resolve_port(spec.get("port"), container), timeout, netns)
        if handler.get("tcpSocket") is not None:
            spec = handler["tcpSocket"]
            return await _tcp(spec.get("host") or host, resolve_port(spec.get("port"), container), timeout, netns)
        if handler.get("grpc") is not None:
            spec = handler["grpc"]
            return await _grpc(host, int(spec["port"]), spec.get("service") or "", timeout)
        if handler.get("sleep") is not None:
            await asyncio.sleep(float(handler["sleep"].get("seconds", 0)))
            return ProbeResult(True)
    except ValueError as exc:
        return ProbeResult(False, str(exc))
    except Exception as exc:  # a probe never crashes its loop; the failure is the result
        log.debug("probe error", exc_info=True)
        return ProbeResult(False, f"{type(exc).__name__}: {exc}")
    return ProbeResult(False, "probe has no handler (exec, httpGet, tcpSocket, grpc)")


@dataclasses.dataclass(frozen=True)
class ProbeTiming:
    initial_delay: float = 0.0
    period: float = 10.0
    timeout: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3

    @classmethod
    def of(cls, probe: Obj) -> "ProbeTiming":
        return cls(
            initial_delay=float(probe.get("initialDelaySeconds") or 0),
            period=float(probe.get("periodSeconds") or 10),
            timeout=float(probe.get("timeoutSeconds") or 1),
            success_threshold=int(probe.get("successThreshold") or 1),
            failure_threshold=int(probe.get("failureThreshold") or 3),
        )


class ProbeLoop:
    """Runs one probe on schedule; calls `on_change(result)` when the verdict flips
    (after the thresholds), starting from `initial` (False for readiness/startup)."""

    def __init__(self, kind: str, probe: Obj, *, host: str, container: Obj, exec_runner: ExecRunner,
                 on_change: Callable[[str, bool, str], Awaitable[None]], time_scale: float = 1.0,
                 netns: str | None = None, on_failure: Callable[[str, str], None] | None = None) -> None:
        """on_failure(kind, message): every failed attempt (the kubelet's Unhealthy event
        is per attempt, aggregated by count); on_change: verdict transitions only."""
        self.kind = kind  # "liveness" | "readiness" | "startup"
        self.probe = probe
        self.timing = ProbeTiming.of(probe)
        self.host = host
        self.container = container
        self.exec_runner = exec_runner
        self.on_change = on_change
        self.time_scale = time_scale
        self.netns = netns
        self.on_failure = on_failure
        self.verdict: bool | None = None
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"probe-{self.kind}")

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()

    async def _run(self) -> None:
        t = self.timing
        await asyncio.sleep(t.initial_delay * self.time_scale)
        successes = failures = 0
        while True:
            result = await run_handler(self.probe, host=self.host, container=self.container,
                                       timeout=t.timeout, exec_runner=self.exec_runner, netns=self.netns)
            if result.success:
                successes, failures = successes + 1, 0
                if self.verdict is not True and successes >= t.success_threshold:
                    self.verdict = True
                    await self.on_change(self.kind, True, "")
            else:
                successes, failures = 0, failures + 1
                if self.on_failure is not None:
                    self.on_failure(self.kind, result.message)
                if failures >= t.failure_threshold and self.verdict is not False:
                    self.verdict = False
                    await self.on_change(self.kind, False, result.message)
                    if self.kind != "readiness":
                        failures = 0
            if self.kind == "startup" and self.verdict is True:
                return  # a startup probe stops once it succeeded
            await asyncio.sleep(t.period * self.time_scale)
