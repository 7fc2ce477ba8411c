"""ROUTE_CONFIGURATION, VIRTUAL_HOST and HTTP_ROUTE patches on one route configuration.

Used for RDS route configurations (SIDECAR_OUTBOUND) and for the inline route
configuration of inbound HTTP connection managers (SIDECAR_INBOUND). Route
configurations are matched by port as Istio names them: `"80"` outbound,
`inbound|8080||` inbound.
"""

from __future__ import annotations

from google.protobuf.message import Message

from shoal.mesh.translate.envoyfilter.patches import (
    Obj, Patch, context_matches, copy_message, is_merge, merge_patch, patch_list,
)

ROUTE_KINDS = ("ROUTE_CONFIGURATION", "VIRTUAL_HOST", "HTTP_ROUTE")


def _route_port(name: str) -> int:
    if name.startswith("inbound|"):
        parts = name.split("|")
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    return int(name) if name.isdigit() else 0


def _rc_matches(rc: Message, p: Patch) -> bool:
    match = p.match.get("routeConfiguration")
    if not match:
        return True
    port = int(match.get("portNumber") or 0)
    if port and port != _route_port(rc.name):
        return False
    return not match.get("name") or match["name"] == rc.name


def _vhost_matches(vh: Message, p: Patch) -> bool:
    match = (p.match.get("routeConfiguration") or {}).get("vhost")
    if not match:
        return True
    if match.get("name") and match["name"] != vh.name:
        return False
    return not match.get("domainName") or match["domainName"] in vh.domains


_ACTIONS = {"ROUTE": "route", "REDIRECT": "redirect", "DIRECT_RESPONSE": "direct_response"}


def _route_match(p: Patch) -> Obj | None:
    return ((p.match.get("routeConfiguration") or {}).get("vhost") or {}).get("route")


def _route_matches(route: Message, p: Patch) -> bool:
    match = _route_match(p)
    if match is None:
        return True
    if match.get("name") and match["name"] != route.name:
        return False
    action = match.get("action") or "ANY"
    return action == "ANY" or route.WhichOneof("action") == _ACTIONS.get(action)


def patch_route_configuration(original: Message, context: str, by: dict[str, list[Patch]],
                              problems: list[str]) -> Message:
    """One route configuration patched (a copy), or `original` itself when unchanged."""
    def applies(p: Patch) -> bool:
        return context_matches(p, context) and _rc_matches(original, p)

    if not any(applies(p) for key in ROUTE_KINDS for p in by.get(key, [])):
        return original
    rc = copy_message(original)
    for p in by.get("ROUTE_CONFIGURATION", []):
        if is_merge(p) and applies(p):
            merge_patch(rc, p)
    vhosts = []
    for vh in rc.virtual_hosts:
        keep = True
        for p in by.get("VIRTUAL_HOST", []):
            if not (applies(p) and _vhost_matches(vh, p)):
                continue
            if p.operation == "REMOVE":
                keep = False
                break
            if is_merge(p):
                merge_patch(vh, p)
            elif p.operation == "REPLACE":
                vh = copy_message(p.value)
        if keep:
            _patch_routes(vh, [p for p in by.get("HTTP_ROUTE", [])
                               if applies(p) and _vhost_matches(vh, p)])
            vhosts.append(vh)
    for p in by.get("VIRTUAL_HOST", []):
        if p.operation == "ADD" and applies(p):
            vhosts.append(copy_message(p.value))
    del rc.virtual_hosts[:]
    rc.virtual_hosts.extend(vhosts)
    return original if rc == original else rc


def _patch_routes(vh: Message, patches: list[Patch]) -> None:
    if not patches:
        return
    routes = []
    for route in vh.routes:
        keep = True
        for p in patches:
            if not _route_matches(route, p):
                continue
            if p.operation == "REMOVE":
                keep = False
                break
            if is_merge(p):
                merge_patch(route, p)
        if keep:
            routes.append(route)
    routes = patch_list(routes, [p for p in patches if p.operation not in
                                 ("REMOVE", "REPLACE", "MERGE", "MERGE_AND_REPLACE_LIST")],
                        lambda p: _route_match(p) is not None, _route_matches)
    del vh.routes[:]
    vh.routes.extend(routes)


