"""How busy this machine's CPUs were between two looks, and how many CPUs this process has.

Owns: `CpuBusy`, the busy fraction of all CPUs between successive calls, from the first
line of Linux's /proc/stat (busy = everything but idle and iowait), and `usable_cpus`.
Both are the machine's view, not the tree's: the Pub/Sub emulator on the same machine, or
anything else running there, counts too, which is the point (`supervisor.puller_count`).

Never: sleep or sample on a thread of its own (the supervisor calls it on its loop), or
raise: where /proc/stat cannot be read it answers None and the caller steers by nothing.
"""

from __future__ import annotations

import os

PROC_STAT = "/proc/stat"


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity where the OS says, else all of them)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


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
