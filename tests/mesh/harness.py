"""End-to-end harness: pod-like network namespaces, sidecar Envoys, test apps.

Topology (all names `shoal-mt-<hex>-*`, nothing in the root netns but the names):

    netns hub:  bridge shoalm<hex>, one veth per pod
    netns a, b, c: eth0 10.211.<n>.2/.3/.4 (/24), default route via eth0, so a
    "Service VIP" in 10.212.<n>.0/24 is routable (capture redirects it before it leaves)

Sidecars run the real Envoy as UID 1337 in their pod netns with shoal's bootstrap and
capture rules, talking ADS to the test's XdsServer over a Unix socket. Every process
and netns is removed by `close()`, which fixtures call in their finalizers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from shoal.mesh import bootstrap, capture
from shoal.mesh.translate.model import ProxyIdentity

HERE = Path(__file__).parent


async def run(*cmd: str, check: bool = True, input: bytes | None = None,
              timeout: float = 20) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(input), timeout)
    text = out.decode(errors="replace")
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {text}")
    return proc.returncode or 0, text


class Topology:
    def __init__(self) -> None:
        self.tag = secrets.token_hex(3)
        self.subnet = int(self.tag[:2], 16)  # 10.211.<subnet>.0/24, 10.212.<subnet>.0/24
        self.hub = f"shoal-mt-{self.tag}-hub"
        self.bridge = f"shoalm{self.tag}"
        self.namespaces: list[str] = []
        self.pods: dict[str, tuple[str, str]] = {}
        """pod short name -> (netns, ip)."""

    def netns(self, pod: str) -> str:
        return self.pods[pod][0]

    def ip(self, pod: str) -> str:
        return self.pods[pod][1]

    def vip(self, host: int = 10) -> str:
        return f"10.212.{self.subnet}.{host}"

    async def create(self, pods: list[str]) -> None:
        await run("ip", "netns", "add", self.hub)
        self.namespaces.append(self.hub)
        hub = ("ip", "netns", "exec", self.hub)
        await run(*hub, "ip", "link", "add", self.bridge, "type", "bridge")
        await run(*hub, "ip", "link", "set", self.bridge, "up")
        await run(*hub, "ip", "link", "set", "lo", "up")
        for index, pod in enumerate(pods):
            ns, ip = f"shoal-mt-{self.tag}-{pod}", f"10.211.{self.subnet}.{index + 2}"
            host_if, pod_if = f"smt{self.tag}{pod}", f"smp{self.tag}{pod}"
            await run("ip", "netns", "add", ns)
            self.namespaces.append(ns)
            self.pods[pod] = (ns, ip)
            await run(*hub, "ip", "link", "add", host_if, "type", "veth", "peer", "name", pod_if)
            await run(*hub, "ip", "link", "set", pod_if, "netns", ns)
            await run(*hub, "ip", "link", "set", host_if, "master", self.bridge, "up")
            inside = ("ip", "netns", "exec", ns)
            await run(*inside, "ip", "link", "set", pod_if, "name", "eth0")
            await run(*inside, "ip", "addr", "add", f"{ip}/24", "dev", "eth0")
            await run(*inside, "ip", "link", "set", "eth0", "up")
            await run(*inside, "ip", "link", "set", "lo", "up")
            await run(*inside, "ip", "route", "add", "default", "dev", "eth0")

    async def close(self) -> None:
        for ns in reversed(self.namespaces):
            await run("ip", "netns", "del", ns, check=False)
        self.namespaces.clear()


class Processes:
    """Background processes in netns; all killed (whole session) on close()."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[asyncio.subprocess.Process] = []

    async def start(self, name: str, *cmd: str) -> asyncio.subprocess.Process:
        log = open(self.workdir / f"{name}.log", "ab")
        proc = await asyncio.create_subprocess_exec(
            *cmd, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
            start_new_session=True)
        log.close()
        self.procs.append(proc)
        return proc

    async def stop(self, proc: asyncio.subprocess.Process) -> None:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except asyncio.TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        if proc in self.procs:
            self.procs.remove(proc)

    async def close(self) -> None:
        for proc in list(self.procs):
            await self.stop(proc)


def make_workdir() -> Path:
    """A directory UID 1337 can traverse (pytest's tmp_path is root-only)."""
    path = Path(tempfile.mkdtemp(prefix="shoal-mt-", dir="/tmp"))
    path.chmod(0o755)
    return path


def remove_workdir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


async def start_sidecar(procs: Processes, topo: Topology, pod: str, identity: ProxyIdentity,
                        socket: Path, uid: int = 1337) -> asyncio.subprocess.Process:
    """Capture rules + Envoy as UID 1337 in the pod's netns."""
    ns = topo.netns(pod)
    await capture.apply_capture(ns, capture.render_capture_rules(
        capture.CaptureOptions(proxy_uid=uid, proxy_gid=uid)))
    path = procs.workdir / f"bootstrap-{pod}.json"
    path.write_text(bootstrap.bootstrap_json(bootstrap.build_bootstrap(identity, socket)))
    path.chmod(0o644)
    return await procs.start(
        f"envoy-{pod}", "ip", "netns", "exec", ns,
        "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
        *bootstrap.envoy_command(path, concurrency=1, log_level="warning", drain_seconds=1))


async def start_app(procs: Processes, topo: Topology, pod: str, port: int, name: str):
    return await procs.start(f"app-{pod}", "ip", "netns", "exec", topo.netns(pod),
                             sys.executable, str(HERE / "echo_server.py"), str(port), name)


async def curl(topo: Topology, pod: str, url: str, timeout: float = 5) -> tuple[int, str]:
    """(curl exit code, body) from inside the pod's netns."""
    return await run("ip", "netns", "exec", topo.netns(pod), "curl", "-sS", "--max-time",
                     str(timeout), url, check=False, timeout=timeout + 5)


async def admin(topo: Topology, pod: str, path: str) -> str:
    code, body = await curl(topo, pod, f"http://127.0.0.1:15000{path}")
    if code != 0:
        raise RuntimeError(f"admin {path} in {pod}: curl exit {code}: {body}")
    return body


async def stats(topo: Topology, pod: str) -> dict[str, int]:
    """Envoy counters and gauges of the pod's sidecar."""
    body = await admin(topo, pod, "/stats?format=json")
    result = {}
    for entry in json.loads(body)["stats"]:
        if isinstance(entry.get("value"), int):
            result[entry["name"]] = entry["value"]
    return result


async def wait_for(predicate, timeout: float = 15, interval: float = 0.1):
    """Await an async predicate until it returns a truthy value; that value, else raise."""
    deadline = asyncio.get_running_loop().time() + timeout
    last = None
    while True:
        last = await predicate()
        if last:
            return last
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")
        await asyncio.sleep(interval)
