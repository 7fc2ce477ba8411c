"""Server-side table rows of NetworkPolicies and EndpointSlices, cell for cell as
`k8s.io/kubernetes/pkg/printers/internalversion` prints them (`printNetworkPolicy`,
`printEndpointSlice` with `formatDiscoveryPorts` / `formatDiscoveryEndpoints`).
`shoal.api.printers` serves them. Pure; safe from any thread.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Iterable, Mapping

from shoal.api import printcells as cells

Obj = Mapping[str, Any]
Cells = list[Any]
NAME, AGE = cells.NAME, cells.AGE
SHOWN = 3

NETWORKPOLICY_COLUMNS = [
    NAME,
    cells.column("Pod-Selector", "Select the pods to which this policy object applies."),
    AGE,
]


def networkpolicy_row(obj: Obj, now: dt.datetime) -> tuple[Cells, Cells]:
    selector = cells.selector_text(cells.get(obj, "spec", "podSelector", default={}) or {})
    return [cells.name_of(obj), selector or "<none>", cells.age(obj, now)], []


ENDPOINTSLICE_COLUMNS = [
    NAME,
    cells.column("AddressType", "The type of address that is used by this slice."),
    cells.column("Ports", "The ports that are referenced by this slice."),
    cells.column("Endpoints", "The endpoints that are referenced by this slice."),
    AGE,
]


def _with_more(items: Iterable[str]) -> str:
    items = list(items)
    text = ",".join(items[:SHOWN])
    if len(items) > SHOWN:
        text += f" + {len(items) - SHOWN} more..."
    return text or "<unset>"


def endpointslice_row(obj: Obj, now: dt.datetime) -> tuple[Cells, Cells]:
    ports = [str(p["port"]) if p.get("port") is not None else (p.get("name") or "*")
             for p in obj.get("ports") or []]
    addresses = [a for e in obj.get("endpoints") or [] for a in e.get("addresses") or []]
    return [cells.name_of(obj), obj.get("addressType") or "", _with_more(ports), _with_more(addresses),
            cells.age(obj, now)], []


PRINTERS = {
    "NetworkPolicy": (NETWORKPOLICY_COLUMNS, networkpolicy_row),
    "EndpointSlice": (ENDPOINTSLICE_COLUMNS, endpointslice_row),
}
