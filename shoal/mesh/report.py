"""What `shoal mesh status` and `shoal mesh check` print, as pure functions.

`status_rows(statuses)` turns `XdsServer.status()` into table rows (use
`proxyconfig.format_table`). `check_findings(state, statuses, now)` lists problems a
user should act on: pods in meshed namespaces without a sidecar, proxies whose last
update was NACKed (with Envoy's message), EnvoyFilter patches skipped for a proxy
(column `skipped` in the status table), proxies not connected or not in sync,
certificates expired or expiring within a minute. The daemon wiring calls them with
the live server and the ClusterSource snapshot.
"""

from __future__ import annotations

import datetime
from typing import Any

from shoal import timestamps
from shoal.mesh import inject
from shoal.mesh.server import SHORT_NAMES, ProxyStatus
from shoal.mesh.source import NAMESPACES, PODS, ClusterState
from shoal.mesh.translate import model

Obj = dict[str, Any]
TYPES = list(SHORT_NAMES.values())


def status_rows(statuses: list[ProxyStatus]) -> list[Obj]:
    rows = []
    for s in statuses:
        def cell(t: str) -> str:
            sent, acked = s.sent.get(t), s.acked.get(t)
            if sent is None:
                return "-"
            return "SYNCED" if sent == acked else ("NACKED" if s.last_nack and s.last_nack.type == t
                                                   else "STALE")
        rows.append({
            "proxy": f"{s.pod}.{s.namespace}",
            "connected": "yes" if s.connected else "no",
            **{t: cell(t) for t in TYPES},
            "cert_expiry": timestamps.format_time(s.cert_expiry) if s.cert_expiry else "-",
            "last_nack": f"{s.last_nack.type}: {s.last_nack.message[:60]}" if s.last_nack else "",
            "skipped": _skipped(s.problems),
        })
    return rows


def _skipped(problems: tuple[str, ...]) -> str:
    """The first skipped patch, shortened, and how many more (full text: `mesh check`)."""
    if not problems:
        return ""
    more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
    return problems[0][:60] + more


def check_findings(state: ClusterState, statuses: list[ProxyStatus],
                   now: datetime.datetime | None = None) -> list[str]:
    now = now or datetime.datetime.now(datetime.timezone.utc)
    findings = []
    for pod in state.list(PODS):
        meta = pod["metadata"]
        ns = state.get(NAMESPACES, None, meta.get("namespace", "default"))
        if model.has_sidecar(pod) or pod.get("spec", {}).get("hostNetwork"):
            continue
        if inject.needs_injection({**pod, "metadata": {**meta, "annotations": {}}}, ns) and \
                (meta.get("annotations") or {}).get(inject.INJECT_KEY) != "false":
            findings.append(f"pod {meta.get('namespace', 'default')}/{meta['name']}: in a meshed "
                            f"namespace but has no sidecar (created before injection was enabled?)")
    for s in statuses:
        name = f"proxy {s.namespace}/{s.pod}"
        if s.last_nack:
            findings.append(f"{name}: {s.last_nack.type} version {s.last_nack.version} was "
                            f"rejected: {s.last_nack.message}")
        if not s.connected:
            findings.append(f"{name}: not connected to the control plane")
        elif not s.synced and not s.last_nack:
            findings.append(f"{name}: not in sync (sent {s.sent}, acked {s.acked})")
        if s.error:
            findings.append(f"{name}: {s.error}")
        findings += [f"{name}: {problem}" for problem in s.problems]
        if s.cert_expiry is not None:
            left = (s.cert_expiry - now).total_seconds()
            if left <= 0:
                findings.append(f"{name}: certificate {s.spiffe_id} expired at "
                                f"{s.cert_expiry.isoformat()}")
            elif left < 60:
                findings.append(f"{name}: certificate {s.spiffe_id} expires in {left:.0f} s")
    return findings
