"""Pod volumes on the host: configMap/secret/downwardAPI/projected files, emptyDir,
hostPath, PVCs.

ConfigMap and Secret volumes use the kubelet's atomic writer: the files live in a
timestamped directory `..<time>`, a symlink `..data` points at it, and each top-level
name is a symlink through `..data`. An update writes a new timestamped directory, swaps
`..data` with one rename (atomic), then removes the old directory — a reader in the
container sees the old set or the new set, never a mix. Because the container bind-mounts
the volume *directory*, the swap is visible inside without a remount.

emptyDir with `medium: Memory` is a tmpfs (size = sizeLimit) mounted under the pod dir and
unmounted by `teardown_pod_volumes`. PVC volumes are the local-path provisioner's
directories (`paths.claim_dir`); their data outlives the pod.

`prepare_pod_volumes` is the worker's entry: it fetches the objects the pod references
(through the `get_object` it is given) and sets up every volume in a thread.

Concurrency: called by the pod's worker only (serialized per pod); blocking file work is
done in threads (`asyncio.to_thread`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Mapping

from shoal.api.quantity import parse_quantity
from shoal.config import Settings
from shoal.node import envvars, paths
from shoal.node.errors import VolumeError

Obj = Mapping[str, Any]
DATA_LINK = "..data"


def projected_files(source: Obj, obj: Obj | None, kind: str, name: str) -> dict[str, tuple[bytes, int]]:
    """{relative path: (content, mode)} for a configMap/secret volume source (pure).
    A missing object gives {} when optional, else raises VolumeError as the kubelet says it."""
    mode = int(source.get("defaultMode", 0o644))
    if obj is None:
        if source.get("optional"):
            return {}
        raise VolumeError(f'{kind.lower()} "{name}" not found')
    data = envvars.object_data(obj)
    items = source.get("items")
    if not items:
        return {k: (v, mode) for k, v in data.items()}
    out: dict[str, tuple[bytes, int]] = {}
    for item in items:
        key = item["key"]
        if key not in data:
            if source.get("optional"):
                continue
            raise VolumeError(f"configmap references non-existent config key: {key}" if kind == "ConfigMap"
                              else f"references non-existent secret key: {key}")
        out[item.get("path") or key] = (data[key], int(item.get("mode", mode)))
    return out


def downward_files(source: Obj, pod: Obj, default_mode: int) -> dict[str, tuple[bytes, int]]:
    """{path: (content, mode)} of a downwardAPI volume source (pure): metadata fields,
    labels/annotations (as `key="value"` lines when the whole map is asked for)."""
    out: dict[str, tuple[bytes, int]] = {}
    containers = {c["name"]: c for c in (pod.get("spec") or {}).get("containers") or []}
    for item in source.get("items") or []:
        mode = int(item.get("mode", default_mode))
        if item.get("fieldRef"):
            path = item["fieldRef"]["fieldPath"]
            meta = pod.get("metadata") or {}
            if path in ("metadata.labels", "metadata.annotations"):
                values = meta.get(path.split(".")[1]) or {}
                text = "\n".join(f'{k}="{v}"' for k, v in sorted(values.items()))
            else:
                try:
                    text = envvars.field_value(pod, path, None)
                except envvars.ContainerConfigError as exc:
                    raise VolumeError(str(exc)) from None
        elif item.get("resourceFieldRef"):
            ref = item["resourceFieldRef"]
            container = containers.get(ref.get("containerName") or "", {})
            text = envvars.resource_value(container, ref)
        else:
            raise VolumeError(f"downwardAPI item {item.get('path')!r}: needs fieldRef or resourceFieldRef")
        out[item["path"]] = (text.encode(), mode)
    return out


def projected(source: Obj, pod: Obj, *, configmaps: Mapping[str, Obj | None],
              secrets: Mapping[str, Obj | None]) -> dict[str, tuple[bytes, int]]:
    """{path: (content, mode)} of a projected volume (pure): its configMap, secret and
    downwardAPI sources merged. serviceAccountToken sources are not served: shoal has no
    token issuer for workloads, and the API token is never handed to pods."""
    mode = int(source.get("defaultMode", 0o644))
    out: dict[str, tuple[bytes, int]] = {}
    for src in source.get("sources") or []:
        if src.get("configMap"):
            cm = src["configMap"]
            out.update(projected_files({**cm, "defaultMode": mode}, configmaps.get(cm["name"]), "ConfigMap", cm["name"]))
        elif src.get("secret"):
            sec = src["secret"]
            out.update(projected_files({**sec, "defaultMode": mode}, secrets.get(sec["name"]), "Secret", sec["name"]))
        elif src.get("downwardAPI"):
            out.update(downward_files(src["downwardAPI"], pod, mode))
    return out


def _current_files(target: Path) -> dict[str, tuple[bytes, int]] | None:
    data = target / DATA_LINK
    if not data.is_symlink():
        return None
    root = data.resolve()
    out: dict[str, tuple[bytes, int]] = {}
    for dirpath, _, filenames in os.walk(root):
        for fn in filenames:
            full = Path(dirpath) / fn
            out[str(full.relative_to(root))] = (full.read_bytes(), full.stat().st_mode & 0o7777)
    return out


def with_fs_group(files: Mapping[str, tuple[bytes, int]], fs_group: int | None) -> dict[str, tuple[bytes, int]]:
    """The kubelet's fsGroup rule for projected files: group-readable where the owner can read."""
    if fs_group is None:
        return dict(files)
    return {rel: (content, mode | ((mode & 0o400) >> 3)) for rel, (content, mode) in files.items()}


def write_atomic(target: Path, files: Mapping[str, tuple[bytes, int]], *, gid: int | None = None) -> bool:
    """Make `target` hold exactly `files` through the `..data` swap; True if it changed.
    With `gid` (the pod's fsGroup) the files and directories belong to that group."""
    target.mkdir(parents=True, exist_ok=True)
    files = with_fs_group(files, gid)
    if _current_files(target) == files:
        return False
    stamp = target / f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{time.monotonic_ns()}"
    stamp.mkdir(mode=0o755)
    for rel, (content, mode) in files.items():
        dest = stamp / rel
        if ".." in Path(rel).parts or Path(rel).is_absolute():
            raise VolumeError(f"items path {rel!r}: must be relative and not contain '..'")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(content)
        os.chmod(dest, mode)
        if gid is not None:
            os.chown(dest, 0, gid)
    if gid is not None:
        for dirpath, dirnames, _ in os.walk(stamp):
            os.chown(dirpath, 0, gid)
    old = (target / DATA_LINK).resolve() if (target / DATA_LINK).is_symlink() else None
    tmp = target / "..data_tmp"
    if tmp.is_symlink():
        tmp.unlink()
    os.symlink(stamp.name, tmp)
    os.rename(tmp, target / DATA_LINK)
    tops = {Path(rel).parts[0] for rel in files}
    for entry in target.iterdir():
        if entry.name.startswith(".."):
            continue
        if entry.name not in tops and entry.is_symlink():
            entry.unlink()
    for top in tops:
        link = target / top
        if not link.is_symlink():
            os.symlink(f"{DATA_LINK}/{top}", link)
    if old is not None and old != stamp and old.parent == target:
        shutil.rmtree(old, ignore_errors=True)
    return True


def _is_mounted(path: Path) -> bool:
    return os.path.ismount(path)


def setup_volume(
    settings: Settings,
    pod: Obj,
    pod_root: Path,
    volume: Obj,
    *,
    configmaps: Mapping[str, Obj | None],
    secrets: Mapping[str, Obj | None],
    claims: Mapping[str, Obj | None],
) -> Path:
    """Prepare one volume on the host and return the directory containers bind-mount."""
    name = volume["name"]
    target = paths.volume_dir(pod_root, name)
    gid = ((pod.get("spec") or {}).get("securityContext") or {}).get("fsGroup")
    if volume.get("configMap") is not None:
        src = volume["configMap"]
        write_atomic(target, projected_files(src, configmaps.get(src["name"]), "ConfigMap", src["name"]), gid=gid)
        return target
    if volume.get("secret") is not None:
        src = volume["secret"]
        write_atomic(target, projected_files(src, secrets.get(src["secretName"]), "Secret", src["secretName"]),
                     gid=gid)
        return target
    if volume.get("downwardAPI") is not None:
        src = volume["downwardAPI"]
        write_atomic(target, downward_files(src, pod, int(src.get("defaultMode", 0o644))), gid=gid)
        return target
    if volume.get("projected") is not None:
        write_atomic(target, projected(volume["projected"], pod, configmaps=configmaps, secrets=secrets), gid=gid)
        return target
    if volume.get("emptyDir") is not None:
        src = volume["emptyDir"] or {}
        target.mkdir(parents=True, exist_ok=True)
        if src.get("medium") == "Memory" and not _is_mounted(target):
            opts = "mode=0777"
            if src.get("sizeLimit"):
                opts += f",size={int(parse_quantity(src['sizeLimit']))}"
            subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "shoal-emptydir", str(target)],
                           check=True, capture_output=True)
        else:
            os.chmod(target, 0o777)
        if gid is not None:  # setgid directory of the fsGroup, as the kubelet makes it
            os.chown(target, 0, gid)
            os.chmod(target, 0o2777)
        return target
    if volume.get("hostPath") is not None:
        src = volume["hostPath"]
        path = Path(src["path"])
        kind = src.get("type") or ""
        if kind in ("DirectoryOrCreate",) and not path.exists():
            path.mkdir(parents=True, mode=0o755)
        elif kind == "FileOrCreate" and not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o644)
        elif kind == "Directory" and not path.is_dir():
            raise VolumeError(f"hostPath type check failed: {path} is not a directory")
        elif kind == "File" and not path.is_file():
            raise VolumeError(f"hostPath type check failed: {path} is not a file")
        elif not path.exists() and kind:
            raise VolumeError(f"hostPath type check failed: {path} does not exist")
        return path
    if volume.get("persistentVolumeClaim") is not None:
        claim_name = volume["persistentVolumeClaim"]["claimName"]
        claim = claims.get(claim_name)
        ns = pod["metadata"]["namespace"]
        if claim is None:
            raise VolumeError(f'persistentvolumeclaim "{claim_name}" not found')
        if (claim.get("status") or {}).get("phase") != "Bound":
            raise VolumeError(f'pod has unbound immediate PersistentVolumeClaims ({ns}/{claim_name})')
        path = paths.claim_dir(settings, claim)
        if not path.is_dir():
            raise VolumeError(f"volume of claim {ns}/{claim_name} is missing: {path}")
        return path
    kinds = sorted(k for k in volume if k != "name")
    raise VolumeError(f"volume {name}: unsupported volume source {', '.join(kinds) or '(none)'}")


def teardown_pod_volumes(pod_root: Path) -> None:
    """Unmount tmpfs emptyDirs under the pod dir (the dir itself is removed by the caller)."""
    vols = pod_root / "volumes"
    if not vols.is_dir():
        return
    for entry in vols.iterdir():
        if _is_mounted(entry):
            subprocess.run(["umount", "-l", str(entry)], capture_output=True)


@dataclasses.dataclass(frozen=True)
class PodVolumes:
    """A pod's volumes as set up: host paths by volume name, and the ConfigMaps, Secrets
    and PVCs it references (None: not found), which env vars read too."""

    paths: Mapping[str, Path] = dataclasses.field(default_factory=dict)
    configmaps: Mapping[str, Obj | None] = dataclasses.field(default_factory=dict)
    secrets: Mapping[str, Obj | None] = dataclasses.field(default_factory=dict)
    claims: Mapping[str, Obj | None] = dataclasses.field(default_factory=dict)


GetObject = Callable[[str, str, str], Awaitable["Obj | None"]]


async def prepare_pod_volumes(settings: Settings, pod: Obj, pod_root: Path, get_object: GetObject) -> PodVolumes:
    """Fetch what the pod references and set up every volume (VolumeError when one fails)."""
    namespace = pod["metadata"]["namespace"]
    configmap_names, secret_names = envvars.referenced_objects(pod)
    claim_names = {v["persistentVolumeClaim"]["claimName"] for v in pod["spec"].get("volumes") or []
                   if v.get("persistentVolumeClaim")}
    configmaps = {n: await get_object("configmaps", namespace, n) for n in configmap_names}
    secrets = {n: await get_object("secrets", namespace, n) for n in secret_names}
    claims = {n: await get_object("persistentvolumeclaims", namespace, n) for n in claim_names}
    host_paths: dict[str, Path] = {}
    for vol in pod["spec"].get("volumes") or []:
        host_paths[vol["name"]] = await asyncio.to_thread(
            setup_volume, settings, pod, pod_root, vol, configmaps=configmaps, secrets=secrets, claims=claims)
    return PodVolumes(host_paths, configmaps, secrets, claims)
