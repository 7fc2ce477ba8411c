"""Real containers on runc + conmon: output, semantics, limits, stop, exec, failure cleanup."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pytest

from shoal.runtime import (
    ContainerIntent, ContainerNotFound, ContainerStateError, Resources, RuncError, Runtime, Security, SpecError,
)
from tests.runtime.conftest import leftover_cgroups, needs_runc

pytestmark = [needs_runc, pytest.mark.slow]

CRI_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+(Z|[+-]\d\d:\d\d) (stdout|stderr) [PF] .*$")


def sh(rootfs: Path, cid: str, script: str, **kw) -> ContainerIntent:
    return ContainerIntent(id=cid, rootfs=rootfs, command=["sh", "-c", script], **kw)


async def output(rt: Runtime, cid: str) -> list[tuple[str, str]]:
    return [(line.stream, line.text) async for line in rt.logs(cid)]


async def test_run_writes_cri_logs_and_exit_code(runtime: Runtime, busybox_rootfs: Path) -> None:
    cid = await runtime.run(sh(busybox_rootfs, "hello", "echo hello; echo oops >&2; exit 3"))
    st = await runtime.wait(cid, timeout=30)
    assert (st.state, st.exit_code, st.reason, st.oom_killed) == ("exited", 3, "Error", False)
    assert st.started_at <= st.finished_at
    assert await output(runtime, cid) == [("stdout", "hello"), ("stderr", "oops")]
    raw = runtime.log_path(cid).read_text().splitlines()
    assert raw and all(CRI_LINE.match(line) for line in raw), raw


async def test_image_config_and_intent_semantics(runtime: Runtime, busybox_rootfs: Path) -> None:
    image = {"Entrypoint": ["sh", "-c"], "Cmd": ["echo from-cmd"], "Env": ["A=image", "B=image"],
             "WorkingDir": "/work", "User": "app"}
    script = 'echo "$A $B $C"; pwd; id -u; id -g; id -G; hostname; echo $HOME'
    cid = await runtime.run(ContainerIntent(id="sem", rootfs=busybox_rootfs, args=[script], env={"B": "mine", "C": "c"},
                                            hostname="box-1"), image)
    assert (await runtime.wait(cid, timeout=30)).exit_code == 0
    lines = [text for _, text in await output(runtime, cid)]
    assert lines == ["image mine c", "/work", "1000", "1000", "1000 2000", "box-1", "/home/app"]


async def test_run_as_user_and_read_only_rootfs(runtime: Runtime, busybox_rootfs: Path) -> None:
    sec = Security(run_as_user=4242, run_as_group=4243, read_only_rootfs=True)
    cid = await runtime.run(sh(busybox_rootfs, "ro", "id -u; id -g; touch /x && echo wrote || echo denied",
                               security=sec))
    await runtime.wait(cid, timeout=30)
    assert [t for _, t in await output(runtime, cid) if not t.startswith("touch")] == ["4242", "4243", "denied"]


async def test_default_security_blocks_mount_and_hides_kcore(runtime: Runtime, busybox_rootfs: Path) -> None:
    script = ("mkdir -p /tmp/m; mount -t tmpfs none /tmp/m && echo mounted || echo no-mount; "
              "[ -s /proc/kcore ] && echo kcore || echo masked; grep CapBnd /proc/self/status; "
              "grep NoNewPrivs /proc/self/status; grep Seccomp: /proc/self/status")
    cid = await runtime.run(sh(busybox_rootfs, "sec", script))
    await runtime.wait(cid, timeout=30)
    lines = [t for s, t in await output(runtime, cid) if s == "stdout"]
    assert lines[0] == "no-mount" and lines[1] == "masked"
    assert lines[2].split()[1] == "00000000a80425fb"  # Docker's 14 default capabilities
    assert lines[3].split()[1] == "1" and lines[4].split()[1] == "2"  # no_new_privs, seccomp filter mode


async def test_memory_limit_oom_kill_is_reported(runtime: Runtime, busybox_rootfs: Path) -> None:
    cid = await runtime.run(sh(busybox_rootfs, "oom", "head -c 200m /dev/zero | tail; echo survived",
                               resources=Resources(memory_limit_bytes=32 << 20)))
    limit = Path(f"/sys/fs/cgroup/memory/{runtime.cgroup_parent}/oom/memory.limit_in_bytes")
    st = await runtime.wait(cid, timeout=60)
    assert st.oom_killed and st.reason == "OOMKilled", st
    assert runtime.paths.oom(cid).exists()  # conmon's marker, in the container's own dir
    assert int(limit.read_text()) == 32 << 20  # the cgroup stays until delete


async def test_pids_limit_stops_a_fork_bomb(runtime: Runtime, busybox_rootfs: Path) -> None:
    limits = Resources(pids_limit=10, cpu_limit_millicores=250, cpu_request_millicores=100)
    cid = await runtime.run(sh(busybox_rootfs, "pids", "sleep 300", resources=limits))
    cpu = Path(f"/sys/fs/cgroup/cpu/{runtime.cgroup_parent}/{cid}")
    assert (cpu / "cpu.cfs_quota_us").read_text().strip() == "25000"
    assert (cpu / "cpu.cfs_period_us").read_text().strip() == "100000"
    assert (cpu / "cpu.shares").read_text().strip() == "102"
    code, out, err = await runtime.exec(cid, ["sh", "-c", "for i in $(seq 50); do sleep 300 >/dev/null 2>&1 & done; echo spawned-all"],
                                        timeout=60)
    assert code != 0 and b"spawned-all" not in out and b"can't fork" in err, (code, out, err)
    assert (await runtime.stats(cid))["pids"] <= 10


async def test_stop_escalates_to_sigkill_after_grace(runtime: Runtime, busybox_rootfs: Path) -> None:
    cid = await runtime.run(sh(busybox_rootfs, "stubborn", "trap '' TERM; echo ready; while true; do sleep 0.1; done"))
    await _until_logged(runtime, cid, "ready")
    t0 = time.monotonic()
    st = await runtime.stop(cid, grace_seconds=1.0)
    elapsed = time.monotonic() - t0
    assert st.exit_code == 137 and 1.0 <= elapsed < 10, (st, elapsed)


async def test_stop_uses_the_image_stop_signal(runtime: Runtime, busybox_rootfs: Path) -> None:
    script = "trap 'echo got-usr1; exit 0' USR1; echo ready; while true; do sleep 0.1; done"
    cid = await runtime.run(sh(busybox_rootfs, "polite", script), {"StopSignal": "SIGUSR1"})
    await _until_logged(runtime, cid, "ready")
    st = await runtime.stop(cid, grace_seconds=20)
    assert st.exit_code == 0 and ("stdout", "got-usr1") in await output(runtime, cid)


async def test_exec_with_and_without_tty(runtime: Runtime, busybox_rootfs: Path) -> None:
    cid = await runtime.run(sh(busybox_rootfs, "execd", "sleep 300"))
    code, out, err = await runtime.exec(cid, ["sh", "-c", "tty; echo to-err >&2; exit 4"], timeout=30)
    assert (code, out, err) == (4, b"not a tty\n", b"to-err\n")
    code, out, _ = await runtime.exec(cid, ["sh", "-c", "tty; id -u"], tty=True, user="app", timeout=30)
    assert code == 0 and re.match(rb"/dev/pts/\d+\r\n1000\r\n$", out), out
    code, out, _ = await runtime.exec(cid, ["cat"], stdin=b"piped", env={"X": "1"}, timeout=30)
    assert (code, out) == (0, b"piped")
    st = await runtime.stop(cid, grace_seconds=0.5)
    with pytest.raises(ContainerStateError):
        await runtime.exec(cid, ["true"])
    assert st.state == "exited"


async def test_logs_follow_tail_since(runtime: Runtime, busybox_rootfs: Path) -> None:
    cid = await runtime.run(sh(busybox_rootfs, "chatty", "for i in 1 2 3 4 5; do echo line$i; sleep 0.2; done"))
    followed = [line.text async for line in runtime.logs(cid, follow=True)]
    assert followed == [f"line{i}" for i in range(1, 6)]
    assert [line.text async for line in runtime.logs(cid, tail=2)] == ["line4", "line5"]
    all_lines = [line async for line in runtime.logs(cid)]
    assert [line.text async for line in runtime.logs(cid, since=all_lines[3].time)] == ["line4", "line5"]


async def test_delete_leaves_nothing_and_refuses_running(runtime: Runtime, busybox_rootfs: Path) -> None:
    cid = await runtime.run(sh(busybox_rootfs, "gone", "sleep 300"))
    stats = await runtime.stats(cid)
    assert stats["pids"] == 1 and stats["memory_bytes"] > 0 and stats["cpu_usage_ns"] > 0, stats
    with pytest.raises(ContainerStateError):
        await runtime.delete(cid)
    await runtime.delete(cid, force=True)
    with pytest.raises(ContainerNotFound):
        await runtime.status(cid)
    assert not (runtime.paths.root / cid).exists()
    assert not runtime.paths.exit_file(cid).exists()
    assert not [p for p in leftover_cgroups(runtime.cgroup_parent) if (p / cid).exists()]
    assert await runtime.list() == []


async def test_runc_failure_is_reported_and_cleaned_up(runtime: Runtime, busybox_rootfs: Path) -> None:
    bad = ContainerIntent(id="bad", rootfs=busybox_rootfs, command=["/no/such/binary"])
    with pytest.raises(RuncError, match="no/such/binary"):
        await runtime.run(bad)
    assert not (runtime.paths.root / "bad").exists()
    assert await runtime.list() == []
    with pytest.raises(SpecError, match="^rootfs:"):
        await runtime.run(ContainerIntent(id="nofs", rootfs=busybox_rootfs / "missing", command=["true"]))
    with pytest.raises(SpecError, match="^id:"):
        await runtime.run(ContainerIntent(id="../escape", rootfs=busybox_rootfs, command=["true"]))
    assert not (runtime.paths.root / "nofs").exists()


async def _until_logged(rt: Runtime, cid: str, text: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in [line.text async for line in rt.logs(cid)]:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{cid} never logged {text!r}")


async def test_log_rotation_keeps_one_generation_and_follow_sees_every_line(
        runtime: Runtime, busybox_rootfs: Path, tmp_path: Path) -> None:
    go = busybox_rootfs / "tmp" / "go-rotate"
    go.unlink(missing_ok=True)
    script = ("for i in 1 2 3; do echo first$i; done; while [ ! -e /tmp/go-rotate ]; do sleep 0.05; done; "
              "for i in 1 2 3; do echo second$i; done")
    cid = await runtime.run(sh(busybox_rootfs, "rotating", script))
    follower = asyncio.ensure_future(_collect(runtime.logs(cid, follow=True)))
    await _until_logged(runtime, cid, "first3")
    await runtime.rotate_log(cid)
    rotated = runtime.log_path(cid).with_name("container.log.1")
    assert "first3" in rotated.read_text()
    go.write_text("")
    try:
        await runtime.wait(cid, timeout=30)
    finally:
        go.unlink(missing_ok=True)
    assert "second1" in runtime.log_path(cid).read_text() and "first1" not in runtime.log_path(cid).read_text()
    every = ["first1", "first2", "first3", "second1", "second2", "second3"]
    assert [line.text async for line in runtime.logs(cid)] == every
    assert await asyncio.wait_for(follower, 30) == every


async def test_conmon_caps_log_size(tmp_path: Path, cgroup_parent: str, busybox_rootfs: Path) -> None:
    rt = Runtime(tmp_path / "capped", cgroup_parent=cgroup_parent, log_size_max=4096)
    try:
        cid = await rt.run(sh(busybox_rootfs, "flood", "for i in $(seq 1 2000); do echo line-$i; done"))
        await rt.wait(cid, timeout=30)
        assert rt.log_path(cid).stat().st_size <= 4096
        assert [line.text async for line in rt.logs(cid)][-1] == "line-2000"
    finally:
        await rt.cleanup_all()


async def _collect(lines) -> list[str]:
    return [line.text async for line in lines]


async def test_exec_timeout_kills_the_process_inside(runtime: Runtime, busybox_rootfs: Path) -> None:
    from shoal.runtime import ExecTimeout

    cid = await runtime.run(sh(busybox_rootfs, "slowexec", "sleep 300"))
    t0 = time.monotonic()
    with pytest.raises(ExecTimeout):
        await runtime.exec(cid, ["sleep", "123"], timeout=2)
    assert time.monotonic() - t0 < 10
    for _ in range(50):  # the kill is immediate; allow the machine a moment to reap
        code, out, _ = await runtime.exec(cid, ["ps", "-o", "args"], timeout=30)
        if b"sleep 123" not in out:
            break
        await asyncio.sleep(0.1)
    assert b"sleep 123" not in out, out


async def test_kill_delivers_a_signal(runtime: Runtime, busybox_rootfs: Path) -> None:
    cid = await runtime.run(sh(busybox_rootfs, "killme", "trap 'echo hup' HUP; echo ready; while true; do sleep 0.1; done"))
    await _until_logged(runtime, cid, "ready")
    await runtime.kill(cid, "HUP")
    await _until_logged(runtime, cid, "hup")
    await runtime.kill(cid, 9)
    assert (await runtime.wait(cid, timeout=30)).exit_code == 137
    with pytest.raises(ContainerStateError):
        await runtime.kill(cid, "TERM")


async def test_a_long_line_comes_back_whole(runtime: Runtime, busybox_rootfs: Path) -> None:
    script = "sleep 0.3; head -c 40000 /dev/zero | tr '\\0' x; echo; echo end"
    cid = await runtime.run(sh(busybox_rootfs, "longline", script))
    followed = await asyncio.wait_for(_collect(runtime.logs(cid, follow=True)), 30)
    assert followed == ["x" * 40000, "end"]
    assert "stdout P " in runtime.log_path(cid).read_text()  # conmon did split it
    assert [line.text async for line in runtime.logs(cid)] == ["x" * 40000, "end"]


async def test_cleanup_all_removes_many_running_containers(runtime: Runtime, busybox_rootfs: Path) -> None:
    ids = await asyncio.gather(*(runtime.run(sh(busybox_rootfs, f"many-{i}", "sleep 300")) for i in range(6)))
    assert sorted(s.id for s in await runtime.list() if s.state == "running") == sorted(ids)
    await runtime.cleanup_all()
    assert await runtime.list() == []
    assert not leftover_cgroups(runtime.cgroup_parent)
