"""Kernel objects of one pod sandbox, and the records that let a restarted daemon find them.

A sandbox is:

- a network namespace `ip netns add <netns>` -> `/run/netns/<netns>`, with `lo` up,
  `eth0` (the pod end of a veth pair) holding the pod IP, and a default route via the
  bridge's gateway address;
- optionally, iptables rules inside the netns (`netns_iptables`, iptables-restore input,
  e.g. the mesh's transparent-capture rules), applied before any container can start;
- the host end of the veth, `vsh<hash>`, enslaved to the bridge with hairpin mode on
  (with br_netfilter a pod reaching itself through its ClusterIP is bridged back out of
  the port it came in on);
- an IPC and a UTS namespace, persisted without any process: `unshare --ipc=FILE
  --uts=FILE hostname <hostname>` creates both, sets the pod's hostname in the new UTS
  namespace and bind-mounts the two namespace files to
  `<state>/network/ns/<netns>/{ipc,uts}`. Containers join them by path exactly like the
  netns (OCI `linux.namespaces[].path`); no pause process needs supervising, and the
  namespaces outlive a daemon restart. Deleting unmounts them; they vanish with their
  last member process.

Records: `<state>/network/sandboxes/<netns>.json`, one `Sandbox` as JSON, written before
any kernel object is made (so teardown finds a half-made sandbox after a crash) and
removed last on delete.

Concurrency: none here; PodNetwork serializes calls per pod key.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from shoal.config import Settings
from shoal.fsutil import write_atomic
from shoal.network import commands
from shoal.network.model import Sandbox

NETNS_DIR = Path("/run/netns")


def network_dir(settings: Settings) -> Path:
    return settings.state_dir / "network"


def records_dir(settings: Settings) -> Path:
    return network_dir(settings) / "sandboxes"


def ns_dir(settings: Settings, netns: str) -> Path:
    return network_dir(settings) / "ns" / netns


def _is_mountpoint(path: Path) -> bool:
    try:
        return path.stat().st_dev != path.parent.stat().st_dev
    except FileNotFoundError:
        return False


def is_complete(sb: Sandbox) -> bool:
    """Every kernel object of the sandbox exists (cheap: stat calls only)."""
    return (
        _is_mountpoint(Path(sb.netns_path))
        and Path(f"/sys/class/net/{sb.veth_host}").exists()
        and _is_mountpoint(Path(sb.ipc_ns_path))
        and _is_mountpoint(Path(sb.uts_ns_path))
    )


async def create(sb: Sandbox, *, bridge: str) -> None:
    """Make every kernel object of sb. The caller has removed leftovers first (destroy)."""
    await commands.run(["ip", "netns", "add", sb.netns_name])
    await commands.ip_batch([
        f"link add {sb.veth_host} type veth peer name eth0 netns {sb.netns_name}",
        f"link set {sb.veth_host} master {bridge}",
        f"link set {sb.veth_host} type bridge_slave hairpin on",
        f"link set {sb.veth_host} up",
    ])
    await commands.ip_batch([
        "link set lo up",
        f"addr add {sb.ip}/{sb.prefix_len} dev eth0",
        "link set eth0 up",
        f"route add default via {sb.gateway} dev eth0",
    ], netns=sb.netns_name)
    if sb.netns_iptables:
        await commands.run(["ip", "netns", "exec", sb.netns_name, "iptables-restore", "-w", "5"],
                           stdin=sb.netns_iptables)
    ipc, uts = Path(sb.ipc_ns_path), Path(sb.uts_ns_path)

    def touch() -> None:
        ipc.parent.mkdir(parents=True, exist_ok=True)
        ipc.touch()
        uts.touch()

    await asyncio.to_thread(touch)
    await commands.run(["unshare", f"--ipc={ipc}", f"--uts={uts}", "hostname", sb.hostname])


async def destroy(sb: Sandbox) -> None:
    """Remove whatever exists of sb's kernel objects. Idempotent."""
    if Path(f"/sys/class/net/{sb.veth_host}").exists():
        await commands.run(["ip", "link", "del", sb.veth_host], check=False)
    if Path(sb.netns_path).exists():
        await commands.run(["ip", "netns", "del", sb.netns_name], check=False)
    for path in (Path(sb.ipc_ns_path), Path(sb.uts_ns_path)):
        if _is_mountpoint(path):
            await commands.run(["umount", str(path)], check=False)

    def remove_files() -> None:
        for path in (Path(sb.ipc_ns_path), Path(sb.uts_ns_path)):
            path.unlink(missing_ok=True)
        try:
            Path(sb.ipc_ns_path).parent.rmdir()
        except OSError:
            pass

    await asyncio.to_thread(remove_files)


async def write_record(settings: Settings, sb: Sandbox) -> None:
    def write() -> None:
        folder = records_dir(settings)
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(folder / f"{sb.netns_name}.json", json.dumps(sb.to_json(), indent=1))

    await asyncio.to_thread(write)


async def remove_record(settings: Settings, sb: Sandbox) -> None:
    await asyncio.to_thread((records_dir(settings) / f"{sb.netns_name}.json").unlink, missing_ok=True)


async def read_records(settings: Settings) -> dict[str, Sandbox]:
    """Every recorded sandbox, by pod key."""

    def read() -> dict[str, Sandbox]:
        found: dict[str, Sandbox] = {}
        folder = records_dir(settings)
        if folder.is_dir():
            for path in sorted(folder.glob("*.json")):
                sb = Sandbox.from_json(json.loads(path.read_text()))
                found[sb.pod_key] = sb
        return found

    return await asyncio.to_thread(read)
