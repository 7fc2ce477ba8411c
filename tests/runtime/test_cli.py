"""`shoal run/ps/logs/exec/stop/rm` as a user types them, against a real image store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shoal.runtime import Runtime
from tests.runtime.conftest import leftover_cgroups, needs_runc

pytestmark = [needs_runc, pytest.mark.slow]

SHOAL = [sys.executable, "-m", "shoal.cli.main"]


@pytest.fixture
def cli_env(tmp_path: Path, cgroup_parent: str):
    images = pytest.importorskip("shoal.images")
    state = tmp_path / "state"
    store = images.ImageStore(state / "images")
    store.bootstrap_busybox("busybox")
    env = {**os.environ, "SHOAL_STATE_DIR": str(state), "SHOAL_CGROUP_PARENT": cgroup_parent}
    try:
        yield env
    finally:
        import asyncio
        asyncio.run(Runtime(state / "containers", cgroup_parent=cgroup_parent).cleanup_all())
        for key in [p.name for p in (state / "images" / "snapshots").glob("*") if p.is_dir()]:
            store.snapshots.remove(key)
        for path in leftover_cgroups(cgroup_parent):
            path.rmdir()


def shoal(env: dict, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*SHOAL, *args], env=env, capture_output=True, text=True, input=stdin, timeout=120,
                          cwd=Path(__file__).resolve().parents[2])


def mounts_under(path: str) -> list[str]:
    return [line for line in Path("/proc/self/mounts").read_text().splitlines() if path in line]


def test_run_foreground_rm(cli_env: dict) -> None:
    res = shoal(cli_env, "run", "--rm", "busybox", "sh", "-c", "echo hi; echo oops >&2; exit 5")
    assert (res.returncode, res.stdout, res.stderr) == (5, "hi\n", "oops\n")
    assert shoal(cli_env, "ps", "-a", "-q").stdout == ""
    assert not mounts_under(cli_env["SHOAL_STATE_DIR"])


def test_detached_lifecycle(cli_env: dict) -> None:
    script = 'echo "$FOO"; trap "echo bye; exit 0" TERM; while true; do sleep 0.1; done'
    res = shoal(cli_env, "run", "-d", "--name", "web", "-e", "FOO=bar", "--memory", "64m", "--pids", "20",
                "busybox", "sh", "-c", script)
    assert res.returncode == 0 and res.stdout.strip() == "web", res.stderr
    ps = shoal(cli_env, "ps").stdout.splitlines()
    assert ps[0].split()[:3] == ["CONTAINER", "ID", "NAME"] and "web" in ps[1] and "Up" in ps[1]
    exec_res = shoal(cli_env, "exec", "web", "sh", "-c", "echo $FOO; cat /sys/fs/cgroup/memory/memory.limit_in_bytes; exit 3")
    assert (exec_res.returncode, exec_res.stdout) == (3, "bar\n67108864\n")
    assert shoal(cli_env, "exec", "-i", "web", "cat", stdin="piped").stdout == "piped"
    assert shoal(cli_env, "stop", "-t", "10", "web").returncode == 0
    assert shoal(cli_env, "logs", "web").stdout == "bar\nbye\n"
    assert shoal(cli_env, "logs", "--tail", "1", "web").stdout == "bye\n"
    assert "Exited (0)" in shoal(cli_env, "ps", "-a").stdout
    assert shoal(cli_env, "ps").stdout.count("\n") == 1  # header only
    assert shoal(cli_env, "rm", "web").returncode == 0
    assert shoal(cli_env, "ps", "-a", "-q").stdout == ""
    assert not mounts_under(cli_env["SHOAL_STATE_DIR"])
    missing = shoal(cli_env, "logs", "web")
    assert missing.returncode == 1 and "no such container: web" in missing.stderr


def test_run_interactive_with_a_terminal(cli_env: dict) -> None:
    """`shoal run -it busybox sh` on a pty: typed commands run, exit code comes back."""
    import pty
    import select
    import time

    master, slave = pty.openpty()
    proc = subprocess.Popen([*SHOAL, "run", "--rm", "-it", "busybox", "sh"], env=cli_env, stdin=slave, stdout=slave,
                            stderr=slave, cwd=Path(__file__).resolve().parents[2], start_new_session=True)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + 60
    sent = False
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
            if not sent and b"# " in out:  # the container shell's prompt
                os.write(master, b"echo hi-$((40+2)); tty; exit 3\n")
                sent = True
            if proc.poll() is not None:
                break
        assert proc.wait(timeout=30) == 3, out
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    assert b"hi-42" in out and b"/dev/pts/0" in out, out
    assert shoal(cli_env, "ps", "-a", "-q").stdout == ""


def test_run_interactive_pipe(cli_env: dict) -> None:
    res = shoal(cli_env, "run", "--rm", "-i", "busybox", "sh", "-c", "tr a-z A-Z; echo done >&2", stdin="shout\n")
    assert (res.returncode, res.stdout, res.stderr) == (0, "SHOUT\n", "done\n")


def test_name_in_use_is_refused_and_the_first_keeps_running(cli_env: dict) -> None:
    assert shoal(cli_env, "run", "-d", "--name", "one", "busybox", "sleep", "300").returncode == 0
    again = shoal(cli_env, "run", "-d", "--name", "one", "busybox", "true")
    assert again.returncode == 1 and "in use" in again.stderr
    assert "Up" in shoal(cli_env, "ps").stdout
    assert shoal(cli_env, "exec", "one", "true").returncode == 0  # its rootfs is still mounted
    assert shoal(cli_env, "rm", "-f", "one").returncode == 0
    assert not mounts_under(cli_env["SHOAL_STATE_DIR"])
