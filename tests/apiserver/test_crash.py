"""kill -9 of the daemon under a write load loses no acknowledged object."""

from __future__ import annotations

import os
import signal
import threading
import time

import ssl

import httpx
import pytest

from tests.daemon_harness import ShoalInstance

pytestmark = pytest.mark.slow


def test_kill_9_under_load_loses_no_acknowledged_object(tmp_path):
    shoal = ShoalInstance(tmp_path / "state").start()
    acked: list[str] = []
    stop = threading.Event()
    try:
        def writer(worker: int) -> None:
            with httpx.Client(base_url=shoal.url, verify=ssl.create_default_context(cafile=shoal.ca), timeout=5,
                              headers={"Authorization": f"Bearer {shoal.token}"}) as api:
                i = 0
                while not stop.is_set():
                    name = f"w{worker}-{i}"
                    try:
                        r = api.post("/api/v1/namespaces/default/configmaps", json={
                            "apiVersion": "v1", "kind": "ConfigMap",
                            "metadata": {"name": name}, "data": {"v": "x" * 500}})
                    except httpx.HTTPError:
                        return  # the daemon is gone
                    if r.status_code == 201:
                        acked.append(name)
                    i += 1

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        time.sleep(2.0)
        pid = shoal.pid
        assert pid
        os.kill(pid, signal.SIGKILL)
        stop.set()
        for t in threads:
            t.join(10)
        assert len(acked) > 50, "the load should have written something"

        shoal.start()  # restart on the same state dir
        with httpx.Client(base_url=shoal.url, verify=ssl.create_default_context(cafile=shoal.ca), timeout=30,
                          headers={"Authorization": f"Bearer {shoal.token}"}) as api:
            items = api.get("/api/v1/namespaces/default/configmaps").json()["items"]
        stored = {i["metadata"]["name"]: i for i in items if i["metadata"]["name"][0] == "w"}
        lost = [n for n in acked if n not in stored]
        assert not lost, f"{len(lost)} of {len(acked)} acknowledged objects lost"
        assert all(o["data"] == {"v": "x" * 500} for o in stored.values())
    finally:
        stop.set()
        shoal.stop()
