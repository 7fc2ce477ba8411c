"""Fixtures for the runtime tests: a busybox rootfs made from /bin/busybox, and a Runtime
with its own root (tmp_path) and its own cgroup parent, torn down even on failure."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from shoal.runtime import Runtime

CGROUP_ROOT = Path("/sys/fs/cgroup")

needs_runc = pytest.mark.skipif(
    not (shutil.which("runc") and shutil.which("conmon") and Path("/bin/busybox").exists()),
    reason="needs runc, conmon and busybox-static",
)


def make_busybox_rootfs(dest: Path) -> Path:
    """/bin/busybox plus its applets as relative symlinks, and minimal /etc files."""
    bin_dir = dest / "bin"
    bin_dir.mkdir(parents=True)
    shutil.copy2("/bin/busybox", bin_dir / "busybox")
    applets = subprocess.run(["/bin/busybox", "--list"], capture_output=True, text=True, check=True).stdout.split()
    for applet in applets:
        if applet != "busybox":
            (bin_dir / applet).symlink_to("busybox")
    etc = dest / "etc"
    etc.mkdir()
    (etc / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\n"
        "app:x:1000:1000:app:/home/app:/bin/sh\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
    )
    (etc / "group").write_text("root:x:0:\napp:x:1000:\nextra:x:2000:app\nnogroup:x:65534:\n")
    (etc / "nsswitch.conf").write_text("passwd: files\ngroup: files\nhosts: files dns\n")
    for d in ("root", "home/app", "tmp", "work"):
        (dest / d).mkdir(parents=True)
    (dest / "tmp").chmod(0o1777)
    (dest / "home/app").chmod(0o777)
    return dest


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_busybox_rootfs(tmp_path_factory.mktemp("busybox") / "rootfs")


def leftover_cgroups(parent: str) -> list[Path]:
    return [h / parent for h in CGROUP_ROOT.iterdir() if (h / parent).exists()]


@pytest.fixture
def cgroup_parent() -> str:
    return f"shoal-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def runtime(tmp_path: Path, cgroup_parent: str):
    rt = Runtime(tmp_path / "containers", cgroup_parent=cgroup_parent)
    try:
        yield rt
    finally:
        await rt.cleanup_all()
        left = leftover_cgroups(cgroup_parent)
        for path in left:  # never leave them behind, even when the assertion below fails
            for child in sorted(path.glob("*"), reverse=True):
                if child.is_dir():
                    child.rmdir()
            path.rmdir()
        assert not left, f"cgroups left behind: {left}"
