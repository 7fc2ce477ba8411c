"""LISTENER, LISTENER_FILTER, FILTER_CHAIN, NETWORK_FILTER and HTTP_FILTER patches.

Each listener in a patch's context is copied, patched level by level as Istio does
(listener, listener filters, filter chains incl. the default one, network filters, the
HTTP filters and inline route configuration of each HTTP connection manager), and
kept as the original object when nothing changed.
"""

from __future__ import annotations

from google.protobuf.message import Message

from envoy.config.core.v3 import base_pb2

from shoal.mesh.translate import names, protos
from shoal.mesh.translate.envoyfilter import routes
from shoal.mesh.translate.envoyfilter.patches import (
    HCM_NAME, INBOUND, OUTBOUND, Patch, apply_guarded, canonical, context_matches,
    copy_message, filter_match, http_filter_matches, is_merge, merge, merge_any, merge_filter,
    merge_patch, network_filter_matches, pack, patch_list, sub_filter_match,
)


LISTENER_KINDS = ("LISTENER", "LISTENER_FILTER", "FILTER_CHAIN", "NETWORK_FILTER", "HTTP_FILTER")


def _listener_context(listener: Message) -> str:
    inbound = listener.traffic_direction == base_pb2.TrafficDirection.INBOUND
    return INBOUND if inbound or listener.name == names.VIRTUAL_INBOUND else OUTBOUND


def _virtual(listener: Message) -> bool:
    return listener.name in (names.VIRTUAL_INBOUND, names.VIRTUAL_OUTBOUND)


def _listener_matches(listener: Message, p: Patch) -> bool:
    match = p.match.get("listener")
    if not match:
        return True
    if match.get("name") and match["name"] != listener.name:
        return False
    if p.apply_to != "LISTENER" and _virtual(listener):
        return True  # the port is a filter chain's destination_port (see below)
    port = int(match.get("portNumber") or 0)
    return not port or listener.address.socket_address.port_value == port


def _chain_matches(listener: Message, chain: Message, p: Patch) -> bool:
    match = p.match.get("listener")
    if not match:
        return True
    fcm = chain.filter_chain_match
    port = int(match.get("portNumber") or 0)
    if _virtual(listener) and port and fcm.destination_port.value != port:
        return False
    want = match.get("filterChain")
    if not want:
        return True
    if want.get("name") and want["name"] != chain.name:
        return False
    if want.get("sni") and want["sni"] not in fcm.server_names:
        return False
    if want.get("transportProtocol") and want["transportProtocol"] != fcm.transport_protocol:
        return False
    if want.get("applicationProtocols") and not set(
            want["applicationProtocols"].split(",")) <= set(fcm.application_protocols):
        return False
    port = int(want.get("destinationPort") or 0)
    return not port or fcm.destination_port.value == port


def patch_listeners(listeners: list[Message], by: dict[str, list[Patch]],
                     problems: list[str]) -> list[Message]:
    out = []
    for original in listeners:
        context = _listener_context(original)
        # route patches reach a listener only through an inline (inbound) route config
        kinds = LISTENER_KINDS + (routes.ROUTE_KINDS if context == INBOUND else ())
        if not any(context_matches(p, context) for kind in kinds for p in by.get(kind, ())):
            out.append(original)
            continue
        listener = copy_message(original)
        if _patch_listener(listener, context, by, problems):
            out.append(listener if listener != original else original)
    # an ADD is made once: in the inbound pass for SIDECAR_INBOUND, else in the outbound one
    out += [copy_message(p.value) for p in by.get("LISTENER", []) if p.operation == "ADD"]
    return out


def _patch_listener(listener: Message, context: str, by: dict[str, list[Patch]],
                    problems: list[str]) -> bool:
    """Patch one listener in place; False when a patch removes it."""
    def applies(p: Patch) -> bool:
        return context_matches(p, context) and _listener_matches(listener, p)

    for p in by.get("LISTENER", []):
        if not applies(p):
            continue
        if p.operation == "REMOVE":
            return False
        if is_merge(p):
            merge_patch(listener, p)
    lf_patches = [p for p in by.get("LISTENER_FILTER", []) if applies(p)]
    if lf_patches:
        def lf_has(p: Patch) -> bool:
            return bool((p.match.get("listener") or {}).get("listenerFilter"))

        def lf_match(item: Message, p: Patch) -> bool:
            return canonical((p.match.get("listener") or {}).get("listenerFilter", "")) == item.name
        filters = patch_list(list(listener.listener_filters), lf_patches, lf_has, lf_match)
        del listener.listener_filters[:]
        listener.listener_filters.extend(filters)
    chains = []
    for chain in listener.filter_chains:
        if _patch_chain(listener, chain, context, by, problems):
            chains.append(chain)
    if listener.HasField("default_filter_chain"):
        if not _patch_chain(listener, listener.default_filter_chain, context, by, problems):
            listener.ClearField("default_filter_chain")
    for p in by.get("FILTER_CHAIN", []):
        if p.operation == "ADD" and applies(p):
            chains.append(copy_message(p.value))
    del listener.filter_chains[:]
    listener.filter_chains.extend(chains)
    return True


def _patch_chain(listener: Message, chain: Message, context: str,
                 by: dict[str, list[Patch]], problems: list[str]) -> bool:
    """Patch one filter chain in place; False when a patch removes it."""
    def applies(p: Patch) -> bool:
        return (context_matches(p, context) and _listener_matches(listener, p)
                and _chain_matches(listener, chain, p))

    for p in by.get("FILTER_CHAIN", []):
        if not applies(p):
            continue
        if p.operation == "REMOVE":
            return False
        if is_merge(p):
            apply_guarded(problems, p, lambda p=p: _merge_chain(chain, p))
    patches = [p for p in by.get("NETWORK_FILTER", []) if applies(p)]
    filters = patch_list(list(chain.filters), patches,
                         lambda p: filter_match(p) is not None, network_filter_matches)
    for f in filters:
        for p in patches:
            if is_merge(p) and network_filter_matches(f, p):
                apply_guarded(problems, p, lambda f=f, p=p: merge_filter(f, p))
        if f.name == HCM_NAME:
            _patch_hcm(listener, chain, f, context, by, problems)
    del chain.filters[:]
    chain.filters.extend(filters)
    return True


def _merge_chain(chain: Message, p: Patch) -> None:
    """FILTER_CHAIN MERGE; a transport socket of the same name merges inside its Any."""
    value = p.value
    assert value is not None
    if value.HasField("transport_socket") and chain.HasField("transport_socket") and \
            value.transport_socket.name == chain.transport_socket.name:
        value = copy_message(value)
        merged = merge_any(chain.transport_socket.typed_config, value.transport_socket.typed_config)
        chain.transport_socket.typed_config.CopyFrom(merged)
        value.ClearField("transport_socket")
    merge(chain, value, p.operation == "MERGE_AND_REPLACE_LIST")


def _patch_hcm(listener: Message, chain: Message, f: Message, context: str,
               by: dict[str, list[Patch]], problems: list[str]) -> None:
    def applies(p: Patch) -> bool:
        return (context_matches(p, context) and _listener_matches(listener, p)
                and _chain_matches(listener, chain, p) and network_filter_matches(f, p))

    http_patches = [p for p in by.get("HTTP_FILTER", []) if applies(p)]
    route_patches = any(context_matches(p, context) for key in routes.ROUTE_KINDS
                        for p in by.get(key, []))
    if not http_patches and not route_patches:
        return
    hcm = protos.hcm_of(f)
    if hcm is None:
        return
    before = copy_message(hcm)
    filters = patch_list(list(hcm.http_filters), http_patches,
                         lambda p: sub_filter_match(p) is not None, http_filter_matches)
    for hf in filters:
        for p in http_patches:
            if is_merge(p) and http_filter_matches(hf, p):
                apply_guarded(problems, p, lambda hf=hf, p=p: merge_filter(hf, p))
    del hcm.http_filters[:]
    hcm.http_filters.extend(filters)
    if hcm.HasField("route_config") and route_patches:
        patched = routes.patch_route_configuration(hcm.route_config, context, by, problems)
        if patched is not hcm.route_config:
            hcm.route_config.CopyFrom(patched)
    if hcm != before:
        f.typed_config.CopyFrom(pack(hcm))


