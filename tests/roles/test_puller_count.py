"""How many decoders pull while there is a backlog: the supervisor's rule, the CPU figure it
steers by, the steering that writes the answer, and the decoders that obey it
(`supervisor.puller_count`, `supervisor.cpu_busy`, `supervisor.pull_steering`,
`workers.pull_share`)."""

from __future__ import annotations

import multiprocessing
import time

from role_doubles import decoder, pulled, received_batch

from contracts.pull_share_layout import (
    allowed,
    any_pull_returned,
    last_backlog_seen,
    set_allowed,
    shared_size,
)
from supervisor.cpu_busy import CpuBusy, usable_cpus
from supervisor.pull_steering import PullSteering
from supervisor.puller_count import GROW_BELOW, SHRINK_ABOVE, STEER_INTERVAL_S, PullerCount
from supervisor.settings import SupervisorSettings
from workers.pull_share import PullShare

BUSY = (SHRINK_ABOVE + 1.0) / 2
IDLE = GROW_BELOW / 2
STEADY = (GROW_BELOW + SHRINK_ABOVE) / 2


def test_a_backlog_on_busy_cpus_is_pulled_by_one_decoder_a_cpu_and_caught_up_by_all():
    count = PullerCount(workers=8, cpus=2)
    assert count.allowed == 2  # a tree that starts usually finds a backlog
    assert count.update(backlog=None, cpu_busy=IDLE) == 2  # no pull returned yet: unknown
    assert count.update(backlog=None, cpu_busy=None) == 2
    assert count.update(backlog=True, cpu_busy=BUSY) == 2  # never below one a CPU
    assert count.update(backlog=True, cpu_busy=STEADY) == 2
    assert count.update(backlog=False, cpu_busy=BUSY) == 8  # caught up: every long poll helps
    assert count.update(backlog=False, cpu_busy=IDLE) == 8
    assert count.update(backlog=True, cpu_busy=STEADY) == 2  # a new backlog starts low again


def test_idle_cpus_under_a_backlog_add_pullers_up_to_workers_and_busy_ones_take_them_back():
    # Real Pub/Sub: pulls wait on the network, the CPUs idle, more pullers drain faster.
    count = PullerCount(workers=8, cpus=2)
    grown = [count.update(backlog=True, cpu_busy=IDLE) for _ in range(8)]
    assert grown == [3, 4, 5, 6, 7, 8, 8, 8]
    assert count.update(backlog=True, cpu_busy=STEADY) == 8
    shrunk = [count.update(backlog=True, cpu_busy=BUSY) for _ in range(8)]
    assert shrunk == [7, 6, 5, 4, 3, 2, 2, 2]


def test_without_a_cpu_figure_everyone_pulls_and_the_next_backlog_starts_low():
    count = PullerCount(workers=8, cpus=2)
    assert count.update(backlog=True, cpu_busy=None) == 8  # no /proc/stat: as before
    assert count.update(backlog=True, cpu_busy=BUSY) == 2
    assert PullerCount(workers=1, cpus=4).update(backlog=True, cpu_busy=BUSY) == 1
    assert PullerCount(workers=3, cpus=16).allowed == 3  # more CPUs than decoders


def test_cpu_busy_reads_the_fraction_between_calls_from_proc_stat(tmp_path):
    stat = tmp_path / "stat"
    # user nice system idle iowait irq softirq steal guest guest_nice
    stat.write_text("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\n")
    busy = CpuBusy(str(stat))
    assert busy.fraction() is None  # no time passed
    stat.write_text("cpu  160 0 70 800 70 0 0 0 0 0\n")  # +80 busy, +20 iowait of +100
    assert busy.fraction() == 0.8
    stat.write_text("not a stat file\n")
    assert busy.fraction() is None
    assert CpuBusy(str(tmp_path / "missing")).fraction() is None
    real = CpuBusy()
    sum(i * i for i in range(2_000_000))  # a little CPU, so that ticks pass
    fraction = real.fraction()
    assert fraction is None or 0.0 <= fraction <= 1.0
    assert usable_cpus() >= 1


def test_a_decoder_pulls_only_while_its_slot_is_allowed_and_says_what_its_pulls_showed():
    shared = [0.0] * shared_size(2)
    set_allowed(shared, 1)
    pulls = [pulled(10), pulled(3, start=10)]
    role, subscription, supervisor_end = decoder(pulls, max_in_flight=100)
    role.puller.share = PullShare(shared, slot=0)
    assert not any_pull_returned(shared)
    assert role.pull_once() == 10  # slot 0 < 1: may pull; 10 of the 10 asked: a backlog
    received_batch(supervisor_end)
    assert any_pull_returned(shared)
    assert last_backlog_seen(shared) > 0.0
    role.puller.share = PullShare(shared, slot=1)
    started = time.monotonic()
    assert role.pull_once() == 0  # slot 1 may not: no pull, a short wait
    assert subscription.pull_calls == 1
    assert time.monotonic() - started < 5
    caught_up = [0.0] * shared_size(2)
    set_allowed(caught_up, 2)
    role.puller.share = PullShare(caught_up, slot=1)
    assert role.pull_once() == 3  # fewer than asked: returned, and no backlog marked
    assert subscription.pull_calls == 2
    assert any_pull_returned(caught_up)
    assert last_backlog_seen(caught_up) == 0.0
    assert PullShare(None, slot=5).may_pull()  # a lone decoder always may


class FixedCpuBusy:
    def __init__(self, fraction: float | None) -> None:
        self.value = fraction

    def fraction(self) -> float | None:
        return self.value


def test_steering_keeps_the_starting_count_until_a_pull_has_returned():
    share = [0.0] * shared_size(8)
    steering = PullSteering(share, PullerCount(workers=8, cpus=2), FixedCpuBusy(BUSY))
    assert allowed(share) == 2  # told before any decoder starts

    def steer() -> int:
        steering.steer(time.monotonic())
        return allowed(share)

    assert steer() == 2  # nothing has returned: no news of a backlog is not "caught up"
    assert steer() == 2
    PullShare(share, slot=5).pull_returned(time.monotonic(), full=False)
    assert steer() == 8  # a short pull, no full one lately: caught up, everyone pulls
    PullShare(share, slot=0).pull_returned(time.monotonic(), full=True)
    assert steer() == 2  # a backlog on busy CPUs: one puller a CPU


def test_steering_steers_once_an_interval_over_an_array_the_decoders_share():
    steering = PullSteering.in_shared_memory(
        multiprocessing.get_context("spawn"), SupervisorSettings(workers=8)
    )
    steering.count = PullerCount(workers=8, cpus=2)
    steering.cpu = FixedCpuBusy(BUSY)
    assert len(steering.shared) == shared_size(8)
    PullShare(steering.shared, slot=5).pull_returned(time.monotonic(), full=False)
    steering.steer_if_due(now=100.0)
    assert allowed(steering.shared) == 8  # caught up: everyone pulls
    PullShare(steering.shared, slot=0).pull_returned(time.monotonic(), full=True)
    steering.steer_if_due(now=100.0 + STEER_INTERVAL_S / 2)
    assert allowed(steering.shared) == 8, "steered again before the interval was over"
    steering.steer_if_due(now=time.monotonic())
    assert allowed(steering.shared) == 2
