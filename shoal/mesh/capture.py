"""Transparent traffic capture in a pod netns: iptables rules, rendered purely, applied once.

`render_capture_rules(...)` returns iptables-restore text for the nat table, the same
chains and order as Istio's `istio-iptables` (tools/istio-iptables):

    PREROUTING -> ISTIO_INBOUND: excluded ports RETURN, else ISTIO_IN_REDIRECT (-> 15006)
    OUTPUT     -> ISTIO_OUTPUT:
        from 127.0.0.6 on lo            RETURN   (inbound passthrough from the sidecar)
        proxy UID to non-127.0.0.1 on lo -> ISTIO_IN_REDIRECT (app calling its own pod IP)
        non-proxy UID on lo             RETURN   (app talking to itself)
        proxy UID                       RETURN   (the sidecar's own traffic is never captured)
        (the same three rules for the proxy GID)
        to 127.0.0.1                    RETURN
        excluded outbound ports / CIDRs RETURN
        else ISTIO_REDIRECT (-> 15001)

Ports 15000-15090 (admin, outbound, inbound, readiness, stats) are never captured
inbound, so the node agent's probe reaches :15021 directly. Exclusions come from the
pod annotations `traffic.sidecar.istio.io/excludeOutboundPorts`, `excludeInboundPorts`
and `excludeOutboundIPRanges` (comma-separated), via `capture_options_from_pod`.

The rules replace the whole nat table of the pod netns: capture owns it (a pod netns
has no other nat rules; applying twice gives the same table). IPv4 only.

`apply_capture(netns, rules)` is the only I/O: `ip netns exec NETNS iptables-restore`.
Seam for the node agent: call it when the sandbox of a meshed pod is created, before
any container starts, so no privileged init container is needed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
from typing import Any

from shoal.mesh.errors import CaptureError
from shoal.mesh.translate import names

EXCLUDE_OUTBOUND_PORTS = "traffic.sidecar.istio.io/excludeOutboundPorts"
EXCLUDE_INBOUND_PORTS = "traffic.sidecar.istio.io/excludeInboundPorts"
EXCLUDE_OUTBOUND_IP_RANGES = "traffic.sidecar.istio.io/excludeOutboundIPRanges"
PROXY_PORT_RANGE = (15000, 15090)


@dataclasses.dataclass(frozen=True)
class CaptureOptions:
    proxy_uid: int = 1337
    proxy_gid: int = 1337
    outbound_port: int = names.OUTBOUND_PORT
    inbound_port: int = names.INBOUND_PORT
    exclude_inbound_ports: tuple[int, ...] = ()
    exclude_outbound_ports: tuple[int, ...] = ()
    exclude_outbound_cidrs: tuple[str, ...] = ()
    chain_prefix: str = "ISTIO"
    """Chain names (ISTIO_INBOUND, ...); Istio's, so familiar tooling reads them."""


def _ports(value: str, annotation: str) -> tuple[int, ...]:
    ports = []
    for item in filter(None, (v.strip() for v in value.split(","))):
        if not item.isdigit() or not 0 < int(item) < 65536:
            raise CaptureError(f"metadata.annotations[{annotation}]: {item!r} is not a port 1-65535")
        ports.append(int(item))
    return tuple(sorted(set(ports)))


def _cidrs(value: str, annotation: str) -> tuple[str, ...]:
    cidrs = []
    for item in filter(None, (v.strip() for v in value.split(","))):
        try:
            net = ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise CaptureError(f"metadata.annotations[{annotation}]: {item!r} is not a CIDR") from None
        if net.version == 4:
            cidrs.append(str(net))
    return tuple(cidrs)


def capture_options_from_pod(pod: dict[str, Any], proxy_uid: int = 1337) -> CaptureOptions:
    """Options from the pod's traffic.sidecar.istio.io annotations; CaptureError names
    the annotation and value that is malformed."""
    annotations = pod.get("metadata", {}).get("annotations") or {}
    return CaptureOptions(
        proxy_uid=proxy_uid,
        proxy_gid=proxy_uid,
        exclude_inbound_ports=_ports(annotations.get(EXCLUDE_INBOUND_PORTS, ""),
                                     EXCLUDE_INBOUND_PORTS),
        exclude_outbound_ports=_ports(annotations.get(EXCLUDE_OUTBOUND_PORTS, ""),
                                      EXCLUDE_OUTBOUND_PORTS),
        exclude_outbound_cidrs=_cidrs(annotations.get(EXCLUDE_OUTBOUND_IP_RANGES, ""),
                                      EXCLUDE_OUTBOUND_IP_RANGES),
    )


def render_capture_rules(options: CaptureOptions = CaptureOptions()) -> str:
    """iptables-restore input for the nat table of a pod netns."""
    p = options.chain_prefix
    inbound, in_redirect = f"{p}_INBOUND", f"{p}_IN_REDIRECT"
    output, redirect = f"{p}_OUTPUT", f"{p}_REDIRECT"
    uid, gid = options.proxy_uid, options.proxy_gid
    lines = [
        "*nat",
        ":PREROUTING ACCEPT [0:0]",
        ":INPUT ACCEPT [0:0]",
        ":OUTPUT ACCEPT [0:0]",
        ":POSTROUTING ACCEPT [0:0]",
        f":{inbound} - [0:0]",
        f":{in_redirect} - [0:0]",
        f":{output} - [0:0]",
        f":{redirect} - [0:0]",
        f"-A PREROUTING -p tcp -j {inbound}",
        f"-A OUTPUT -p tcp -j {output}",
        f"-A {inbound} -p tcp -m tcp --dport {PROXY_PORT_RANGE[0]}:{PROXY_PORT_RANGE[1]} -j RETURN",
    ]
    lines += [f"-A {inbound} -p tcp -m tcp --dport {port} -j RETURN"
              for port in options.exclude_inbound_ports]
    lines += [
        f"-A {inbound} -p tcp -j {in_redirect}",
        f"-A {in_redirect} -p tcp -j REDIRECT --to-ports {options.inbound_port}",
        f"-A {output} -s {names.INBOUND_BIND_ADDRESS}/32 -o lo -j RETURN",
        f"-A {output} ! -d 127.0.0.1/32 -o lo -m owner --uid-owner {uid} -j {in_redirect}",
        f"-A {output} -o lo -m owner ! --uid-owner {uid} -j RETURN",
        f"-A {output} -m owner --uid-owner {uid} -j RETURN",
        f"-A {output} ! -d 127.0.0.1/32 -o lo -m owner --gid-owner {gid} -j {in_redirect}",
        f"-A {output} -o lo -m owner ! --gid-owner {gid} -j RETURN",
        f"-A {output} -m owner --gid-owner {gid} -j RETURN",
        f"-A {output} -d 127.0.0.1/32 -j RETURN",
    ]
    lines += [f"-A {output} -p tcp -m tcp --dport {port} -j RETURN"
              for port in options.exclude_outbound_ports]
    lines += [f"-A {output} -d {cidr} -j RETURN" for cidr in options.exclude_outbound_cidrs]
    lines += [
        f"-A {output} -j {redirect}",
        f"-A {redirect} -p tcp -j REDIRECT --to-ports {options.outbound_port}",
        "COMMIT",
    ]
    return "\n".join(lines) + "\n"


async def apply_capture(netns: str, rules: str) -> None:
    """Install `rules` (iptables-restore text) in the named netns; CaptureError on failure."""
    try:
        proc = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", netns, "iptables-restore", "-w", "5",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        _, err = await proc.communicate(rules.encode())
    except OSError as exc:
        raise CaptureError(f"netns {netns}: cannot run iptables-restore: {exc}") from None
    if proc.returncode != 0:
        raise CaptureError(f"netns {netns}: iptables-restore failed ({proc.returncode}): "
                           f"{err.decode(errors='replace').strip()}")
