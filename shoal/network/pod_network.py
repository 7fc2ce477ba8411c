"""PodNetwork: the facade the node agent and the API server use (sandboxes, addresses).

Usage (node agent):

    allocations = Allocations(settings.store_path)
    net = PodNetwork(settings, allocations)
    await net.setup_host()                       # once at daemon start; idempotent
    sb = await net.create_sandbox("default/web-0", hostname="web-0",
                                  port_mappings=[PortMapping(8080, 80)])
    # runc: linux.namespaces = [{"type": "network", "path": sb.netns_path},
    #                           {"type": "ipc", "path": sb.ipc_ns_path},
    #                           {"type": "uts", "path": sb.uts_ns_path}, ...]
    # mount net.resolv_conf("default") and net.hosts_file("web-0", sb.ip) into containers
    await net.delete_sandbox("default/web-0")    # frees IP, hostPorts, every kernel object
    await net.teardown()                         # `shoal down`: everything this instance made

API server: `allocate_cluster_ip` / `release_cluster_ip`, `allocate_node_port` /
`release_node_port` at Service create/update/delete (synchronous, fast).

Restart: `create_sandbox` for a pod key whose sandbox still exists returns it unchanged
(re-adoption); if only part of it exists (a crash mid-way), the leftovers are removed
and the sandbox is made again with the same IP. `setup_host` also frees pod IPs and
hostPorts reserved by a pod that has no sandbox record (a crash between reserving and
recording).

Concurrency: calls for one pod key are serialized by a per-key lock; different pods
proceed in parallel. The hostPort chain is rewritten under its own lock from the full
set of sandboxes. Blocking work (SQLite, files) runs in threads; commands are asyncio
subprocesses.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import re
from collections.abc import Iterable

from shoal.config import Settings
from shoal.network import commands, host, hostports, ipam, names, pod_files, rules, sandboxes
from shoal.network.ipam import Allocations
from shoal.network.errors import AllocationError, SandboxError
from shoal.network.model import PortMapping, Sandbox

_HOSTNAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class PodNetwork:
    """Pod sandboxes, the host bridge, and the address pools of one shoal instance."""

    def __init__(self, settings: Settings, allocations: Allocations, *, netns_prefix: str = "shoal-") -> None:
        """netns_prefix: start of every netns name this instance creates (tests use their own)."""
        self.settings = settings
        self._allocations = allocations
        self._netns_prefix = netns_prefix
        network = ipaddress.IPv4Network(settings.pod_cidr)
        self.prefix_len = network.prefixlen
        self.pod_ips = ipam.AddressAllocator(
            allocations, cidr=settings.pod_cidr, pool=f"pod:{settings.pod_cidr}", setting="pod_cidr", skip_gateway=True)
        self.cluster_ips = ipam.AddressAllocator(
            allocations, cidr=settings.service_cidr, pool=f"service:{settings.service_cidr}",
            setting="service_cidr", skip_gateway=False)
        low, high = settings.node_port_range
        self.node_ports = ipam.PortAllocator(allocations, low=low, high=high, pool="nodeport", setting="node_port_range")
        self.host_ports = ipam.HostPortAllocator(allocations)
        self._records: dict[str, Sandbox] | None = None
        self._pod_locks: dict[str, asyncio.Lock] = {}
        self._hostports_lock = asyncio.Lock()
        self._host_lock = asyncio.Lock()

    @property
    def gateway(self) -> str:
        """The bridge's address: pods' default gateway and the cluster DNS address."""
        return host.gateway(self.settings)

    # -- host --------------------------------------------------------------------------

    async def setup_host(self) -> None:
        """Bridge, gateway IP, sysctls, blackhole routes, base chains. Idempotent."""
        async with self._host_lock:
            await host.setup(self.settings)
            records = await self._load()
            await asyncio.to_thread(self._release_unrecorded, set(records))
            await self._sync_hostports()

    def _release_unrecorded(self, recorded: set[str]) -> None:
        for pool in (self.pod_ips.pool, ipam.HostPortAllocator.POOL):
            for value, owner in self._allocations.owned(pool).items():
                if owner not in recorded:
                    self._allocations.release(pool, value)

    async def teardown(self) -> None:
        """Delete every sandbox, then the chains, routes and bridge of this instance."""
        async with self._host_lock:
            for pod_key in list(await self._load()):
                await self.delete_sandbox(pod_key)
            await self._sweep_unrecorded_netns()
            await host.teardown(self.settings)

            def remove_dirs() -> None:
                for folder in (sandboxes.records_dir(self.settings), sandboxes.network_dir(self.settings) / "ns"):
                    try:
                        folder.rmdir()
                    except OSError:
                        pass

            await asyncio.to_thread(remove_dirs)

    async def _sweep_unrecorded_netns(self) -> None:
        """Namespaces with this instance's prefix but no record (a create interrupted
        between `ip netns add` and its bookkeeping). Only instance-specific prefixes are
        swept: the generic default could name another instance's pods."""
        if self._netns_prefix in ("", "shoal-"):
            return
        try:
            names_here = [p.name for p in sandboxes.NETNS_DIR.iterdir()]
        except FileNotFoundError:
            return
        for name in names_here:
            if name.startswith(self._netns_prefix):
                await commands.run(["ip", "netns", "del", name], check=False)

    # -- sandboxes ---------------------------------------------------------------------

    async def create_sandbox(
        self,
        pod_key: str,
        *,
        hostname: str,
        port_mappings: Iterable[PortMapping] = (),
        netns_iptables: str = "",
    ) -> Sandbox:
        """The pod's sandbox: the existing one if complete, else a new one.

        hostname: the pod's hostname (a DNS label), set in its UTS namespace.
        port_mappings: hostPorts, reachable on every host address (127.0.0.1 included).
        netns_iptables: iptables-restore input applied inside the pod's netns before this
        returns (the mesh's capture rules); kept in the record, so a rebuilt sandbox gets
        it again. An existing complete sandbox is returned as is, whatever the arguments.

        Raises SandboxError for a bad hostname, AllocationError when the pod range is
        exhausted or a hostPort is taken by another pod, CommandError if the kernel refuses.
        """
        if not _HOSTNAME.match(hostname):
            raise SandboxError(f"hostname: {hostname!r} is not a DNS label (a-z, 0-9, '-', at most 63 characters)")
        mappings = tuple(port_mappings)
        async with self._pod_lock(pod_key):
            records = await self._load()
            existing = records.get(pod_key)
            if existing is not None:
                if sandboxes.is_complete(existing):
                    return existing
                await sandboxes.destroy(existing)
            ip = await asyncio.to_thread(self.pod_ips.allocate, pod_key)
            try:
                await asyncio.to_thread(self._reserve_host_ports, pod_key, mappings)
            except AllocationError:
                if existing is None:
                    await asyncio.to_thread(self.pod_ips.release, pod_key)
                raise
            sb = dataclasses.replace(self._describe(pod_key, ip, hostname, mappings), netns_iptables=netns_iptables)
            await sandboxes.write_record(self.settings, sb)
            records[pod_key] = sb
            try:
                await sandboxes.create(sb, bridge=self.settings.bridge)
            except BaseException:
                await self._forget(sb)
                raise
        if mappings or (existing is not None and existing.port_mappings):
            await self._sync_hostports()
        return sb

    async def delete_sandbox(self, pod_key: str) -> None:
        """Free everything the pod's sandbox used. Deleting an unknown pod is a no-op."""
        async with self._pod_lock(pod_key):
            sb = (await self._load()).get(pod_key)
            if sb is None:
                await asyncio.to_thread(self.pod_ips.release, pod_key)
                return
            await self._forget(sb)
        if sb.port_mappings:
            await self._sync_hostports()
        self._pod_locks.pop(pod_key, None)

    async def get_sandbox(self, pod_key: str) -> Sandbox | None:
        return (await self._load()).get(pod_key)

    async def list_sandboxes(self) -> list[Sandbox]:
        """Every sandbox this instance has recorded, ordered by pod key.

        After a crash this may include a half-made one (see `sandbox_is_complete`): the
        node agent calls `create_sandbox` for pods it keeps (which repairs it) and
        `delete_sandbox` for the rest.
        """
        return [sb for _, sb in sorted((await self._load()).items())]

    @staticmethod
    def sandbox_is_complete(sb: Sandbox) -> bool:
        """Whether every kernel object of sb exists (netns, veth, ipc and uts mounts)."""
        return sandboxes.is_complete(sb)

    def _describe(self, pod_key: str, ip: str, hostname: str, mappings: tuple[PortMapping, ...]) -> Sandbox:
        netns = names.netns_name(self._netns_prefix, self.settings.bridge, pod_key)
        ns_dir = sandboxes.ns_dir(self.settings, netns)
        return Sandbox(
            pod_key=pod_key,
            netns_name=netns,
            netns_path=str(sandboxes.NETNS_DIR / netns),
            ip=ip,
            gateway=self.gateway,
            prefix_len=self.prefix_len,
            ipc_ns_path=str(ns_dir / "ipc"),
            uts_ns_path=str(ns_dir / "uts"),
            veth_host=names.veth_name(self.settings.bridge, pod_key),
            hostname=hostname,
            port_mappings=mappings,
        )

    def _reserve_host_ports(self, pod_key: str, mappings: tuple[PortMapping, ...]) -> None:
        self.host_ports.release(pod_key)
        try:
            for m in mappings:
                self.host_ports.reserve(pod_key, m.protocol, m.host_port)
        except AllocationError:
            self.host_ports.release(pod_key)
            raise

    async def _forget(self, sb: Sandbox) -> None:
        await sandboxes.destroy(sb)

        def release() -> None:
            self.pod_ips.release(sb.pod_key)
            self.host_ports.release(sb.pod_key)

        await asyncio.to_thread(release)
        await sandboxes.remove_record(self.settings, sb)
        (await self._load()).pop(sb.pod_key, None)

    async def _sync_hostports(self) -> None:
        async with self._hostports_lock:
            records = await self._load()
            await rules.apply(hostports.render_hostports(self.settings.chain_prefix, records.values()))

    async def _load(self) -> dict[str, Sandbox]:
        if self._records is None:
            self._records = await sandboxes.read_records(self.settings)
        return self._records

    def _pod_lock(self, pod_key: str) -> asyncio.Lock:
        return self._pod_locks.setdefault(pod_key, asyncio.Lock())

    # -- pod files ---------------------------------------------------------------------

    def resolv_conf(self, namespace: str) -> str:
        """/etc/resolv.conf for a pod of namespace (ClusterFirst)."""
        return pod_files.resolv_conf(
            namespace=namespace, cluster_domain=self.settings.cluster_domain, nameserver=self.gateway)

    def hosts_file(self, pod_name: str, ip: str) -> str:
        """/etc/hosts for a pod."""
        return pod_files.hosts_file(pod_name=pod_name, ip=ip)

    # -- service addresses (called by the API server) ----------------------------------

    def allocate_cluster_ip(self, service_key: str, requested: str | None = None) -> str:
        """The service's ClusterIP: its current one, `requested`, or the next free one.

        Raises OutOfRangeError (not in service_cidr), AllocationConflictError (held by
        another service), RangeExhaustedError.
        """
        return self.cluster_ips.allocate(service_key, requested)

    def release_cluster_ip(self, service_key: str) -> None:
        self.cluster_ips.release(service_key)

    def allocate_node_port(self, service_key: str, requested: int | None = None) -> int:
        """One NodePort for the service: `requested` (idempotent for the same service) or a
        random free one. Call once per service port. Raises OutOfRangeError,
        AllocationConflictError ("port 30080 is already allocated to default/web"),
        RangeExhaustedError."""
        return self.node_ports.allocate(service_key, requested)

    def release_node_port(self, service_key: str, node_port: int | None = None) -> None:
        """Free one NodePort of the service, or all of them when node_port is None."""
        self.node_ports.release(service_key, node_port)

    def node_ports_of(self, service_key: str) -> list[int]:
        return self.node_ports.ports_of(service_key)
