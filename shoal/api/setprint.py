"""Server-side table rows of Nodes, Leases, StatefulSets, DaemonSets and
ControllerRevisions, cell for cell as `k8s.io/kubernetes/pkg/printers/internalversion`
prints them (`printNode`, `printLease`, `printStatefulSet`, `printDaemonSet`,
`printControllerRevision`). `shoal.api.printers` serves them. Pure; safe from any thread.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Mapping

from shoal.api import printcells as cells
from shoal.api import selectors

Obj = Mapping[str, Any]
Cells = list[Any]
NAME, AGE = cells.NAME, cells.AGE

# ----------------------------------------------------------------------------- Node

NODE_COLUMNS = [
    NAME,
    cells.column("Status", "The status of the node"),
    cells.column("Roles", "The roles of the node"),
    AGE,
    cells.column("Version", "Kubelet Version reported by the node."),
    cells.wide("Internal-IP", "List of addresses reachable to the node. Queried from cloud "
                              "provider, if available."),
    cells.wide("External-IP", "List of addresses reachable to the node. Queried from cloud "
                              "provider, if available."),
    cells.wide("OS-Image", "OS Image reported by the node from /etc/os-release (e.g. Debian "
                           "GNU/Linux 7 (wheezy))."),
    cells.wide("Kernel-Version", "Kernel Version reported by the node from 'uname -r' (e.g. "
                                 "3.16.0-0.bpo.4-amd64)."),
    cells.wide("Container-Runtime", "Container runtime version reported by the node through "
                                    "runtime remote API (e.g. containerd://1.4.2)."),
]

_ROLE_PREFIX = "node-role.kubernetes.io/"


def node_status_text(node: Obj) -> str:
    """Ready / NotReady / Unknown, then SchedulingDisabled when cordoned."""
    status = []
    for cond in cells.get(node, "status", "conditions", default=[]):
        if cond.get("type") == "Ready":
            status = ["Ready" if cond.get("status") == "True" else "NotReady"]
    if not status:
        status = ["Unknown"]
    if cells.get(node, "spec", "unschedulable"):
        status.append("SchedulingDisabled")
    return ",".join(status)


def node_roles(node: Obj) -> str:
    roles = set()
    for key, value in (cells.get(node, "metadata", "labels", default={})).items():
        if key.startswith(_ROLE_PREFIX) and key[len(_ROLE_PREFIX):]:
            roles.add(key[len(_ROLE_PREFIX):])
        elif key == "kubernetes.io/role" and value:
            roles.add(value)
    return ",".join(sorted(roles)) or "<none>"


def _address(node: Obj, kind: str) -> str:
    for address in cells.get(node, "status", "addresses", default=[]):
        if address.get("type") == kind:
            return address.get("address") or "<none>"
    return "<none>"


def node_row(node: Obj, now: dt.datetime) -> tuple[Cells, Cells]:
    info = cells.get(node, "status", "nodeInfo", default={})
    return ([cells.name_of(node), node_status_text(node), node_roles(node), cells.age(node, now),
             info.get("kubeletVersion") or ""],
            [_address(node, "InternalIP"), _address(node, "ExternalIP"),
             info.get("osImage") or "<unknown>", info.get("kernelVersion") or "<unknown>",
             info.get("containerRuntimeVersion") or "<unknown>"])


# ----------------------------------------------------------------------------- Lease

LEASE_COLUMNS = [NAME, cells.column("Holder", "The holder of the lease"), AGE]


def lease_row(lease: Obj, now: dt.datetime) -> tuple[Cells, Cells]:
    return [cells.name_of(lease), cells.get(lease, "spec", "holderIdentity", default=""),
            cells.age(lease, now)], []


# ---------------------------------------------------------------- StatefulSet, DaemonSet

_TEMPLATE_COLUMNS = [
    cells.wide("Containers", "Names of each container in the template."),
    cells.wide("Images", "Images referenced by each container in the template."),
]

STATEFULSET_COLUMNS = [
    NAME,
    cells.column("Ready", "Number of the pod with ready state"),
    AGE,
    *_TEMPLATE_COLUMNS,
]


def statefulset_row(sts: Obj, now: dt.datetime) -> tuple[Cells, Cells]:
    replicas = cells.get(sts, "spec", "replicas")
    replicas = 1 if replicas is None else int(replicas)
    ready = int(cells.get(sts, "status", "readyReplicas", default=0))
    names, images = cells.container_cells(
        cells.get(sts, "spec", "template", "spec", "containers", default=[]))
    return [cells.name_of(sts), f"{ready}/{replicas}", cells.age(sts, now)], [names, images]


DAEMONSET_COLUMNS = [
    NAME,
    cells.column("Desired", "The total number of nodes that should be running the daemon pod.",
                 type="integer"),
    cells.column("Current", "The number of nodes that are running at least 1 daemon pod and are "
                            "supposed to run the daemon pod.", type="integer"),
    cells.column("Ready", "The number of nodes that should be running the daemon pod and have "
                          "one or more of the daemon pod running and ready.", type="integer"),
    cells.column("Up-to-date", "The total number of nodes that are running updated daemon pod",
                 type="integer"),
    cells.column("Available", "The number of nodes that should be running the daemon pod and "
                              "have one or more of the daemon pod running and available (ready "
                              "for at least spec.minReadySeconds)", type="integer"),
    cells.column("Node Selector", "NodeSelector is a selector which must be true for the pod to "
                                  "fit on a node."),
    AGE,
    *_TEMPLATE_COLUMNS,
    cells.wide("Selector", "A label query over pods that are managed by the daemon set."),
]


def daemonset_row(ds: Obj, now: dt.datetime) -> tuple[Cells, Cells]:
    status = cells.get(ds, "status", default={})
    count = [int(status.get(k) or 0) for k in (
        "desiredNumberScheduled", "currentNumberScheduled", "numberReady",
        "updatedNumberScheduled", "numberAvailable")]
    names, images = cells.container_cells(
        cells.get(ds, "spec", "template", "spec", "containers", default=[]))
    node_selector = selectors.format_labels(
        cells.get(ds, "spec", "template", "spec", "nodeSelector"))
    return ([cells.name_of(ds), *count, node_selector, cells.age(ds, now)],
            [names, images, cells.selector_text(cells.get(ds, "spec", "selector"))])


# ------------------------------------------------------------------ ControllerRevision

CONTROLLERREVISION_COLUMNS = [
    NAME,
    cells.column("Controller", "Controller of the object"),
    cells.column("Revision", "Revision of the ControllerRevision", type="integer"),
    AGE,
]


def controllerrevision_row(rev: Obj, now: dt.datetime) -> tuple[Cells, Cells]:
    controller = "<none>"
    for ref in cells.get(rev, "metadata", "ownerReferences", default=[]):
        if ref.get("controller"):
            group = (ref.get("apiVersion") or "").rpartition("/")[0]
            kind = (ref.get("kind") or "").lower()
            controller = f"{kind}.{group}/{ref.get('name')}" if group else f"{kind}/{ref.get('name')}"
    return [cells.name_of(rev), controller, int(rev.get("revision") or 0),
            cells.age(rev, now)], []


PRINTERS = {
    "Node": (NODE_COLUMNS, node_row),
    "Lease": (LEASE_COLUMNS, lease_row),
    "StatefulSet": (STATEFULSET_COLUMNS, statefulset_row),
    "DaemonSet": (DAEMONSET_COLUMNS, daemonset_row),
    "ControllerRevision": (CONTROLLERREVISION_COLUMNS, controllerrevision_row),
}
"""kind -> (column definitions, row) for `shoal.api.printers`."""
