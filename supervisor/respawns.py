"""The restarts waiting to happen: which crashed child comes back when.

Owns: the schedule of pending respawns (child name -> monotonic time it is due), filled from
the backoff `RestartPolicy` gives each crash, and how long the loop may wait before the next
one is due. Time is passed in, so tests need no clock.

Never: spawn, kill, sleep or read a clock; decide what a restart storm means (the
supervisor stops the tree when `crashed` returns None).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from supervisor.restarts import RestartPolicy


@dataclass
class RespawnSchedule:
    policy: RestartPolicy
    due: dict[str, float] = field(default_factory=dict)  # name -> monotonic time

    def __bool__(self) -> bool:
        return bool(self.due)

    def crashed(self, name: str, now: float) -> float | None:
        """Schedule `name` back after its backoff and return it; None: it crashed too often."""
        backoff = self.policy.record_crash(name, now)
        if backoff is not None:
            self.due[name] = now + backoff
        return backoff

    def take_due(self, now: float) -> list[str]:
        """The children due back by `now`, in the order they crashed; unscheduled."""
        names = [name for name, due in self.due.items() if due <= now]
        for name in names:
            del self.due[name]
        return names

    def cancel_all(self) -> None:
        self.due.clear()

    def wait_at_most(self, now: float, longest: float) -> float:
        """How long the loop may wait for events before the next respawn is due."""
        return min([longest, *(max(0.0, due - now) for due in self.due.values())])
