"""networking.k8s.io/v1 NetworkPolicy: defaults (`SetDefaults_NetworkPolicy`,
`SetDefaults_NetworkPolicyPort`) and validation (`ValidateNetworkPolicy`), with
Kubernetes' rules and wording:

- a port's protocol is TCP, UDP or SCTP (default TCP); `port` a number 1-65535 or an
  IANA service name; `endPort` only with a numeric `port`, at least `port`
  (``spec.ingress[0].ports[0].endPort: Invalid value: 80: must be greater than or equal
  to `port```);
- a peer names exactly one of podSelector / namespaceSelector (both together allowed) /
  ipBlock (``may not specify both ipBlock and another peer``; an empty peer: ``must
  specify a peer``); an ipBlock has a valid `cidr`, and each `except` is a strict subset
  of it;
- `policyTypes` holds at most Ingress and Egress; when absent it defaults to
  [Ingress], plus Egress when the policy has egress rules.

Selectors are checked by `shoal.api.selectors` like everywhere else. Pure.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from shoal.api import errors, names
from shoal.api.builtin import fields as f
from shoal.api.builtin.fields import Errs, as_dict, as_list, set_default

PROTOCOLS = ("TCP", "UDP", "SCTP")
POLICY_TYPES = ("Ingress", "Egress")
_CIDR_MESSAGE = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"


def default_networkpolicy(obj: dict[str, Any]) -> None:
    spec = f.child_dict(obj, "spec")
    if spec is None:
        return
    for direction in ("ingress", "egress"):
        for rule in as_list(spec.get(direction)):
            for port in as_list(as_dict(rule).get("ports")):
                if isinstance(port, dict):
                    set_default(port, "protocol", "TCP")
    if not spec.get("policyTypes"):
        types = ["Ingress"]
        if as_list(spec.get("egress")):
            types.append("Egress")
        spec["policyTypes"] = types


def validate_networkpolicy(obj: dict[str, Any], old: dict[str, Any] | None) -> Errs:
    spec = as_dict(obj.get("spec"))
    errs: Errs = f.label_selector("spec.podSelector", spec.get("podSelector"))
    for direction, peers_key in (("ingress", "from"), ("egress", "to")):
        for i, rule in enumerate(as_list(spec.get(direction))):
            rule = as_dict(rule)
            path = f"spec.{direction}[{i}]"
            for j, port in enumerate(as_list(rule.get("ports"))):
                errs += validate_port(as_dict(port), f"{path}.ports[{j}]")
            for j, peer in enumerate(as_list(rule.get(peers_key))):
                errs += validate_peer(as_dict(peer), f"{path}.{peers_key}[{j}]")
    types = as_list(spec.get("policyTypes"))
    if len(types) > len(POLICY_TYPES):
        errs.append(errors.invalid("spec.policyTypes", f._short(types), "may not specify more than two policyTypes"))
        return errs
    for i, kind in enumerate(types):
        errs += f.one_of(f"spec.policyTypes[{i}]", kind, POLICY_TYPES)
    return errs


def validate_port(port: dict[str, Any], path: str) -> Errs:
    errs: Errs = f.one_of(f"{path}.protocol", port.get("protocol"), PROTOCOLS)
    number, end = port.get("port"), port.get("endPort")
    if number is None:
        if end is not None:
            errs.append(errors.invalid(f"{path}.endPort", end, "may not be specified when `port` is not specified"))
        return errs
    if f.is_int(number):
        errs += [errors.invalid(f"{path}.port", number, m) for m in names.check_port_number(number)]
        if end is not None and f.is_int(end):
            if end < number:
                errs.append(errors.invalid(f"{path}.endPort", number, "must be greater than or equal to `port`"))
            errs += [errors.invalid(f"{path}.endPort", end, m) for m in names.check_port_number(end)]
        return errs
    if end is not None:
        errs.append(errors.invalid(f"{path}.endPort", end, "may not be specified when `port` is non-numeric"))
    if isinstance(number, str):
        errs += f.check_format(f"{path}.port", number, names.check_iana_svc_name)
    return errs


def validate_peer(peer: dict[str, Any], path: str) -> Errs:
    errs: Errs = []
    given = 0
    for key in ("podSelector", "namespaceSelector"):
        if peer.get(key) is not None:
            given += 1
            errs += f.label_selector(f"{path}.{key}", peer[key])
    block = peer.get("ipBlock")
    if block is not None:
        given += 1
        errs += validate_ip_block(as_dict(block), f"{path}.ipBlock")
    if given == 0:
        errs.append(errors.required(path, "must specify a peer"))
    elif given > 1 and block is not None:
        errs.append(errors.forbidden(path, "may not specify both ipBlock and another peer"))
    return errs


def validate_ip_block(block: dict[str, Any], path: str) -> Errs:
    cidr = block.get("cidr")
    if not cidr:
        return [errors.required(f"{path}.cidr")]
    network = _network(cidr)
    if network is None:
        return [errors.invalid(f"{path}.cidr", cidr, _CIDR_MESSAGE)]
    errs: Errs = []
    for i, text in enumerate(as_list(block.get("except"))):
        excluded = _network(text)
        if excluded is None:
            errs.append(errors.invalid(f"{path}.except[{i}]", text, _CIDR_MESSAGE))
        elif (excluded.version != network.version or excluded.network_address not in network
              or excluded.prefixlen <= network.prefixlen):
            errs.append(errors.invalid(f"{path}.except[{i}]", text, "must be a strict subset of `cidr`"))
    return errs


def _network(text: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """A CIDR as Kubernetes parses it (ParseCIDRSloppy: host bits may be set)."""
    if not isinstance(text, str) or "/" not in text:
        return None
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None
