"""How the writer rides out a database that cannot be written: the state of the outage, the
back-off between attempts, and when to say so in the log (issue 25).

Owns: `DatabaseOutage`, a pure object fed the failures and successes of the writer's attempts,
with the clock passed in: whether the database is down and why (what the writer's heartbeat
reports, and /readyz then shows), the capped, jittered delay before the next attempt, and a
log line at most every LOG_EVERY_S seconds however long it lasts.

Never: sleep, log, touch the database or metrics; the writer acts on what this says. Never
give up: an outage is weather, it ends, and the writer waits it out holding its batch.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

FIRST_DELAY_S = 0.2
MAX_DELAY_S = 5.0  # a database back from a failover is found within this
LOG_EVERY_S = 5.0


def error_kind(reason: str) -> str:
    """The label of `miniscan_database_errors_total`: a lock that outlasted the busy
    timeout, or the database out of reach (down, refusing, in recovery, read-only, full)."""
    return "locked" if "locked" in reason else "unavailable"


@dataclass
class DatabaseOutage:
    """The database's state as the writer last found it. `reason` is empty while it is up."""

    rng: random.Random = field(default_factory=random.Random)
    reason: str = ""
    started_at: float | None = None
    failures: int = 0
    _next_log: float = 0.0

    @property
    def down(self) -> bool:
        return bool(self.reason)

    def failed(self, reason: str, now: float) -> float:
        """An attempt failed: remember why; return the seconds to wait before the next.
        Full jitter below a doubling cap, so that many writers do not retry in lockstep."""
        if self.started_at is None:
            self.started_at = now
        self.reason = reason
        self.failures += 1
        cap = min(MAX_DELAY_S, FIRST_DELAY_S * 2 ** min(self.failures - 1, 16))
        return self.rng.uniform(cap / 2, cap)

    def should_log(self, now: float) -> bool:
        """True for the first failure and then at most every LOG_EVERY_S."""
        if now < self._next_log:
            return False
        self._next_log = now + LOG_EVERY_S
        return True

    def recovered(self, now: float) -> float | None:
        """An attempt succeeded: the outage (if any) is over; return how long it lasted."""
        if self.started_at is None:
            return None
        lasted = now - self.started_at
        self.reason, self.started_at, self.failures, self._next_log = "", None, 0, 0.0
        return lasted
