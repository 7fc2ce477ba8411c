"""CrashLoopBackOff timing: immediate first restart, then base doubling to cap, reset."""

from shoal.node.backoff import Backoff, BackoffPolicy


def test_schedule_doubles_to_cap_and_resets_after_a_long_run():
    b = Backoff(BackoffPolicy(base=10, cap=40, reset=600))
    t = 1000.0
    delays = []
    for _ in range(6):
        wait = b.remaining("p/c", finished_at=t, ran_for=1, now=t)
        delays.append(wait)
        t += wait + 1
    assert delays == [0, 10, 20, 40, 40, 40]
    assert b.remaining("p/c", finished_at=t, ran_for=601, now=t) == 0


def test_same_exit_gives_same_gate():
    b = Backoff(BackoffPolicy(base=0.5, cap=5, reset=10))
    assert b.remaining("k", finished_at=1, ran_for=0, now=1) == 0
    assert b.remaining("k", finished_at=2, ran_for=0, now=2) == 0.5
    assert abs(b.remaining("k", finished_at=2, ran_for=0, now=2.2) - 0.3) < 1e-9
    b.forget("k")
    assert b.remaining("k", finished_at=3, ran_for=0, now=3) == 0
