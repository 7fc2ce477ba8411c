"""Find a pod's container for `shoal logs POD` and `shoal exec POD` (the resolver the
runtime CLI plugs in).

The container id and log path follow from the pod alone (`paths.container_id`,
`paths.log_path`): the current instance is `restartCount`, `--previous` the one before.
Errors read like kubectl's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shoal.api import errors as api_errors
from shoal.api.client import ApiClient
from shoal.config import Settings
from shoal.node import paths
from shoal.node.errors import ContainerNotFound

DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container"


def pick_container(pod: dict[str, Any], container: str | None) -> str:
    spec = pod.get("spec") or {}
    names = [c["name"] for c in spec.get("containers") or []]
    init_names = [c["name"] for c in spec.get("initContainers") or []]
    pod_name = pod["metadata"]["name"]
    if container is None:
        default = (pod["metadata"].get("annotations") or {}).get(DEFAULT_CONTAINER_ANNOTATION)
        return default if default in names + init_names else names[0]
    if container not in names + init_names:
        raise ContainerNotFound(
            f"container {container} is not valid for pod {pod_name}; "
            f"choose one of: [{' '.join(names + init_names)}]")
    return container


async def resolve_container(client: ApiClient, settings: Settings, namespace: str, pod: str,
                            container: str | None = None, previous: bool = False) -> tuple[str, Path]:
    """(runtime container id, CRI log file) of a pod's container; raises ContainerNotFound."""
    try:
        obj = await client.get("pods", namespace, pod)
    except api_errors.NotFound:
        raise ContainerNotFound(f'pods "{pod}" not found') from None
    name = pick_container(obj, container)
    st = obj.get("status") or {}
    statuses = {s["name"]: s for s in (st.get("containerStatuses") or []) + (st.get("initContainerStatuses") or [])}
    cs = statuses.get(name)
    if cs is None or (not cs.get("containerID") and not cs.get("restartCount") and not cs.get("lastState")):
        raise ContainerNotFound(
            f'container "{name}" in pod "{pod}" is waiting to start: '
            f'{((cs or {}).get("state") or {}).get("waiting", {}).get("reason", "ContainerCreating")}')
    index = int(cs.get("restartCount") or 0)
    if previous:
        if index == 0:
            raise ContainerNotFound(f'previous terminated container "{name}" in pod "{pod}" not found')
        index -= 1
    uid = obj["metadata"]["uid"]
    root = paths.pod_dir(settings, namespace, pod, uid)
    return paths.container_id(uid, name, index), paths.log_path(root, name, index)
