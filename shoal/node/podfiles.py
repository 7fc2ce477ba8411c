"""A pod's own files and host-network sandbox: /etc/resolv.conf by dnsPolicy and
dnsConfig, the pod hostname, `HostSandbox` for hostNetwork pods (pure), and
`write_etc_files` (the only I/O: rewrites a file only when its text changed; the
worker calls it in a thread).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping

from shoal.fsutil import write_atomic

Obj = Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class HostSandbox:
    """A hostNetwork pod's "sandbox": the host's network; IPC and UTS of its own."""

    ip: str
    hostname: str
    netns_path: str = "host"
    ipc_ns_path: str | None = None
    uts_ns_path: str | None = None


def resolv_conf(pod: Obj, cluster_first: str) -> str:
    """dnsPolicy: ClusterFirst (default; hostNetwork pods too only with
    ClusterFirstWithHostNet), Default = the host's resolv.conf, None = dnsConfig only."""
    spec = pod["spec"]
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    if policy == "Default" or (policy == "ClusterFirst" and spec.get("hostNetwork")):
        try:
            text = Path("/etc/resolv.conf").read_text()
        except OSError:
            text = ""
    elif policy == "None":
        text = ""
    else:
        text = cluster_first
    config = spec.get("dnsConfig") or {}
    extra = []
    if config.get("nameservers"):
        extra.append("nameserver " + "\nnameserver ".join(config["nameservers"]))
    if config.get("searches"):
        extra.append("search " + " ".join(config["searches"]))
    if config.get("options"):
        extra.append("options " + " ".join(
            o["name"] + (f":{o['value']}" if o.get("value") else "") for o in config["options"]))
    return text + ("\n".join(extra) + "\n" if extra else "")


def hostname(pod: Obj) -> str:
    return (pod["spec"].get("hostname") or pod["metadata"]["name"])[:63].rstrip("-.") or "pod"


def etc_files(pod: Obj, hosts: str, cluster_resolv_conf: str) -> dict[str, str]:
    """The texts of the pod's /etc/hosts, /etc/resolv.conf and /etc/hostname by file name."""
    return {"hosts": hosts, "resolv.conf": resolv_conf(pod, cluster_resolv_conf), "hostname": hostname(pod) + "\n"}


def write_etc_files(etc: Path, files: Mapping[str, str]) -> dict[str, Path]:
    """Write the files into `etc` (unchanged ones are left alone); their container paths
    (`/etc/NAME`) -> host paths."""
    etc.mkdir(parents=True, exist_ok=True)
    out = {}
    for fname, text in files.items():
        path = etc / fname
        if not path.exists() or path.read_text() != text:
            write_atomic(path, text)
        out[f"/etc/{fname}"] = path
    return out
