"""Containers outlive the process that made them; a new Runtime re-adopts them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from shoal.runtime import Runtime
from tests.runtime.conftest import needs_runc

pytestmark = [needs_runc, pytest.mark.slow]

CREATOR = textwrap.dedent("""
    import asyncio, sys, time
    from pathlib import Path
    from shoal.runtime import ContainerIntent, Runtime

    async def main():
        rt = Runtime(Path(sys.argv[1]), cgroup_parent=sys.argv[2])
        script = "echo before; trap 'echo got-term; exit 7' TERM; while true; do sleep 0.1; done"
        await rt.run(ContainerIntent(id="survivor", rootfs=Path(sys.argv[3]), command=["sh", "-c", script]))
        print("created", flush=True)
        time.sleep(600)

    asyncio.run(main())
""")


async def test_container_survives_creator_kill9_and_is_readopted(
        tmp_path: Path, cgroup_parent: str, busybox_rootfs: Path, runtime: Runtime) -> None:
    root = runtime.paths.root
    creator = subprocess.Popen(
        [sys.executable, "-c", CREATOR, str(root), cgroup_parent, str(busybox_rootfs)],
        stdout=subprocess.PIPE, start_new_session=True, cwd=Path(__file__).resolve().parents[2])
    try:
        assert creator.stdout.readline().strip() == b"created"
    finally:
        os.killpg(creator.pid, signal.SIGKILL)
        creator.wait()
    time.sleep(0.2)

    adopted = Runtime(root, cgroup_parent=cgroup_parent)  # a "restarted daemon"
    [st] = await adopted.list()
    assert (st.id, st.state) == ("survivor", "running") and st.pid
    assert [line.text async for line in adopted.logs("survivor")] == ["before"]
    code, out, _ = await adopted.exec("survivor", ["echo", "still-here"], timeout=30)
    assert (code, out) == (0, b"still-here\n")
    final = await adopted.stop("survivor", grace_seconds=20)
    assert (final.state, final.exit_code) == ("exited", 7)
    assert [line.text async for line in adopted.logs("survivor")] == ["before", "got-term"]
