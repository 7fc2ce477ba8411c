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

import os

# The daemon spawns runc, conmon and iptables all the time, and its event loop (uvloop,
# i.e. libuv) spawns with fork(). gRPC's fork support installs pthread_atfork handlers
# that, while other threads are inside gRPC (the xDS server always is), make the forked
# child crash or hang before it reaches exec: seen here as `runc state` failing with no
# message and `iptables-save` dying of SIGSEGV, which made running containers look gone.
# Nothing in shoal forks a process that keeps using gRPC, so the handlers are off.
os.environ["GRPC_ENABLE_FORK_SUPPORT"] = "false"

__version__ = "0.1.0"
