"""The supervisor's periodic throughput line: messages decoded and acked per second.

Owns: when the next summary is due and the rates over the time since the previous one, from
the counts the relay kept meanwhile. Time is passed in, so tests need no clock.

Never: read a clock, log, or count messages itself (`supervisor.relay` counts them); nothing
is ever logged per message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

SUMMARY_INTERVAL_S = 10.0


@dataclass
class ThroughputSummary:
    next_at: float  # monotonic time the next summary is due
    interval_s: float = SUMMARY_INTERVAL_S

    def rates_if_due(
        self, now: float, take_counts: Callable[[], tuple[int, int]]
    ) -> tuple[float, float] | None:
        """(decoded/s, acked/s) when a summary is due and anything moved, else None."""
        if now < self.next_at:
            return None
        elapsed = self.interval_s + (now - self.next_at)
        self.next_at = now + self.interval_s
        relayed, acked = take_counts()
        if not (relayed or acked):
            return None
        return relayed / elapsed, acked / elapsed
