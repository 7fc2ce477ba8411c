"""What a caller wants a container to be: `ContainerIntent` and its parts.

Plain frozen dataclasses, no I/O. The node agent fills one from a Pod's container spec,
the builder from a RUN step, the CLI from its flags; `shoal.runtime.spec.oci_spec` turns
one plus the image's config into an OCI runtime-spec document.

Namespaces (`network`): "none" gives the container a private network namespace holding
only loopback; "host" shares the host's (the builder's RUN steps); any other value is the
path of a network namespace to join (a pod sandbox, e.g. /var/run/netns/NAME).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Mapping, Sequence

NETWORK_NONE = "none"
NETWORK_HOST = "host"


@dataclasses.dataclass(frozen=True)
class Mount:
    """One mount in the container. For "bind", `source` is a host path."""

    destination: str
    source: str
    type: str = "bind"
    options: tuple[str, ...] = ()
    read_only: bool = False


@dataclasses.dataclass(frozen=True)
class Resources:
    """Limits in Kubernetes units; None means unlimited / runtime default."""

    memory_limit_bytes: int | None = None
    cpu_limit_millicores: int | None = None
    """limits.cpu: becomes a CFS quota over a 100 ms period."""
    cpu_request_millicores: int | None = None
    """requests.cpu: becomes cpu.shares as kubelet computes them (0 gives the minimum, 2)."""
    pids_limit: int | None = None


@dataclasses.dataclass(frozen=True)
class Security:
    """Kubernetes securityContext, plus the runtime's own defaults."""

    run_as_user: int | None = None
    run_as_group: int | None = None
    run_as_non_root: bool = False
    read_only_rootfs: bool = False
    privileged: bool = False
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    no_new_privileges: bool = True
    """allowPrivilegeEscalation=false in Kubernetes terms; shoal's default is True (safer)."""
    seccomp: bool = True
    """Docker's default seccomp profile (False = unconfined); ignored when privileged."""


@dataclasses.dataclass(frozen=True)
class ContainerIntent:
    """Everything the runtime needs to create one container (besides the image config)."""

    id: str
    rootfs: Path
    command: Sequence[str] | None = None
    """Kubernetes `command`: replaces the image Entrypoint (and drops its Cmd)."""
    args: Sequence[str] | None = None
    """Kubernetes `args`: replaces the image Cmd."""
    env: Mapping[str, str] | Sequence[str] | None = None
    working_dir: str | None = None
    user: str | None = None
    """"uid[:gid]" or "name[:group]" resolved from the rootfs /etc/passwd; overrides the image User."""
    hostname: str | None = None
    mounts: Sequence[Mount] = ()
    resources: Resources = Resources()
    network: str = NETWORK_NONE
    ipc_ns_path: str | None = None
    uts_ns_path: str | None = None
    pid_ns_path: str | None = None
    security: Security = Security()
    tty: bool = False
    stdin: bool = False
    """Keep the container's stdin open (a pipe from conmon; write to it by attaching)."""
    stdin_once: bool = False
    """Close the container's stdin when the first attached client closes it (`run -i`)."""
    name: str | None = None
    """Human name (CLI --name); the id stays the key."""
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    annotations: Mapping[str, str] = dataclasses.field(default_factory=dict)
    log_path: Path | None = None
    """Where the CRI-format log goes; default <root>/<id>/container.log."""
    stop_signal: str | None = None
    """Overrides the image StopSignal; default SIGTERM."""
    etc_hosts: Path | None = None
    """Host file bind-mounted at /etc/hosts; the runtime writes one if None."""
    resolv_conf: Path | None = None
    """Host file bind-mounted at /etc/resolv.conf; the runtime copies the host's if None."""
    masked_paths: Sequence[str] | None = None
    """None = runc's defaults."""
    readonly_paths: Sequence[str] | None = None
    """None = runc's defaults."""
