"""How busy this process's CPUs were between two looks, and how many CPUs it has.

Owns: `CpuBusy`, the busy fraction of all CPUs between successive calls, from the first
line of Linux's /proc/stat (busy = everything but idle and iowait); `QuotaBusy`, the same
for a container with a CPU quota: the share of its quota its cgroup used, since a throttled
container sees an idle host in /proc/stat (issue 27); `cpu_reading`, which picks one; and
`usable_cpus`, its affinity capped by the quota. Without a quota they are the machine's
view, not the tree's: the Pub/Sub emulator on the same machine, or anything else running
there, counts too, which is the point (`supervisor.puller_count`).

Never: sleep or sample on a thread of its own (the supervisor calls it on its loop), or
raise: where /proc/stat cannot be read it answers None and the caller steers by nothing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from supervisor.cgroup_limits import Cgroup, quota_cpus

PROC_STAT = "/proc/stat"


def affinity_cpus() -> int:
    """CPUs this process may run on (its affinity where the OS says, else all of them)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def usable_cpus(cgroup: Cgroup | None = None) -> int:
    """CPUs this process may keep busy: its affinity, capped by its cgroup's CPU quota
    rounded up."""
    return quota_cpus((cgroup or Cgroup()).cpu_quota(), affinity_cpus())


def cpu_reading(cgroup: Cgroup | None = None) -> CpuBusy | QuotaBusy:
    """What to steer by: the cgroup's share of its quota where there is a quota and its
    usage can be read, else the machine's /proc/stat."""
    cgroup = cgroup or Cgroup()
    quota = cgroup.cpu_quota()
    if quota is not None and cgroup.cpu_usage_s() is not None:
        return QuotaBusy(cgroup, quota)
    return CpuBusy()


class QuotaBusy:
    """The share (0..1) of its CPU quota a cgroup used between successive calls."""

    def __init__(
        self, cgroup: Cgroup, quota: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.cgroup, self.quota, self.clock = cgroup, quota, clock
        self._last = (clock(), cgroup.cpu_usage_s())

    def fraction(self) -> float | None:
        now = (self.clock(), self.cgroup.cpu_usage_s())
        (then, used_then), (at, used) = self._last, now
        self._last = now
        if used is None or used_then is None or at <= then:
            return None
        return min(1.0, max(0.0, (used - used_then) / ((at - then) * self.quota)))


class CpuBusy:
    def __init__(self, path: str = PROC_STAT) -> None:
        self.path = path
        self._last = self._read()

    def fraction(self) -> float | None:
        """Busy fraction (0..1) of all CPUs since the last call or construction; None when
        it cannot be read or no time has passed in its ticks."""
        now, last = self._read(), self._last
        self._last = now
        if now is None or last is None or now[1] <= last[1]:
            return None
        return 1.0 - (now[0] - last[0]) / (now[1] - last[1])

    def _read(self) -> tuple[int, int] | None:
        """(idle ticks, total ticks) of the aggregate "cpu" line."""
        try:
            with open(self.path) as stat:
                fields = stat.readline().split()
            ticks = [int(value) for value in fields[1:9]]
        except (OSError, ValueError):
            return None
        if not fields or fields[0] != "cpu" or len(ticks) < 4:
            return None
        # user nice system idle iowait irq softirq steal (guest time is inside user)
        idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
        return idle, sum(ticks)
