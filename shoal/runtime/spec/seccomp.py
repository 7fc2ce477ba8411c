"""Docker's default seccomp profile, converted to the OCI form for given caps and arch.

`docker-default-seccomp.json` beside this module is moby's profiles/seccomp/default.json
verbatim (Apache-2.0, see the NOTICE in this folder). Its rules carry conditions
(`includes`/`excludes` on caps, arches and minKernel) that the OCI form does not have;
`seccomp_profile` evaluates them exactly as moby's `setupSeccomp` does: a rule is kept when
every included cap is in the container's bounding set, its arch is listed, the kernel is
at least minKernel, and no excluded cap or arch matches. So `cap_add: [SYS_ADMIN]` gets
mount(2) allowed, as with Docker, and the default set does not.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, Iterable

from shoal.runtime.spec.host import HostInfo
from shoal.runtime.spec.security import DEFAULT_CAPABILITIES

PROFILE_PATH = Path(__file__).with_name("docker-default-seccomp.json")

# libseccomp native arch name -> SCMP_ARCH_* (moby nativeToSeccomp)
_NATIVE_TO_SECCOMP = {
    "x86": "SCMP_ARCH_X86", "amd64": "SCMP_ARCH_X86_64", "arm": "SCMP_ARCH_ARM",
    "arm64": "SCMP_ARCH_AARCH64", "mips64": "SCMP_ARCH_MIPS64", "mips64n32": "SCMP_ARCH_MIPS64N32",
    "mipsel64": "SCMP_ARCH_MIPSEL64", "mipsel64n32": "SCMP_ARCH_MIPSEL64N32",
    "ppc64le": "SCMP_ARCH_PPC64LE", "s390x": "SCMP_ARCH_S390X", "riscv64": "SCMP_ARCH_RISCV64",
}


@functools.lru_cache(maxsize=1)
def docker_default_profile() -> dict[str, Any]:
    return json.loads(PROFILE_PATH.read_text())


def _kernel_at_least(host: HostInfo, minimum: str) -> bool:
    major, _, minor = minimum.partition(".")
    return host.kernel >= (int(major), int(minor or 0))


def _rule_applies(rule: dict[str, Any], caps: frozenset[str], host: HostInfo) -> bool:
    inc = rule.get("includes") or {}
    exc = rule.get("excludes") or {}
    if inc.get("arches") and host.arch not in inc["arches"]:
        return False
    if inc.get("caps") and not all(c in caps for c in inc["caps"]):
        return False
    if inc.get("minKernel") and not _kernel_at_least(host, inc["minKernel"]):
        return False
    if exc.get("arches") and host.arch in exc["arches"]:
        return False
    if exc.get("caps") and any(c in caps for c in exc["caps"]):
        return False
    return True


@functools.lru_cache(maxsize=64)
def _convert(caps: frozenset[str], host: HostInfo) -> str:
    profile = docker_default_profile()
    out: dict[str, Any] = {"defaultAction": profile["defaultAction"]}
    if "defaultErrnoRet" in profile:
        out["defaultErrnoRet"] = profile["defaultErrnoRet"]
    native = _NATIVE_TO_SECCOMP.get(host.arch)
    arches: list[str] = []
    for entry in profile.get("archMap") or []:
        if entry["architecture"] == native:
            arches.append(entry["architecture"])
            arches.extend(entry.get("subArchitectures") or [])
    if arches:
        out["architectures"] = arches
    syscalls = []
    for rule in profile["syscalls"]:
        if not _rule_applies(rule, caps, host):
            continue
        call: dict[str, Any] = {"names": list(rule["names"]), "action": rule["action"]}
        if rule.get("errnoRet") is not None:
            call["errnoRet"] = rule["errnoRet"]
        if rule.get("args"):
            call["args"] = [dict(a) for a in rule["args"]]
        syscalls.append(call)
    out["syscalls"] = syscalls
    return json.dumps(out)


def seccomp_profile(caps: Iterable[str], host: HostInfo) -> dict[str, Any]:
    """The OCI `linux.seccomp` object for a container with bounding set `caps` on `host`."""
    return json.loads(_convert(frozenset(caps), host))


DEFAULT_OCI_PATH = Path(__file__).with_name("seccomp-default-amd64.oci.json")
"""The profile a default container gets on amd64 (Docker's 14 capabilities, kernel >= 4.8),
in OCI form, kept for reading and diffing; a test checks it equals the conversion.
Regenerate: python -m shoal.runtime.spec.seccomp"""


def main() -> None:
    profile = seccomp_profile(DEFAULT_CAPABILITIES, HostInfo(arch="amd64", kernel=(6, 1)))
    DEFAULT_OCI_PATH.write_text(json.dumps(profile, indent=1) + "\n")


if __name__ == "__main__":
    main()
