"""discovery.k8s.io/v1 EndpointSlice: defaults (port protocol TCP) and validation
(`ValidateEndpointSlice`, `ValidateEndpointSliceUpdate`), in Kubernetes' words:

- `addressType` is IPv4, IPv6 or FQDN and immutable;
- at most 1000 endpoints, each with 1-100 addresses valid for the address type, an
  optional DNS-label hostname and nodeName;
- at most 20000 ports, each with a unique name (a DNS label, or empty), a port number
  0-65535 when set, protocol TCP, UDP or SCTP.

The endpoint-slice controller (`shoal.controllers.endpointslices`) writes these; users
may write their own (with another `endpointslice.kubernetes.io/managed-by`). Pure.
"""

from __future__ import annotations

from typing import Any

from shoal.api import errors, names
from shoal.api.builtin import fields as f
from shoal.api.builtin.fields import Errs, as_dict, as_list, set_default

ADDRESS_TYPES = ("IPv4", "IPv6", "FQDN")
PROTOCOLS = ("TCP", "UDP", "SCTP")
MAX_ENDPOINTS = 1000
MAX_ADDRESSES = 100
MAX_PORTS = 20000


def default_endpointslice(obj: dict[str, Any]) -> None:
    for port in as_list(obj.get("ports")):
        if isinstance(port, dict):
            set_default(port, "protocol", "TCP")


def validate_endpointslice(obj: dict[str, Any], old: dict[str, Any] | None) -> Errs:
    errs: Errs = []
    address_type = obj.get("addressType")
    if not address_type:
        errs.append(errors.required("addressType"))
    else:
        errs += f.one_of("addressType", address_type, ADDRESS_TYPES)
    endpoints = as_list(obj.get("endpoints"))
    if len(endpoints) > MAX_ENDPOINTS:
        errs.append(errors.invalid("endpoints", len(endpoints), f"must have at most {MAX_ENDPOINTS} items"))
    for i, endpoint in enumerate(endpoints):
        errs += _endpoint(as_dict(endpoint), f"endpoints[{i}]", address_type)
    ports = as_list(obj.get("ports"))
    if len(ports) > MAX_PORTS:
        errs.append(errors.invalid("ports", len(ports), f"must have at most {MAX_PORTS} items"))
    seen: set[str] = set()
    for i, port in enumerate(ports):
        port = as_dict(port)
        path = f"ports[{i}]"
        name = port.get("name") or ""
        if name:
            errs += f.check_format(f"{path}.name", name, names.check_dns1123_label)
        if name in seen:
            errs.append(errors.duplicate(f"{path}.name", name))
        seen.add(name)
        number = port.get("port")
        if f.is_int(number) and not 0 <= number <= 65535:
            errs.append(errors.invalid(f"{path}.port", number, "must be between 0 and 65535, inclusive"))
        errs += f.one_of(f"{path}.protocol", port.get("protocol"), PROTOCOLS)
    if old is not None and old.get("addressType") != address_type:
        errs.append(errors.invalid("addressType", address_type, "field is immutable"))
    return errs


def _endpoint(endpoint: dict[str, Any], path: str, address_type: Any) -> Errs:
    errs: Errs = []
    addresses = as_list(endpoint.get("addresses"))
    if not addresses:
        errs.append(errors.required(f"{path}.addresses", "must contain at least 1 address"))
    elif len(addresses) > MAX_ADDRESSES:
        errs.append(errors.invalid(f"{path}.addresses", len(addresses),
                                   f"must have at most {MAX_ADDRESSES} items"))
    for j, address in enumerate(addresses):
        apath = f"{path}.addresses[{j}]"
        if address_type == "FQDN":
            errs += f.check_format(apath, address, names.check_dns1123_subdomain)
        elif address_type in ("IPv4", "IPv6"):
            problems = names.check_ip(address) if isinstance(address, str) else ["must be a string"]
            if not problems and (":" in address) != (address_type == "IPv6"):
                problems = [f"must be an {address_type} address"]
            errs += [errors.invalid(apath, address, m) for m in problems]
    errs += f.check_format(f"{path}.hostname", endpoint.get("hostname") or None, names.check_dns1123_label)
    errs += f.check_format(f"{path}.nodeName", endpoint.get("nodeName") or None, names.check_dns1123_subdomain)
    return errs
