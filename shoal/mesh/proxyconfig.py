"""`shoal mesh proxy-config`: a sidecar's live config, from its admin API, as tables.

Pure functions turn Envoy's admin documents (`/config_dump?include_eds`,
`/clusters?format=json`, `/certs`) into rows (lists of dicts with fixed columns), like
`istioctl proxy-config`. `admin_get(netns, path)` is the I/O: the admin port listens
on 127.0.0.1:15000 inside the pod netns only, so it is reached with
`ip netns exec NETNS` and a tiny Python HTTP GET (no curl dependency).
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from shoal.mesh.errors import MeshError

Obj = dict[str, Any]
KINDS = ("clusters", "listeners", "routes", "endpoints", "secrets")
ADMIN_PATHS = {
    "clusters": "/config_dump?resource=dynamic_active_clusters",
    "listeners": "/config_dump?resource=dynamic_listeners",
    "routes": "/config_dump?resource=dynamic_route_configs",
    "endpoints": "/clusters?format=json",
    "secrets": "/certs",
}

_GET = ("import sys, urllib.request;"
        "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())")


async def admin_get(netns: str, path: str, port: int = 15000) -> str:
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", netns, sys.executable, "-c", _GET,
        f"http://127.0.0.1:{port}{path}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise MeshError(f"sidecar admin {path} in netns {netns}: "
                        f"{err.decode(errors='replace').strip().splitlines()[-1:]}")
    return out.decode()


def _configs(dump: Obj) -> list[Obj]:
    """The entries of a config_dump: whole *ConfigDump documents, or with `?resource=`
    the individual dynamic resources; callers accept both shapes."""
    return dump.get("configs") or []


def _type_name(typed: Obj) -> str:
    return (typed.get("@type") or "").rsplit(".", 1)[-1]


def cluster_rows(dump: Obj) -> list[Obj]:
    rows = []
    for config in _configs(dump):
        for entry in config.get("dynamic_active_clusters") or [config]:
            cluster = entry.get("cluster") or {}
            if not cluster:
                continue
            name = cluster.get("name", "")
            parts = name.split("|")
            tls = bool(cluster.get("transport_socket_matches") or cluster.get("transport_socket"))
            rows.append({
                "name": name,
                "direction": parts[0] if len(parts) == 4 else "",
                "port": parts[1] if len(parts) == 4 else "",
                "host": parts[3] if len(parts) == 4 else "",
                "type": cluster.get("type", ""),
                "mtls": "yes" if tls else "",
                "version": entry.get("version_info", ""),
            })
    return sorted(rows, key=lambda r: r["name"])


def listener_rows(dump: Obj) -> list[Obj]:
    rows = []
    for config in _configs(dump):
        for entry in config.get("dynamic_listeners") or [config]:
            state = entry.get("active_state") or entry.get("warming_state") or {}
            listener = state.get("listener") or {}
            address = listener.get("address", {}).get("socket_address", {})
            chains = list(listener.get("filter_chains") or [])
            if listener.get("default_filter_chain"):
                chains.append({**listener["default_filter_chain"], "name": "(default)"})
            for chain in chains:
                match = chain.get("filter_chain_match") or {}
                prefixes = ",".join(f"{p['address_prefix']}/{p.get('prefix_len', 32)}"
                                    for p in match.get("prefix_ranges") or [])
                destination = ""
                for f in chain.get("filters") or []:
                    typed = f.get("typed_config") or {}
                    if "rds" in typed:
                        destination = f"Route: {typed['rds'].get('route_config_name')}"
                    elif "route_config" in typed:
                        destination = f"Inline route: {typed['route_config'].get('name', '')}"
                    elif "cluster" in typed:
                        destination = f"Cluster: {typed['cluster']}"
                rows.append({
                    "listener": f"{listener.get('name', '')} "
                                f"{address.get('address', '')}:{address.get('port_value', '')}",
                    "chain": chain.get("name", ""),
                    "match": " ".join(filter(None, [
                        prefixes, str(match.get("destination_port", "")),
                        match.get("transport_protocol", "")])) or "ALL",
                    "tls": "mTLS" if chain.get("transport_socket") else "",
                    "destination": destination,
                })
    return rows


def route_rows(dump: Obj) -> list[Obj]:
    rows = []
    for config in _configs(dump):
        for entry in config.get("dynamic_route_configs") or [config]:
            route_config = entry.get("route_config") or {}
            for vhost in route_config.get("virtual_hosts") or []:
                for route in vhost.get("routes") or []:
                    action = route.get("route") or {}
                    rows.append({
                        "name": route_config.get("name", ""),
                        "virtual_host": vhost.get("name", ""),
                        "domains": ",".join(vhost.get("domains", [])[:3])
                                   + ("..." if len(vhost.get("domains", [])) > 3 else ""),
                        "match": route.get("match", {}).get("prefix")
                                 or route.get("match", {}).get("path", ""),
                        "cluster": action.get("cluster")
                                   or str((route.get("direct_response") or {}).get("status", "")),
                    })
    return rows


def endpoint_rows(clusters: Obj) -> list[Obj]:
    rows = []
    for status in clusters.get("cluster_statuses") or []:
        for host in status.get("host_statuses") or []:
            address = host.get("address", {}).get("socket_address", {})
            health = host.get("health_status", {})
            rows.append({
                "endpoint": f"{address.get('address', '')}:{address.get('port_value', '')}",
                "status": health.get("eds_health_status", "HEALTHY"),
                "cluster": status.get("name", ""),
            })
    return sorted(rows, key=lambda r: (r["cluster"], r["endpoint"]))


def secret_rows(certs: Obj) -> list[Obj]:
    rows = []
    for cert in certs.get("certificates") or []:
        for kind in ("cert_chain", "ca_cert"):
            for entry in cert.get(kind) or []:
                sans = [s.get("uri") or s.get("dns") or "" for s in entry.get("subject_alt_names") or []]
                rows.append({
                    "name": "default" if kind == "cert_chain" else "ROOTCA",
                    "identity": ",".join(filter(None, sans)),
                    "serial": entry.get("serial_number", ""),
                    "not_after": entry.get("expiration_time", ""),
                })
    return rows


ROW_BUILDERS = {"clusters": cluster_rows, "listeners": listener_rows, "routes": route_rows,
                "endpoints": endpoint_rows, "secrets": secret_rows}


def format_table(rows: list[Obj]) -> str:
    """Rows as an aligned text table with upper-case headers."""
    if not rows:
        return "(none)\n"
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    lines = ["  ".join(c.upper().ljust(widths[c]) for c in columns)]
    lines += ["  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(line.rstrip() for line in lines) + "\n"
