"""shoal.fsutil.write_atomic: whole file or old file, private from the first byte."""

from __future__ import annotations

import os
import stat
import threading

from shoal.fsutil import write_atomic


def test_replaces_whole_file_with_mode_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "ca.key"
    write_atomic(path, b"old")
    write_atomic(path, "new secret", 0o600)
    assert path.read_text() == "new secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ca.key"]


def test_a_concurrent_reader_never_sees_a_partial_file(tmp_path):
    path = tmp_path / "ca.crt"
    small, big = b"a" * 10, b"b" * 4_000_000
    write_atomic(path, small)
    seen: set[int] = set()
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            seen.add(len(path.read_bytes()))

    t = threading.Thread(target=reader)
    t.start()
    for i in range(40):
        write_atomic(path, big if i % 2 == 0 else small)
    stop.set()
    t.join()
    assert seen <= {len(small), len(big)}, sorted(seen)
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
