"""Pure translation: (ContainerIntent, image config) -> OCI runtime-spec config.json.

`oci_spec` is the only entry point; each concern lives in its own module, as podman's
specgen does: `process` (command, env, cwd, user), `users` (passwd/group lookups in the
rootfs), `namespaces`, `security` (capabilities, no_new_privileges, masked paths),
`seccomp` (Docker's default profile, converted for the container's caps and the host
arch), `mounts` and `resources` (cgroup limits).

Purity: the result depends only on the arguments. The two inputs that come from the
machine, the rootfs' /etc/passwd and /etc/group (read only when a user is given by
name) and the host's arch and kernel (`HostInfo`), are passed in or read from the
intent's rootfs; nothing else is consulted and nothing is written.
"""

from __future__ import annotations

from typing import Any

from shoal.runtime.intent import ContainerIntent
from shoal.runtime.spec import mounts, namespaces, process, resources, security
from shoal.runtime.spec.host import HostInfo
from shoal.runtime.spec.seccomp import seccomp_profile

OCI_VERSION = "1.0.2"

__all__ = ["HostInfo", "OCI_VERSION", "oci_spec"]


def oci_spec(
    intent: ContainerIntent,
    image_config: dict[str, Any] | None,
    *,
    cgroup_parent: str = "shoal",
    host: HostInfo | None = None,
) -> dict[str, Any]:
    """The config.json for `intent` run from an image whose OCI config is `image_config`.

    Raises `SpecError` naming the field that cannot be honoured.
    """
    image_config = image_config or {}
    host = host or HostInfo.detect()
    hostname = intent.hostname or intent.id[:63]
    proc = process.build_process(intent, image_config, hostname)
    caps = security.effective_capabilities(intent.security)
    proc["capabilities"] = security.capability_sets(caps)
    proc["noNewPrivileges"] = security.no_new_privileges(intent.security)
    linux: dict[str, Any] = {
        "namespaces": namespaces.build_namespaces(intent),
        "resources": resources.build_resources(intent.resources, privileged=intent.security.privileged),
        "cgroupsPath": f"/{cgroup_parent.strip('/')}/{intent.id}",
        "maskedPaths": security.masked_paths(intent),
        "readonlyPaths": security.readonly_paths(intent),
    }
    if intent.security.seccomp and not intent.security.privileged:
        linux["seccomp"] = seccomp_profile(caps, host)
    spec: dict[str, Any] = {
        "ociVersion": OCI_VERSION,
        "process": proc,
        "root": {"path": str(intent.rootfs), "readonly": intent.security.read_only_rootfs},
        "mounts": mounts.build_mounts(intent),
        "linux": linux,
        "annotations": {str(k): str(v) for k, v in intent.annotations.items()},
        # also when joining a pod's UTS namespace: runc sets it there, to the pod's name
        "hostname": hostname,
    }
    return spec
