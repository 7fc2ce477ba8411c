"""shoal: containers, orchestration and a service mesh on one Linux machine.

Layers (each a package; a layer imports only layers below it):

    cli, dashboard        faces: talk to the API only
    mesh                  control plane: translate (pure) -> snapshot -> xDS; CA; inject
    controllers, node     reconcilers and the node agent (kubelet role)
    apiserver             Kubernetes-style REST + watch, auth, admission
    api, store            resource model + validation; SQLite revision log
    network               pod sandbox netns, bridge/veth/IPAM, service VIPs, DNS
    runtime               OCI spec (pure) + lifecycle on runc, shim, logs, exec
    images                content store, registry client, snapshots, builder

`shoal.config.Settings` is the one place where paths, ports and ranges are decided.
"""

__version__ = "0.1.0"
