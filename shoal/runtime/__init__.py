"""shoal.runtime: OCI spec (pure) and container lifecycle on runc with conmon as the shim.

Public API (other layers import only these names):

    spec = oci_spec(intent, image_config)            # pure; validated against the runtime-spec schema
    rt = Runtime(settings.containers_dir, cgroup_parent="shoal", runtime_binary=pick_runtime_binary())
    cid = await rt.run(intent, image_config)         # create + start
    await rt.wait(cid) / rt.stop(cid, grace) / rt.kill / rt.delete / rt.status / rt.list
    await rt.exec(cid, ["cmd"]) ; rt.logs(cid, follow=True) ; await rt.stats(cid)
    await create_container(rt, build_intent, image_config, snapshots=..., key=cid, image=img)
                                                     # snapshot -> intent -> create, cleaned up on failure

See `lifecycle` for the state model (the disk is the truth; containers survive the
daemon and are re-adopted by any later Runtime over the same root).
"""

from shoal.runtime.errors import (
    ContainerExists,
    ContainerNotFound,
    ContainerStateError,
    ExecTimeout,
    RuncError,
    RuntimeError_,
    RuntimeFailure,
    SpecError,
)
from shoal.runtime.intent import NETWORK_HOST, NETWORK_NONE, ContainerIntent, Mount, Resources, Security
from shoal.runtime.lifecycle import Runtime
from shoal.runtime.provision import Created, Snapshots, create_container
from shoal.runtime.runc import pick_runtime_binary
from shoal.runtime.spec import HostInfo, oci_spec
from shoal.runtime.status import ContainerStatus, LogLine

__all__ = [
    "ContainerExists",
    "ContainerIntent",
    "ContainerNotFound",
    "ContainerStateError",
    "ContainerStatus",
    "Created",
    "ExecTimeout",
    "HostInfo",
    "LogLine",
    "Mount",
    "NETWORK_HOST",
    "NETWORK_NONE",
    "Resources",
    "RuncError",
    "Runtime",
    "RuntimeError_",
    "RuntimeFailure",
    "Security",
    "Snapshots",
    "SpecError",
    "create_container",
    "oci_spec",
    "pick_runtime_binary",
]
