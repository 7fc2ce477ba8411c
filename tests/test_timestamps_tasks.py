import asyncio
import datetime as dt

import pytest

from shoal import tasks, timestamps


def test_format_and_parse_round_trip():
    when = dt.datetime(2026, 12, 4, 13, 6, 23, 123456, tzinfo=dt.timezone.utc)
    assert timestamps.format_time(when) == "2026-12-04T13:06:23Z"
    assert timestamps.format_micro_time(when) == "2026-12-04T13:06:23.123456Z"
    assert timestamps.format_time(when.timestamp()) == "2026-12-04T13:06:23Z"
    assert timestamps.parse_time("2026-12-04T13:06:23Z") == when.replace(microsecond=0)
    assert timestamps.parse_time("2026-12-04T13:06:23.123456789Z") == when
    assert timestamps.parse_time("2026-12-04T14:06:23.123456+01:00") == when


def test_parse_rejects_garbage():
    with pytest.raises(ValueError):
        timestamps.parse_time("yesterday")
    assert timestamps.parse_time_or_none("yesterday") is None
    assert timestamps.parse_time_or_none(None) is None
    assert timestamps.epoch_seconds("1970-01-01T00:01:00Z") == 60.0


def test_cancel_and_wait_runs_finally_blocks():
    cleaned = []

    async def worker(n):
        try:
            await asyncio.sleep(60)
        finally:
            cleaned.append(n)

    async def main():
        ts = [asyncio.create_task(worker(i)) for i in range(3)]
        await asyncio.sleep(0)
        await tasks.cancel_and_wait(ts[0], None, ts[1:])
        assert all(t.done() for t in ts)

    asyncio.run(main())
    assert sorted(cleaned) == [0, 1, 2]
