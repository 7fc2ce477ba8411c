"""Base images without Docker Hub: Debian via mmdebstrap, and a tiny busybox image.

Both are apko-style: inputs (suite, package list, SOURCE_DATE_EPOCH) in, one layer and
an OCI config out, no Dockerfile. Reproducibility: mtimes are clamped to
SOURCE_DATE_EPOCH (default: the env var, else 0), tars are written by name order with
root ownership, gzip headers carry no name or time; the busybox layer is therefore
byte-identical across runs. For Debian, mmdebstrap does the clamping itself (it honours
SOURCE_DATE_EPOCH); the layer is stored uncompressed so its digest is mmdebstrap's tar.

The mirror comes from apt's configuration (aptsources.py), never from a constant.
Blocking (mmdebstrap runs ~20 s); asyncio callers use `asyncio.to_thread`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Sequence

from shoal import timestamps
from shoal.images import aptsources, mediatypes
from shoal.images.errors import BootstrapError
from shoal.images.layerfile import ReproducibleTar, store_layer_tar
from shoal.images.reference import Reference

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BUSYBOX_BINARY = Path("/bin/busybox")


def source_date_epoch(value: int | None = None) -> int:
    if value is not None:
        return int(value)
    return int(os.environ.get("SOURCE_DATE_EPOCH", "0"))


def base_config(epoch: int, cmd: list[str], created_by: str) -> dict:
    """Pure: the OCI image config of a one-layer base image (rootfs filled by commit)."""
    created = timestamps.format_time(epoch)
    plat = mediatypes.host_platform()
    return {
        "created": created,
        "architecture": plat["architecture"],
        "os": plat["os"],
        **({"variant": plat["variant"]} if "variant" in plat else {}),
        "config": {"Env": [f"PATH={DEFAULT_PATH}"], "Cmd": cmd, "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": []},
        "history": [{"created": created, "created_by": created_by}],
    }


def _image_ref(name: str) -> Reference:
    return Reference.parse(name)


# -- busybox -------------------------------------------------------------------------

ETC_FILES = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    "etc/group": "root:x:0:\nnogroup:x:65534:\n",
    "etc/nsswitch.conf": "passwd: files\ngroup: files\nhosts: files dns\n",
    "etc/hosts": "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
}
BASE_DIRS = {"bin": 0o755, "dev": 0o755, "etc": 0o755, "home": 0o755, "proc": 0o555, "root": 0o700,
             "sbin": 0o755, "sys": 0o555, "tmp": 0o1777, "usr": 0o755, "usr/bin": 0o755,
             "usr/sbin": 0o755, "var": 0o755, "var/tmp": 0o1777}


def busybox_applets(binary: Path) -> list[str]:
    """Install paths of every applet (`bin/sh`, `usr/bin/wget`, ...), from the binary."""
    proc = subprocess.run([str(binary), "--list-full"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise BootstrapError(f"{binary} --list-full: {proc.stderr.strip()}")
    return sorted({line.strip().lstrip("/") for line in proc.stdout.splitlines() if line.strip()})


def write_busybox_tar(out: Path, binary: Path, epoch: int) -> None:
    applets = [a for a in busybox_applets(binary) if a != "bin/busybox"]
    entries: dict[str, tuple] = {d: ("dir", m) for d, m in BASE_DIRS.items()}
    for path in applets:
        parent = os.path.dirname(path)
        while parent and parent not in entries:
            entries[parent] = ("dir", 0o755)
            parent = os.path.dirname(parent)
        entries[path] = ("symlink", "/bin/busybox")
    entries["bin/busybox"] = ("file", binary.read_bytes(), 0o755)
    for path, text in ETC_FILES.items():
        entries[path] = ("file", text.encode(), 0o644)
    with ReproducibleTar(out, epoch) as tar:
        for name in sorted(entries):
            kind, *rest = entries[name]
            if kind == "dir":
                tar.add_dir(name, rest[0])
            elif kind == "file":
                tar.add_file(name, rest[0], rest[1])
            else:
                tar.add_symlink(name, rest[0])


def bootstrap_busybox(store, name: str = "busybox", *, binary: Path = BUSYBOX_BINARY,
                      epoch: int | None = None):
    """A one-layer image: /bin/busybox, an applet symlink each, minimal /etc."""
    if not binary.is_file():
        raise BootstrapError(f"{binary}: not found (install the busybox-static package)")
    epoch = source_date_epoch(epoch)
    ref = _image_ref(name)
    with tempfile.TemporaryDirectory(dir=store.paths.ingest) as tmp:
        tar_path = Path(tmp) / "layer.tar"
        write_busybox_tar(tar_path, binary, epoch)
        layer = store_layer_tar(store, tar_path, compress=True)
    config = base_config(epoch, ["sh"], f"shoal image bootstrap --busybox ({binary})")
    return store.commit_image(config, [layer], ref)


# -- Debian --------------------------------------------------------------------------

def mmdebstrap_command(suite: str, include: Sequence[str], out: Path, mirrors: list[str],
                       variant: str = "essential") -> list[str]:
    """Pure: the mmdebstrap argv."""
    cmd = ["mmdebstrap", f"--variant={variant}", "--mode=root", "--format=tar", "--quiet"]
    if include:
        cmd.append("--include=" + ",".join(include))
    return cmd + [suite, str(out), *mirrors]


def bootstrap_debian(store, name: str, *, suite: str = "bookworm", include: Sequence[str] = (),
                     variant: str = "essential", epoch: int | None = None,
                     mirrors: list[str] | None = None):
    """A one-layer Debian image built by mmdebstrap from apt's configured mirror."""
    if shutil.which("mmdebstrap") is None:
        raise BootstrapError("mmdebstrap: not installed (apt-get install mmdebstrap)")
    for pkg in include:
        if not pkg or any(c in pkg for c in " ,\t\n"):
            raise BootstrapError(f"include: package name {pkg!r} is malformed")
    epoch = source_date_epoch(epoch)
    ref = _image_ref(name)
    if mirrors is None:
        mirrors = aptsources.mirror_lines(aptsources.read_apt_sources(), suite)
    with tempfile.TemporaryDirectory(dir=store.paths.ingest) as tmp:
        tar_path = Path(tmp) / "rootfs.tar"
        cmd = mmdebstrap_command(suite, list(include), tar_path, mirrors, variant)
        env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch)}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
            raise BootstrapError(f"mmdebstrap {suite} (include={list(include)}) failed:\n{tail}")
        layer = store_layer_tar(store, tar_path, compress=False)
    config = base_config(epoch, ["bash"], f"mmdebstrap --variant={variant} --include={','.join(include)} {suite}")
    config["config"]["Env"].append("LANG=C.UTF-8")
    return store.commit_image(config, [layer], ref)
