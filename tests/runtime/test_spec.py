"""The pure OCI spec: Kubernetes semantics, secure defaults, and the runtime-spec schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import referencing

from shoal.runtime import (
    ContainerIntent, HostInfo, Mount, Resources, Security, SpecError, oci_spec,
)
from shoal.runtime.spec import resources as res_mod
from shoal.runtime.spec.seccomp import docker_default_profile

SCHEMA_DIR = Path(__file__).with_name("schema")
HOST = HostInfo(arch="amd64", kernel=(6, 1))


def _validator() -> jsonschema.Draft4Validator:
    """The vendored schema; its `id`s and relative `$ref`s resolve to the local files by name."""

    def retrieve(uri: str) -> referencing.Resource:
        name = uri.rsplit("/", 1)[-1]
        return referencing.Resource.from_contents(
            json.loads((SCHEMA_DIR / name).read_text()), default_specification=referencing.jsonschema.DRAFT4)

    schema = json.loads((SCHEMA_DIR / "config-schema.json").read_text())
    registry = referencing.Registry(retrieve=retrieve)
    return jsonschema.Draft4Validator(schema, registry=registry)


def validate(spec: dict) -> None:
    errors = sorted(_validator().iter_errors(spec), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def intent(rootfs: Path, **kw) -> ContainerIntent:
    return ContainerIntent(id=kw.pop("id", "c1"), rootfs=rootfs, **kw)


def syscalls_allowed(spec: dict) -> set[str]:
    return {n for rule in spec["linux"]["seccomp"]["syscalls"] if rule["action"] == "SCMP_ACT_ALLOW"
            and not rule.get("args") for n in rule["names"]}


# -- schema ----------------------------------------------------------------------------


def test_default_spec_validates(busybox_rootfs: Path) -> None:
    validate(oci_spec(intent(busybox_rootfs, command=["sh"]), {}, host=HOST))


def test_pod_style_spec_validates(busybox_rootfs: Path) -> None:
    spec = oci_spec(intent(
        busybox_rootfs, command=["sh"], args=["-c", "true"], env={"A": "1"}, user="app",
        network="/var/run/netns/pod1", ipc_ns_path="/proc/1/ns/ipc", uts_ns_path="/proc/1/ns/uts",
        hostname="web-0", mounts=[Mount("/data", "/tmp", read_only=True)],
        resources=Resources(memory_limit_bytes=64 << 20, cpu_limit_millicores=500, cpu_request_millicores=250,
                            pids_limit=100),
        security=Security(cap_add=("NET_ADMIN",), cap_drop=("MKNOD",), read_only_rootfs=True),
        etc_hosts=Path("/tmp/hosts"), resolv_conf=Path("/tmp/resolv.conf"),
        annotations={"io.kubernetes.pod.name": "web-0"}, tty=True,
    ), {"Env": ["PATH=/bin"], "WorkingDir": "/work"}, host=HOST)
    validate(spec)


def test_schema_rejects_a_broken_spec(busybox_rootfs: Path) -> None:
    """The validator is live: a wrong type in a field the schema knows is reported."""
    spec = oci_spec(intent(busybox_rootfs, command=["sh"]), {}, host=HOST)
    spec["process"]["user"]["uid"] = -1
    spec["linux"]["namespaces"].append({"type": "bogus"})
    with pytest.raises(AssertionError, match="uid"):
        validate(spec)


# -- process: command/args/env/cwd/user --------------------------------------------------


IMAGE = {"Entrypoint": ["/entry"], "Cmd": ["serve", "--port=80"], "Env": ["PATH=/img/bin", "A=image", "B=image"],
         "WorkingDir": "/srv", "User": "app"}


@pytest.mark.parametrize("command,args,expected", [
    (None, None, ["/entry", "serve", "--port=80"]),
    (["/bin/other"], None, ["/bin/other"]),
    (None, ["check"], ["/entry", "check"]),
    (["/bin/other"], ["x"], ["/bin/other", "x"]),
])
def test_command_and_args_follow_kubernetes(busybox_rootfs: Path, command, args, expected) -> None:
    spec = oci_spec(intent(busybox_rootfs, command=command, args=args), IMAGE, host=HOST)
    assert spec["process"]["args"] == expected


def test_no_command_at_all_names_the_field(busybox_rootfs: Path) -> None:
    with pytest.raises(SpecError, match="^command:"):
        oci_spec(intent(busybox_rootfs), {}, host=HOST)


def test_env_is_image_then_container(busybox_rootfs: Path) -> None:
    spec = oci_spec(intent(busybox_rootfs, env=["B=mine", "C=mine"]), IMAGE, host=HOST)
    env = spec["process"]["env"]
    assert "A=image" in env and "B=mine" in env and "C=mine" in env and "B=image" not in env
    assert "PATH=/img/bin" in env and "HOSTNAME=c1" in env


def test_user_by_name_and_number(busybox_rootfs: Path) -> None:
    by_name = oci_spec(intent(busybox_rootfs, command=["sh"]), IMAGE, host=HOST)["process"]["user"]
    assert by_name == {"uid": 1000, "gid": 1000, "additionalGids": [2000]}
    numeric = oci_spec(intent(busybox_rootfs, command=["sh"], user="4242:77"), IMAGE, host=HOST)["process"]["user"]
    assert numeric == {"uid": 4242, "gid": 77}
    ctx = oci_spec(intent(busybox_rootfs, command=["sh"], security=Security(run_as_user=5, run_as_group=6)),
                   IMAGE, host=HOST)["process"]["user"]
    assert (ctx["uid"], ctx["gid"]) == (5, 6)


def test_unknown_user_names_the_field(busybox_rootfs: Path) -> None:
    with pytest.raises(SpecError, match="user.*'ghost' not found"):
        oci_spec(intent(busybox_rootfs, command=["sh"], user="ghost"), {}, host=HOST)


def test_run_as_non_root_refuses_a_root_image(busybox_rootfs: Path) -> None:
    with pytest.raises(SpecError, match="runAsNonRoot"):
        oci_spec(intent(busybox_rootfs, command=["sh"], security=Security(run_as_non_root=True)), {}, host=HOST)
    ok = oci_spec(intent(busybox_rootfs, command=["sh"], security=Security(run_as_non_root=True, run_as_user=1000)),
                  {}, host=HOST)
    assert ok["process"]["user"]["uid"] == 1000


def test_relative_working_dir_is_refused(busybox_rootfs: Path) -> None:
    with pytest.raises(SpecError, match="workingDir"):
        oci_spec(intent(busybox_rootfs, command=["sh"], working_dir="srv"), {}, host=HOST)


# -- namespaces and mounts -----------------------------------------------------------------


def test_namespaces_private_joined_and_host(busybox_rootfs: Path) -> None:
    own = oci_spec(intent(busybox_rootfs, command=["sh"]), {}, host=HOST)["linux"]["namespaces"]
    assert {"type": "network"} in own and {"type": "mount"} in own and {"type": "pid"} in own
    pod = oci_spec(intent(busybox_rootfs, command=["sh"], network="/var/run/netns/p", ipc_ns_path="/x/ipc",
                          uts_ns_path="/x/uts"), {}, host=HOST)["linux"]["namespaces"]
    assert {"type": "network", "path": "/var/run/netns/p"} in pod
    assert {"type": "ipc", "path": "/x/ipc"} in pod and {"type": "uts", "path": "/x/uts"} in pod
    host_spec = oci_spec(intent(busybox_rootfs, command=["sh"], network="host"), {}, host=HOST)
    assert not any(ns["type"] == "network" for ns in host_spec["linux"]["namespaces"])
    sys_mount = next(m for m in host_spec["mounts"] if m["destination"] == "/sys")
    assert sys_mount["type"] == "bind" and "ro" in sys_mount["options"]


def test_etc_files_and_user_mounts(busybox_rootfs: Path) -> None:
    spec = oci_spec(intent(busybox_rootfs, command=["sh"], etc_hosts=Path("/p/hosts"), resolv_conf=Path("/p/resolv"),
                           mounts=[Mount("/data", "/srv/data", read_only=True)]), {}, host=HOST)
    by_dest = {m["destination"]: m for m in spec["mounts"]}
    assert by_dest["/etc/hosts"]["source"] == "/p/hosts"
    assert by_dest["/etc/resolv.conf"]["source"] == "/p/resolv"
    assert by_dest["/data"]["options"] == ["rbind", "rprivate", "ro"]
    with pytest.raises(SpecError, match=r"mounts\[0\].source"):
        oci_spec(intent(busybox_rootfs, command=["sh"], mounts=[Mount("/data", "relative")]), {}, host=HOST)


# -- security -------------------------------------------------------------------------------


def test_secure_defaults(busybox_rootfs: Path) -> None:
    spec = oci_spec(intent(busybox_rootfs, command=["sh"]), {}, host=HOST)
    caps = spec["process"]["capabilities"]
    assert len(caps["bounding"]) == 14 and "CAP_SYS_ADMIN" not in caps["bounding"] and "CAP_NET_RAW" in caps["bounding"]
    assert "ambient" not in caps
    assert spec["process"]["noNewPrivileges"] is True
    assert "/proc/kcore" in spec["linux"]["maskedPaths"] and "/proc/sys" in spec["linux"]["readonlyPaths"]
    assert spec["linux"]["resources"]["devices"] == [{"allow": False, "access": "rwm"}]
    assert spec["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"


def test_capabilities_add_drop_and_privileged(busybox_rootfs: Path) -> None:
    spec = oci_spec(intent(busybox_rootfs, command=["sh"], security=Security(cap_add=("NET_ADMIN",), cap_drop=("ALL",))),
                    {}, host=HOST)
    assert spec["process"]["capabilities"]["bounding"] == ["CAP_NET_ADMIN"]
    priv = oci_spec(intent(busybox_rootfs, command=["sh"], security=Security(privileged=True)), {}, host=HOST)
    assert "CAP_SYS_ADMIN" in priv["process"]["capabilities"]["bounding"]
    assert "seccomp" not in priv["linux"] and priv["linux"]["maskedPaths"] == []
    assert priv["process"]["noNewPrivileges"] is False
    with pytest.raises(SpecError, match=r"capabilities.add\[0\]"):
        oci_spec(intent(busybox_rootfs, command=["sh"], security=Security(cap_add=("FLY",))), {}, host=HOST)


def test_seccomp_follows_caps_and_arch_as_docker_does(busybox_rootfs: Path) -> None:
    default = oci_spec(intent(busybox_rootfs, command=["sh"]), {}, host=HOST)
    allowed = syscalls_allowed(default)
    assert {"read", "execve", "arch_prctl", "ptrace"} <= allowed  # ptrace: kernel >= 4.8
    assert not {"mount", "unshare", "reboot", "bpf", "s390_runtime_instr"} & allowed
    assert "chroot" in allowed  # CAP_SYS_CHROOT is a default capability
    clone3 = [r for r in default["linux"]["seccomp"]["syscalls"] if r["names"] == ["clone3"]]
    assert clone3 == [{"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]
    assert default["linux"]["seccomp"]["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]

    admin = oci_spec(intent(busybox_rootfs, command=["sh"], security=Security(cap_add=("SYS_ADMIN",))), {}, host=HOST)
    assert {"mount", "unshare", "clone3"} <= syscalls_allowed(admin)
    assert not any(r["names"] == ["clone3"] and r["action"] == "SCMP_ACT_ERRNO"
                   for r in admin["linux"]["seccomp"]["syscalls"])

    old_kernel = oci_spec(intent(busybox_rootfs, command=["sh"]), {}, host=HOST.__class__("amd64", (4, 4)))
    assert "ptrace" not in syscalls_allowed(old_kernel)
    arm = oci_spec(intent(busybox_rootfs, command=["sh"]), {}, host=HOST.__class__("arm64", (6, 1)))
    assert "arch_prctl" not in syscalls_allowed(arm) and "set_tls" in syscalls_allowed(arm)


def test_vendored_profile_is_dockers(busybox_rootfs: Path) -> None:
    profile = docker_default_profile()
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO" and len(profile["syscalls"][0]["names"]) > 300


# -- resources ------------------------------------------------------------------------------


def test_resources_as_kubelet_computes_them(busybox_rootfs: Path) -> None:
    spec = oci_spec(intent(busybox_rootfs, command=["sh"], resources=Resources(
        memory_limit_bytes=32 << 20, cpu_limit_millicores=500, cpu_request_millicores=250, pids_limit=10)), {}, host=HOST)
    r = spec["linux"]["resources"]
    assert r["memory"] == {"limit": 32 << 20, "swap": 32 << 20}
    assert r["cpu"] == {"quota": 50_000, "period": 100_000, "shares": 256}
    assert r["pids"] == {"limit": 10}
    assert res_mod.milli_cpu_to_shares(0) == 2 and res_mod.milli_cpu_to_shares(1) == 2
    assert res_mod.milli_cpu_to_shares(1000) == 1024 and res_mod.milli_cpu_to_quota(1) == 1000
    limit_only = oci_spec(intent(busybox_rootfs, command=["sh"], resources=Resources(cpu_limit_millicores=2000)),
                          {}, host=HOST)["linux"]["resources"]["cpu"]
    assert limit_only["shares"] == 2048  # requests default to limits
    with pytest.raises(SpecError, match="resources.limits.memory"):
        oci_spec(intent(busybox_rootfs, command=["sh"], resources=Resources(memory_limit_bytes=1000)), {}, host=HOST)
    assert spec["linux"]["cgroupsPath"] == "/shoal/c1"


def test_shipped_oci_profile_is_the_conversion_for_default_caps() -> None:
    from shoal.runtime.spec.seccomp import DEFAULT_OCI_PATH, seccomp_profile
    from shoal.runtime.spec.security import DEFAULT_CAPABILITIES

    shipped = json.loads(DEFAULT_OCI_PATH.read_text())
    assert shipped == seccomp_profile(DEFAULT_CAPABILITIES, HOST)
    validate({"ociVersion": "1.0.2", "linux": {"seccomp": shipped}})


def test_runc_on_this_hybrid_host_crun_on_pure_v2(tmp_path: Path) -> None:
    from shoal.runtime import pick_runtime_binary

    assert pick_runtime_binary(tmp_path) == "runc"  # no cgroup.controllers: v1/hybrid
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    import shutil
    assert pick_runtime_binary(tmp_path) == ("crun" if shutil.which("crun") else "runc")
