"""How a decoder waits out a Pub/Sub it cannot reach: capped, jittered, interruptible.

Owns: the pause between failed pulls (truncated exponential backoff with full jitter, the
schedule of google-api-core's retries, capped at MAX_DELAY_S), whether Pub/Sub is failing
right now (what the decoder's heartbeat reports as `pubsub_ok`), and waking the wait at once
when the decoder stops. One log line when an outage starts and one when it ends, not one
per attempt.

Never: call Pub/Sub, or give up: an outage of any length is waited out (issue 12).
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Iterator

log = logging.getLogger(__name__)

INITIAL_DELAY_S = 0.25
MAX_DELAY_S = 5.0


def jittered_delays(initial_s: float, maximum_s: float, multiplier: float = 2.0) -> Iterator[float]:
    """Endless delays, each drawn uniformly below a ceiling that doubles up to `maximum_s`:
    the jitter keeps decoders that lost Pub/Sub together from retrying in step."""
    ceiling = min(initial_s, maximum_s)
    while True:
        yield random.uniform(0.0, ceiling)
        ceiling = min(ceiling * multiplier, maximum_s)


class PullBackoff:
    def __init__(self, initial_s: float = INITIAL_DELAY_S, maximum_s: float = MAX_DELAY_S):
        self.initial_s = initial_s
        self.maximum_s = maximum_s
        self.failing = False
        self.failures = 0
        self._delays = jittered_delays(initial_s, maximum_s)
        self._stop = threading.Event()

    def wait_after_failure(self, error: Exception) -> float:
        """Record a failed pull and sleep before the next one; returns the delay chosen."""
        if not self.failing:
            log.warning("Pub/Sub unreachable (%s): retrying until it is back", error)
        self.failing = True
        self.failures += 1
        delay = next(self._delays)
        self._stop.wait(delay)
        return delay

    def succeeded(self) -> None:
        if self.failing:
            log.info("Pub/Sub reachable again after %d failed pulls", self.failures)
        self.failing = False
        self.failures = 0
        self._delays = jittered_delays(self.initial_s, self.maximum_s)

    def interrupt(self) -> None:
        """Wake a wait now and make later ones return at once (the decoder is stopping)."""
        self._stop.set()
