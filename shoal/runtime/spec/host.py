"""Facts about the host the spec depends on: CPU arch (seccomp) and kernel version."""

from __future__ import annotations

import dataclasses
import platform

# Go/libseccomp arch names, as Docker's profile spells them, by uname machine.
_ARCH_BY_MACHINE = {
    "x86_64": "amd64",
    "aarch64": "arm64",
    "armv7l": "arm",
    "i686": "x86",
    "i386": "x86",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
    "mips64": "mips64",
}


@dataclasses.dataclass(frozen=True)
class HostInfo:
    arch: str = "amd64"
    """libseccomp arch name: amd64, arm64, ..."""
    kernel: tuple[int, int] = (6, 1)
    """(major, minor) of the running kernel."""

    @classmethod
    def detect(cls) -> "HostInfo":
        machine = platform.machine()
        major, _, rest = platform.release().partition(".")
        minor = "".join(ch for ch in rest.split(".")[0] if ch.isdigit()) or "0"
        return cls(arch=_ARCH_BY_MACHINE.get(machine, machine), kernel=(int(major), int(minor)))
