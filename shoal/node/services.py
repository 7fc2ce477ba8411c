"""NodeServices: what a pod worker needs of the node, as one narrow protocol.

The node agent implements it (shoal.node.agent); the worker (shoal.node.worker) sees
only this, so neither module imports the other's class and a worker can run against
a fake. The members:

- `settings`, `hooks` (PodHooks), `network` (PodNetworkPort), `containers`
  (PodContainers: create/start/stop/remove/exec/wait and the per-pod index), `puller`
  (ImagePuller), `backoff` (CrashLoopBackOff and pull/create backoff table);
- `resync_seconds` (longest sleep without an event), `probe_time_scale`, `host_ip`;
- `emit(...)`: record an Event in the background (never delays a pod);
- `get_object(resource, ns, name)`: a ConfigMap/Secret/PVC or None;
- `write_pod_status(pod, status)`: write `status` with conflict retries; the object the
  API returned, or None when the pod is gone;
- `forget_pod(uid, namespace, name, delete_object=)`: drop the worker; with
  `delete_object`, first delete the API object with grace 0 (the kubelet's last step of
  a graceful deletion; raises so the worker retries).

Concurrency: everything is called from the daemon's event loop.
"""

from __future__ import annotations

from typing import Any, Mapping, Protocol

from shoal.config import Settings
from shoal.node.backoff import Backoff
from shoal.node.containers import PodContainers
from shoal.node.hooks import PodHooks
from shoal.node.pulling import ImagePuller
from shoal.node.seams import PodNetworkPort

Obj = dict[str, Any]


class NodeServices(Protocol):
    settings: Settings
    hooks: PodHooks
    network: PodNetworkPort
    containers: PodContainers
    puller: ImagePuller
    backoff: Backoff
    resync_seconds: float
    probe_time_scale: float
    host_ip: str

    def emit(self, pod: Mapping[str, Any], type_: str, reason: str, message: str,
             field_path: str | None = None) -> None: ...

    async def get_object(self, resource: str, namespace: str, name: str) -> Obj | None: ...

    async def write_pod_status(self, pod: Obj, status: Obj) -> Obj | None: ...

    async def forget_pod(self, uid: str, namespace: str, name: str, *, delete_object: bool) -> None: ...
