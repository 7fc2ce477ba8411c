"""Settings: every path, port and address range shoal uses, in one frozen value.

Two shoal instances can run side by side (tests do this) as long as their settings differ
in state dir, ports, ranges and bridge name. Values come from, in order: explicit
arguments, environment variables `SHOAL_*`, then the defaults below.

The state dir layout is decided here and nowhere else:

    <state>/store.db           SQLite revision log (shoal.store)
    <state>/pki/               API CA, serving cert, token; mesh CA (shoal.apiserver, shoal.mesh)
    <state>/kubeconfig         written by `shoal up` for kubectl and the kubernetes client
    <state>/images/            content store, layer store, snapshots (shoal.images)
    <state>/containers/        runtime bundles, shim state, logs (shoal.runtime)
    <state>/pods/              per-pod volumes, resolv.conf, hosts (shoal.node)
    <state>/volumes/           local-path PersistentVolumes
    <state>/run/               sockets and pid files (daemon, xDS; /run/shoal/<hash> when
                               the state dir is too long for Unix socket paths)
    <state>/network/           sandbox records, ipc/uts namespace files (shoal.network)
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import json
import os
from pathlib import Path

from shoal.fsutil import write_atomic

DEFAULT_STATE_DIR = "/var/lib/shoal"
SOCKET_DIR_MAX = 60
"""Longest run dir that still leaves room for `xds/<pod id>/xds.sock` in 107 bytes."""


@dataclasses.dataclass(frozen=True)
class Settings:
    state_dir: Path = Path(DEFAULT_STATE_DIR)
    """Root of all persistent state. Env: SHOAL_STATE_DIR."""

    api_host: str = "127.0.0.1"
    """Address the API server binds; loopback only unless changed. Env: SHOAL_API_HOST."""

    api_port: int = 6443
    """HTTPS port of the API server. Env: SHOAL_API_PORT."""

    pod_cidr: str = "10.42.0.0/16"
    """Range pod IPs are allocated from. Env: SHOAL_POD_CIDR."""

    service_cidr: str = "10.43.0.0/16"
    """Range ClusterIPs are allocated from. Env: SHOAL_SERVICE_CIDR."""

    bridge: str = "shoal0"
    """Linux bridge the pods' veths attach to. Env: SHOAL_BRIDGE."""

    node_port_range: tuple[int, int] = (30000, 32767)
    """NodePort range (inclusive). Env: SHOAL_NODE_PORT_RANGE as 'LOW-HIGH'."""

    dns_port: int = 53
    """UDP/TCP port of the cluster DNS server on the bridge address. Env: SHOAL_DNS_PORT."""

    cluster_domain: str = "cluster.local"
    """DNS suffix of services; also the SPIFFE trust domain."""

    node_name: str = "shoal"
    """Name of the single node (spec.nodeName of scheduled pods). Env: SHOAL_NODE_NAME."""

    chain_prefix: str = "SHOAL"
    """Prefix of every iptables chain shoal owns; tests use their own. Env: SHOAL_CHAIN_PREFIX."""

    # -- derived paths -------------------------------------------------------------------

    @property
    def store_path(self) -> Path:
        return self.state_dir / "store.db"

    @property
    def pki_dir(self) -> Path:
        return self.state_dir / "pki"

    @property
    def kubeconfig_path(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def images_dir(self) -> Path:
        return self.state_dir / "images"

    @property
    def containers_dir(self) -> Path:
        return self.state_dir / "containers"

    @property
    def pods_dir(self) -> Path:
        return self.state_dir / "pods"

    @property
    def volumes_dir(self) -> Path:
        return self.state_dir / "volumes"

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    @property
    def netns_prefix(self) -> str:
        """Prefix of this instance's pod network namespaces (`shoal0-3f2a9c81d0e4`): the
        bridge name is unique per instance, so `shoal down` can sweep what is its own."""
        return f"{self.bridge}-"

    @property
    def socket_dir(self) -> Path:
        """Where the daemon's Unix sockets live (the mesh's xDS sockets). A socket path is
        limited to 107 bytes, so when the state dir is long this is a short directory
        under /run/shoal named by a hash of the state dir (removed by `shoal down`)."""
        if len(str(self.run_dir)) <= SOCKET_DIR_MAX:
            return self.run_dir
        return Path("/run/shoal") / hashlib.sha256(str(self.state_dir).encode()).hexdigest()[:16]

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "shoal.pid"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "shoal.log"

    @property
    def settings_file(self) -> Path:
        return self.state_dir / "settings.json"

    @property
    def api_url(self) -> str:
        return f"https://{self.api_host}:{self.api_port}"

    def validate(self) -> None:
        """Raise ValueError naming the setting that is malformed."""
        for name in ("pod_cidr", "service_cidr"):
            try:
                ipaddress.ip_network(getattr(self, name))
            except ValueError as exc:
                raise ValueError(f"{name}: expected a CIDR like 10.42.0.0/16: {exc}") from None
        if ipaddress.ip_network(self.pod_cidr).overlaps(ipaddress.ip_network(self.service_cidr)):
            raise ValueError("pod_cidr and service_cidr must not overlap")
        if len(self.bridge) > 15:
            raise ValueError(f"bridge: interface names are at most 15 characters, got {self.bridge!r}")
        low, high = self.node_port_range
        if not 0 < low <= high < 65536:
            raise ValueError(f"node_port_range: expected LOW-HIGH within 1-65535, got {low}-{high}")

    def save(self) -> None:
        """Record these settings in the state dir, so every later command on this state
        dir (`shoal get`, `shoal down`, ...) uses the ports and ranges the daemon uses."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        data = dataclasses.asdict(self)
        data["state_dir"] = str(self.state_dir)
        write_atomic(self.settings_file, json.dumps(data, indent=2) + "\n")

    @classmethod
    def from_env(cls, **overrides: object) -> "Settings":
        """Settings in this order of precedence: explicit overrides (non-None), SHOAL_*
        environment variables, the settings the daemon saved in the state dir, defaults."""
        env = os.environ
        values: dict[str, object] = {}
        state_dir = overrides.get("state_dir") or env.get("SHOAL_STATE_DIR") or DEFAULT_STATE_DIR
        saved = Path(str(state_dir)) / "settings.json"
        if saved.is_file():
            try:
                stored = json.loads(saved.read_text())
            except ValueError:
                raise ValueError(f"{saved}: not valid JSON; remove it or fix it") from None
            names = {f.name for f in dataclasses.fields(cls)}
            values.update({k: v for k, v in stored.items() if k in names})
            if "node_port_range" in values:
                values["node_port_range"] = tuple(values["node_port_range"])  # type: ignore[arg-type]
        if "SHOAL_STATE_DIR" in env:
            values["state_dir"] = Path(env["SHOAL_STATE_DIR"])
        for key, field in (
            ("SHOAL_API_HOST", "api_host"),
            ("SHOAL_POD_CIDR", "pod_cidr"),
            ("SHOAL_SERVICE_CIDR", "service_cidr"),
            ("SHOAL_BRIDGE", "bridge"),
            ("SHOAL_NODE_NAME", "node_name"),
            ("SHOAL_CHAIN_PREFIX", "chain_prefix"),
        ):
            if key in env:
                values[field] = env[key]
        for key, field in (("SHOAL_API_PORT", "api_port"), ("SHOAL_DNS_PORT", "dns_port")):
            if key in env:
                values[field] = int(env[key])
        if "SHOAL_NODE_PORT_RANGE" in env:
            low, _, high = env["SHOAL_NODE_PORT_RANGE"].partition("-")
            values["node_port_range"] = (int(low), int(high))
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "state_dir" in values:
            values["state_dir"] = Path(values["state_dir"]).absolute()  # type: ignore[arg-type]
        settings = cls(**values)  # type: ignore[arg-type]
        settings.validate()
        return settings
