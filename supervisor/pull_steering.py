"""Pull steering: telling the decoders, every STEER_INTERVAL_S, how many of them may pull.

Owns: `PullSteering`, which holds the array the tree's decoders share
(`contracts.pull_share_layout`), the rule that decides the number (`PullerCount`) and the
CPU reading it steers by (`CpuBusy`), and writes the answer into the array and the
decoders-pulling gauge. Time is passed in.

Never: spawn, stop or message a child (the supervisor does), or steer by anything but what
the decoders wrote and the CPUs measured.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import MutableSequence
from typing import Protocol

from contracts import metrics
from contracts.pull_share_layout import (
    any_pull_returned,
    last_backlog_seen,
    set_allowed,
    shared_size,
)
from supervisor.cgroup_limits import Cgroup
from supervisor.cpu_busy import cpu_reading, usable_cpus
from supervisor.puller_count import BACKLOG_FRESH_S, STEER_INTERVAL_S, PullerCount
from supervisor.settings import SupervisorSettings


class CpuReading(Protocol):
    def fraction(self) -> float | None: ...


class PullSteering:
    def __init__(self, shared: MutableSequence[float], count: PullerCount, cpu: CpuReading) -> None:
        self.shared = shared
        self.count = count
        self.cpu = cpu
        self.next_steer = 0.0  # monotonic: steer again once this has passed
        set_allowed(self.shared, self.count.allowed)

    @classmethod
    def in_shared_memory(
        cls, context: multiprocessing.context.BaseContext, settings: SupervisorSettings
    ) -> PullSteering:
        """Steering for the tree's decoders, over an array they (made in `context`) can
        share; one puller per CPU this process may use (its cgroup's quota, where there is
        one) to start."""
        workers, cgroup = settings.workers, Cgroup(settings.cgroup_root)
        shared = context.RawArray("d", shared_size(workers))
        return cls(shared, PullerCount(workers, usable_cpus(cgroup)), cpu_reading(cgroup))

    @property
    def allowed(self) -> int:
        return self.count.allowed

    def publish(self) -> None:
        """Show the current number on the decoders-pulling gauge."""
        metrics.DECODERS_PULLING.set(self.count.allowed)

    def steer_if_due(self, now: float) -> None:
        if now >= self.next_steer:
            self.next_steer = now + STEER_INTERVAL_S
            self.steer(now)

    def steer(self, now: float) -> int:
        """Decide from the last interval's backlog and CPU, and tell the decoders."""
        backlog = None  # no pull has returned yet: nobody knows
        if any_pull_returned(self.shared):
            backlog = now - last_backlog_seen(self.shared) < BACKLOG_FRESH_S
        allowed = self.count.update(backlog, self.cpu.fraction())
        set_allowed(self.shared, allowed)
        metrics.DECODERS_PULLING.set(allowed)
        return allowed
