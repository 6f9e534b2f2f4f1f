"""The writer's linger rule (`store.linger`): pure, driven with explicit times."""

from __future__ import annotations

import pytest

from store.linger import MIN_JOINERS, RATE_TAU_S, Linger


def test_a_trickle_never_lingers_and_a_flood_does():
    linger = Linger(fixed_s=0.0, load_s=0.010)
    assert linger.seconds(0.0) == 0.0  # nothing arrived yet
    now = 0.0
    for _ in range(10):  # 500 msgs/s, one at a time: a live feed
        now += 0.002
        linger.arrived(1, now)
    assert linger.rate(now) < 1000
    assert linger.seconds(now) == 0.0
    for _ in range(80):  # a drain: 100 every 2.5 ms, 40,000 msgs/s, for 0.2 s
        now += 0.0025
        linger.arrived(100, now)
    assert linger.rate(now) == pytest.approx(40_000, rel=0.25)
    assert linger.seconds(now) == 0.010


def test_the_load_linger_ends_soon_after_the_flood_does():
    linger = Linger(fixed_s=0.0, load_s=0.010)
    for i in range(40):
        linger.arrived(100, i * 0.0025)
    assert linger.seconds(0.1) == 0.010
    # MIN_JOINERS in 10 ms is 10,000 msgs/s: the estimate decays below it within a few
    # time constants of the last arrival.
    quiet = 0.1 + 3 * RATE_TAU_S
    assert linger.rate(quiet) * 0.010 < MIN_JOINERS
    assert linger.seconds(quiet) == 0.0


def test_the_fixed_linger_always_holds_and_a_shorter_load_linger_never_cuts_it():
    assert Linger(fixed_s=0.050, load_s=0.0).seconds(0.0) == 0.050
    flood = Linger(fixed_s=0.050, load_s=0.010)
    for i in range(40):
        flood.arrived(100, i * 0.0025)
    assert flood.seconds(0.1) == 0.050
    off = Linger(fixed_s=0.0, load_s=0.0)  # --load-linger 0
    for i in range(40):
        off.arrived(100, i * 0.0025)
    assert off.seconds(0.1) == 0.0
