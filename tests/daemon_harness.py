"""Start and stop a real shoal daemon for end-to-end tests, with ranges of its own.

Each instance gets a fresh state dir, a free API port, its own bridge name, pod and
service ranges inside 10.230.0.0/15 and its own iptables chain prefix, so instances never
collide with each other or with a user's shoal. `stop()` runs `shoal down`, which must
leave nothing behind.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

SHOAL = [sys.executable, "-m", "shoal.cli.main"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ShoalInstance:
    _counter = 0

    def __init__(self, state_dir: Path) -> None:
        ShoalInstance._counter += 1
        n = (os.getpid() * 7 + ShoalInstance._counter) % 250 + 1
        tag = secrets.token_hex(2)
        self.state_dir = state_dir
        self.api_port = free_port()
        self.env = {
            **os.environ,
            "SHOAL_STATE_DIR": str(state_dir),
            "SHOAL_API_PORT": str(self.api_port),
            "SHOAL_BRIDGE": f"shoala{tag}",
            "SHOAL_POD_CIDR": f"10.230.{n}.0/24",
            "SHOAL_SERVICE_CIDR": f"10.231.{n}.0/24",
            "SHOAL_CHAIN_PREFIX": f"SHOALA{tag.upper()}",
            "SHOAL_NODE_PORT_RANGE": f"{31000 + n * 3}-{31000 + n * 3 + 2}",
        }
        self.kubeconfig = state_dir / "kubeconfig"

    def shoal(self, *args: str, input: str | None = None, check: bool = True,
              timeout: float = 120) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([*SHOAL, *args], env=self.env, input=input, text=True,
                                capture_output=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(
                f"shoal {' '.join(args)} exited {result.returncode}\n"
                f"stdout: {result.stdout}\nstderr: {result.stderr}")
        return result

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(["kubectl", "--kubeconfig", str(self.kubeconfig), *args],
                                input=input, text=True, capture_output=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} exited {result.returncode}\n"
                f"stdout: {result.stdout}\nstderr: {result.stderr}")
        return result

    def start(self) -> "ShoalInstance":
        self.shoal("up", "--detach")
        return self

    def stop(self) -> None:
        self.shoal("down", check=False)

    @property
    def pid(self) -> int | None:
        try:
            return int((self.state_dir / "run" / "shoal.pid").read_text())
        except (FileNotFoundError, ValueError):
            return None

    @property
    def token(self) -> str:
        return (self.state_dir / "pki" / "token").read_text().strip()

    @property
    def ca(self) -> str:
        return str(self.state_dir / "pki" / "ca.crt")

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"


def wait_for(predicate: Callable[[], Any], timeout: float = 60, interval: float = 0.5,
             what: str = "condition") -> Any:
    """Poll until predicate() is truthy; return its value or fail naming what and the
    last value seen."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def get_json(shoal: ShoalInstance, *args: str) -> dict:
    """`shoal get ARGS -o json` as a dict."""
    return json.loads(shoal.shoal("get", *args, "-o", "json").stdout)
