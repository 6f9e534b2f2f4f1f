"""When to restart a crashed child, and when to give up: a pure policy.

Owns: exponential backoff between restarts of one child and the restart intensity limit
(more than `max_restarts` within `window_s` seconds means something is wrong that restarting
will not fix, as Erlang/OTP supervisors do). Time is passed in, so tests need no clock.

Never: spawn, kill or sleep.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

BASE_BACKOFF_S = 0.25
MAX_BACKOFF_S = 10.0


@dataclass
class RestartPolicy:
    max_restarts: int = 5
    window_s: float = 30.0
    _history: dict[str, deque[float]] = field(default_factory=dict)

    def record_crash(self, name: str, now: float) -> float | None:
        """Note that `name` crashed at `now`; return the backoff before restarting it, or
        None when it crashed too often and the tree should stop instead."""
        history = self._history.setdefault(name, deque())
        history.append(now)
        while history and history[0] < now - self.window_s:
            history.popleft()
        if len(history) > self.max_restarts:
            return None
        return min(MAX_BACKOFF_S, BASE_BACKOFF_S * 2 ** (len(history) - 1))

    def recent_crashes(self, name: str) -> int:
        return len(self._history.get(name, ()))
