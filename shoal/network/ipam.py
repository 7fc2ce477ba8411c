"""Address and port allocation: pod IPs, ClusterIPs, NodePorts and hostPorts.

Every reservation is a row in `shoal.store.allocations.Allocations` (SQLite, in the
store file), so a restarted daemon never hands out an address still in use. Pools:

- `pod:<pod_cidr>`         value = IP,           owner = pod key (`ns/name`)
- `service:<service_cidr>` value = IP,           owner = service key
- `nodeport`               value = port,         owner = service key
- `hostport`               value = `TCP/8080`,   owner = pod key

Addresses are handed out round-robin from just after the last one given (like CNI's
host-local IPAM), so an address freed a moment ago is not reused at once while stale ARP
or conntrack entries may still point at it. The network address, the broadcast address
and, for pods, the gateway (first host address) are never handed out.

Concurrency: every call is synchronous and short (SQLite on an indexed table). Racing
allocators are safe: `Allocations.reserve` is a guarded INSERT, and a lost race just moves
on to the next candidate. Async callers batch-heavy paths through `asyncio.to_thread`.
"""

from __future__ import annotations

import ipaddress
import random
from typing import Protocol

from shoal.network.errors import AllocationConflictError, OutOfRangeError, RangeExhaustedError


class Allocations(Protocol):
    """The persistent reservation table IPAM needs. The network layer owns this protocol;
    the store implements it (`shoal.store.allocations.Allocations`, one SQLite table), so
    network does not import the layer above it."""

    def reserve(self, pool: str, value: str, owner: str) -> bool: ...
    def release(self, pool: str, value: str) -> None: ...
    def release_owner(self, pool: str, owner: str) -> list[str]: ...
    def owned(self, pool: str) -> dict[str, str]: ...


class AddressAllocator:
    """One IPv4 address per owner from a CIDR."""

    def __init__(self, allocations: Allocations, *, cidr: str, pool: str, setting: str, skip_gateway: bool) -> None:
        self._allocations = allocations
        self.network = ipaddress.IPv4Network(cidr)
        self.pool = pool
        self._setting = setting
        first = int(self.network.network_address) + 1
        self._first = first + (1 if skip_gateway else 0)
        self._last = int(self.network.broadcast_address) - 1
        self._cursor: int | None = None

    @property
    def gateway(self) -> str:
        return str(self.network.network_address + 1)

    def address_of(self, owner: str) -> str | None:
        for value, who in self._allocations.owned(self.pool).items():
            if who == owner:
                return value
        return None

    def allocate(self, owner: str, requested: str | None = None) -> str:
        """The owner's address: its existing one, else `requested`, else the next free one."""
        owned = self._allocations.owned(self.pool)
        existing = next((v for v, who in owned.items() if who == owner), None)
        if requested is not None:
            address = self._check_in_range(requested)
            if existing is not None and existing != address:
                raise AllocationConflictError(
                    f"{owner} already holds {existing}; release it before requesting {address}",
                    value=address, owner=owner)
            if not self._allocations.reserve(self.pool, address, owner):
                holder = self._allocations.owned(self.pool).get(address)
                raise AllocationConflictError(
                    f"{address} is already allocated to {holder} (pool {self.pool})", value=address, owner=holder)
            return address
        if existing is not None:
            return existing
        used = {int(ipaddress.IPv4Address(v)) for v in owned}
        size = self._last - self._first + 1
        if size <= 0:
            raise RangeExhaustedError(f"{self._setting} {self.network} has no usable addresses")
        start = self._cursor if self._cursor is not None else max(used, default=self._first - 1) + 1
        for step in range(size):
            candidate = self._first + (start - self._first + step) % size
            if candidate in used:
                continue
            address = str(ipaddress.IPv4Address(candidate))
            if self._allocations.reserve(self.pool, address, owner):
                self._cursor = candidate + 1
                return address
        raise RangeExhaustedError(
            f"{self._setting} {self.network} is exhausted: all {size} addresses are allocated")

    def release(self, owner: str) -> list[str]:
        return self._allocations.release_owner(self.pool, owner)

    def _check_in_range(self, requested: str) -> str:
        try:
            address = ipaddress.IPv4Address(requested)
        except ValueError:
            raise OutOfRangeError(f"{requested!r} is not an IPv4 address") from None
        if not self._first <= int(address) <= self._last:
            raise OutOfRangeError(
                f"{address} is not a usable address of {self._setting} {self.network}")
        return str(address)


class PortAllocator:
    """Ports from an inclusive range; an owner may hold several (one per service port)."""

    def __init__(self, allocations: Allocations, *, low: int, high: int, pool: str, setting: str) -> None:
        self._allocations = allocations
        self.low, self.high = low, high
        self.pool = pool
        self._setting = setting

    def allocate(self, owner: str, requested: int | None = None) -> int:
        """Reserve `requested` for owner (idempotent), or a random free port of the range."""
        if requested is not None:
            if not self.low <= requested <= self.high:
                raise OutOfRangeError(
                    f"port {requested} is outside {self._setting} {self.low}-{self.high}")
            if not self._allocations.reserve(self.pool, str(requested), owner):
                holder = self._allocations.owned(self.pool).get(str(requested))
                raise AllocationConflictError(
                    f"port {requested} is already allocated to {holder}", value=str(requested), owner=holder)
            return requested
        used = {int(v) for v in self._allocations.owned(self.pool)}
        free = [p for p in range(self.low, self.high + 1) if p not in used]
        random.shuffle(free)
        for port in free:
            if self._allocations.reserve(self.pool, str(port), owner):
                return port
        raise RangeExhaustedError(
            f"{self._setting} {self.low}-{self.high} is exhausted: every port is allocated")

    def ports_of(self, owner: str) -> list[int]:
        return sorted(int(v) for v, who in self._allocations.owned(self.pool).items() if who == owner)

    def release(self, owner: str, port: int | None = None) -> list[int]:
        if port is None:
            return [int(v) for v in self._allocations.release_owner(self.pool, owner)]
        if self._allocations.owned(self.pool).get(str(port)) == owner:
            self._allocations.release(self.pool, str(port))
            return [port]
        return []


class HostPortAllocator:
    """hostPorts by protocol: one pod per (protocol, port), whatever its host IP."""

    POOL = "hostport"

    def __init__(self, allocations: Allocations) -> None:
        self._allocations = allocations

    def reserve(self, owner: str, protocol: str, port: int) -> None:
        value = f"{protocol}/{port}"
        if not self._allocations.reserve(self.POOL, value, owner):
            holder = self._allocations.owned(self.POOL).get(value)
            raise AllocationConflictError(
                f"hostPort {port}/{protocol} is already used by pod {holder}", value=value, owner=holder)

    def release(self, owner: str) -> None:
        self._allocations.release_owner(self.POOL, owner)
