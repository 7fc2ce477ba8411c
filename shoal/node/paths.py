"""The node agent's on-disk layout, in one place (like distribution's `paths`).

    <pods_dir>/<ns>_<name>_<uid>/                   one directory per pod
        etc/hosts, etc/resolv.conf, etc/hostname     bind-mounted into every container
        volumes/<volume name>/                       configMap/secret/emptyDir data
        <container>/<restartCount>.log               CRI-format logs, one file per run
        <container>/<restartCount>.termination-log   the run's terminationMessagePath
    <volumes_dir>/pvc-<uid>_<ns>_<name>/             local-path PersistentVolumes

Runtime container ids and snapshot keys are `<uid part>_<name part>_<restartCount>`: the
first 24 hex digits of the pod uid, the container name (long names shortened with a hash),
the restart index — at most 64 characters as runc wants. Container names are DNS labels
(no '_') so the id parses back, and a restarted daemon finds every container of a pod
from the runtime alone, without any other record.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Mapping, NamedTuple

from shoal.config import Settings


def pod_dir(settings: Settings, namespace: str, name: str, uid: str) -> Path:
    return settings.pods_dir / f"{namespace}_{name}_{uid}"


def pod_dir_of(settings: Settings, pod: Mapping[str, Any]) -> Path:
    meta = pod["metadata"]
    return pod_dir(settings, meta["namespace"], meta["name"], meta["uid"])


def log_path(pod_root: Path, container: str, restart_count: int) -> Path:
    return pod_root / container / f"{restart_count}.log"


def termination_message_path(pod_root: Path, container: str, restart_count: int) -> Path:
    """The host file bind-mounted at the container's terminationMessagePath."""
    return pod_root / container / f"{restart_count}.termination-log"


def volume_dir(pod_root: Path, volume: str) -> Path:
    return pod_root / "volumes" / volume


def etc_dir(pod_root: Path) -> Path:
    return pod_root / "etc"


def claim_dir(settings: Settings, claim: Mapping[str, Any]) -> Path:
    meta = claim["metadata"]
    return settings.volumes_dir / f"pvc-{meta['uid']}_{meta['namespace']}_{meta['name']}"


class ContainerKey(NamedTuple):
    pod_uid: str  # `uid_part` of the pod uid
    container: str  # `name_part` of the container name
    restart_count: int


UID_CHARS = 24  # 96 bits of the pod uid: unique on one node, and ids stay within runc's 64
NAME_CHARS = 30


def uid_part(pod_uid: str) -> str:
    return pod_uid.replace("-", "")[:UID_CHARS]


def name_part(container: str) -> str:
    """The container name, or for names over 30 characters a prefix plus a hash of it."""
    if len(container) <= NAME_CHARS:
        return container
    return container[:21] + "-" + hashlib.sha256(container.encode()).hexdigest()[:8]


def container_id(pod_uid: str, container: str, restart_count: int) -> str:
    return f"{uid_part(pod_uid)}_{name_part(container)}_{restart_count}"


def parse_container_id(cid: str) -> ContainerKey | None:
    """The key of a container id made by `container_id`, or None for a foreign id."""
    parts = cid.split("_")
    if len(parts) != 3 or not parts[2].isdigit() or len(parts[0]) != UID_CHARS:
        return None
    return ContainerKey(parts[0], parts[1], int(parts[2]))
