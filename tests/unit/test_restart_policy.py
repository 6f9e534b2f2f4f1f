"""The restart policy: backoff that doubles, and the intensity limit that gives up."""

from __future__ import annotations

from supervisor.restarts import RestartPolicy


def test_restart_backoff_doubles_and_intensity_limit_gives_up():
    policy = RestartPolicy(max_restarts=3, window_s=30)
    assert [policy.record_crash("writer", t) for t in (0, 1, 2)] == [0.25, 0.5, 1.0]
    assert policy.record_crash("writer", 3) is None
    assert policy.record_crash("decoder-0", 3) == 0.25  # counted per child


def test_restarts_outside_the_window_are_forgotten():
    policy = RestartPolicy(max_restarts=2, window_s=10)
    for t in (0, 1):
        policy.record_crash("writer", t)
    assert policy.record_crash("writer", 20) == 0.25
