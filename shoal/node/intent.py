"""Pod container spec -> runtime `ContainerIntent` fields (pure), and the one place the
node agent constructs runtime types.

`intent_fields` computes plain values (what to run, env, mounts, limits, security, labels)
from the pod, the container and the host paths the worker prepared. `to_intent` builds
`shoal.runtime.ContainerIntent` from them; it passes only fields the runtime declares, so
the translation stays testable without the runtime.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from decimal import ROUND_CEILING
from pathlib import Path
from typing import Any, Mapping, Sequence

from shoal import runtime
from shoal.api.quantity import parse_quantity
from shoal.node.errors import ContainerConfigError, VolumeError

Obj = Mapping[str, Any]

LABEL_POD_UID = "io.kubernetes.pod.uid"
LABEL_POD_NAME = "io.kubernetes.pod.name"
LABEL_POD_NAMESPACE = "io.kubernetes.pod.namespace"
LABEL_CONTAINER = "io.kubernetes.container.name"
LABEL_RESTART = "io.kubernetes.container.restartCount"
LABEL_HASH = "io.kubernetes.container.hash"


def container_hash(container: Obj) -> str:
    """A digest of the container's spec: a running container whose spec changed (a new
    image on the pod) is restarted, as the kubelet does."""
    return hashlib.sha256(json.dumps(container, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class MountSpec:
    destination: str
    source: str
    read_only: bool = False


@dataclasses.dataclass(frozen=True)
class ResourceSpec:
    memory_limit_bytes: int | None = None
    cpu_limit_millicores: int | None = None
    cpu_request_millicores: int | None = None
    pids_limit: int | None = None


def _millicores(value: Any) -> int:
    return int((parse_quantity(value) * 1000).to_integral_value(rounding=ROUND_CEILING))


def resources_of(container: Obj) -> ResourceSpec:
    res = container.get("resources") or {}
    limits, requests = res.get("limits") or {}, res.get("requests") or {}
    try:
        return ResourceSpec(
            memory_limit_bytes=int(parse_quantity(limits["memory"])) if "memory" in limits else None,
            cpu_limit_millicores=_millicores(limits["cpu"]) if "cpu" in limits else None,
            cpu_request_millicores=_millicores(requests["cpu"]) if "cpu" in requests else None,
        )
    except ValueError as exc:
        raise ContainerConfigError(f"resources of container {container.get('name')}: {exc}") from None


def container_mounts(container: Obj, volume_paths: Mapping[str, Path], etc_files: Mapping[str, Path]) -> list[MountSpec]:
    """The pod files (/etc/hosts, resolv.conf, hostname) then the container's volumeMounts."""
    mounts = [MountSpec(dest, str(src)) for dest, src in etc_files.items()]
    for vm in container.get("volumeMounts") or []:
        name = vm["name"]
        if name not in volume_paths:
            raise VolumeError(f'volumeMounts: volume "{name}" is not set up')
        src = volume_paths[name]
        if vm.get("subPath"):
            src = src / vm["subPath"]
            if not src.exists():
                src.mkdir(parents=True, exist_ok=True)
        mounts.append(MountSpec(vm["mountPath"], str(src), bool(vm.get("readOnly"))))
    return mounts


def security_of(pod: Obj, container: Obj) -> dict[str, Any]:
    psc = (pod.get("spec") or {}).get("securityContext") or {}
    csc = container.get("securityContext") or {}

    def pick(key: str) -> Any:
        return csc.get(key, psc.get(key))

    caps = csc.get("capabilities") or {}
    return {
        "run_as_user": pick("runAsUser"),
        "run_as_group": pick("runAsGroup"),
        "run_as_non_root": bool(pick("runAsNonRoot")),
        "read_only_rootfs": bool(csc.get("readOnlyRootFilesystem")),
        "privileged": bool(csc.get("privileged")),
        "cap_add": list(caps.get("add") or []),
        "cap_drop": list(caps.get("drop") or []),
        "no_new_privileges": csc.get("allowPrivilegeEscalation") is not True and not csc.get("privileged"),
        # fsGroup and supplementalGroups join the process's groups (passed on once the
        # runtime's Security has the field; `to_intent` drops fields it does not know)
        "supplemental_groups": tuple(sorted({*(psc.get("supplementalGroups") or []),
                                             *([psc["fsGroup"]] if psc.get("fsGroup") is not None else [])})),
    }


def intent_fields(
    pod: Obj,
    container: Obj,
    *,
    container_id: str,
    rootfs: Path,
    env: Mapping[str, str],
    mounts: Sequence[MountSpec],
    sandbox: Any,
    log_path: Path,
    restart_count: int,
) -> dict[str, Any]:
    meta = pod["metadata"]
    labels = {
        LABEL_POD_UID: meta["uid"],
        LABEL_POD_NAME: meta["name"],
        LABEL_POD_NAMESPACE: meta["namespace"],
        LABEL_CONTAINER: container["name"],
        LABEL_RESTART: str(restart_count),
        LABEL_HASH: container_hash(container),
    }
    etc = {m.destination: m.source for m in mounts}
    return {
        "id": container_id,
        "rootfs": rootfs,
        "command": list(container.get("command") or []) or None,
        "args": list(container.get("args") or []) or None,
        "env": dict(env),
        "working_dir": container.get("workingDir") or None,
        "hostname": getattr(sandbox, "hostname", "") or meta["name"],
        "mounts": [m for m in mounts if m.destination not in ("/etc/hosts", "/etc/resolv.conf")],
        "etc_hosts": Path(etc["/etc/hosts"]) if "/etc/hosts" in etc else None,
        "resolv_conf": Path(etc["/etc/resolv.conf"]) if "/etc/resolv.conf" in etc else None,
        "resources": resources_of(container),
        "network": sandbox.netns_path,
        "ipc_ns_path": sandbox.ipc_ns_path,
        "uts_ns_path": sandbox.uts_ns_path,
        "security": security_of(pod, container),
        "tty": bool(container.get("tty")),
        "stdin": bool(container.get("stdin")),
        "labels": labels,
        "annotations": dict(labels),
        "log_path": log_path,
    }


def to_intent(fields: Mapping[str, Any]) -> runtime.ContainerIntent:
    """Build the runtime's ContainerIntent from `intent_fields` output."""
    def build(cls: Any, values: Mapping[str, Any]) -> Any:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names and v is not None})

    values = dict(fields)
    values["mounts"] = [
        runtime.Mount(destination=m.destination, source=m.source, type="bind", read_only=m.read_only)
        for m in fields["mounts"]
    ]
    values["resources"] = build(runtime.Resources, dataclasses.asdict(fields["resources"]))
    sec = dict(fields["security"])
    sec["cap_add"], sec["cap_drop"] = tuple(sec["cap_add"]), tuple(sec["cap_drop"])
    if not sec.get("supplemental_groups"):
        sec.pop("supplemental_groups", None)
    values["security"] = build(runtime.Security, sec)
    return build(runtime.ContainerIntent, values)
