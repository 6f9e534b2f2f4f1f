"""How long the writer lets a pending batch wait for more messages before committing it.

Owns: `Linger`, the rule, and the arrival rate it is based on (messages a second reaching
the writer, a decaying average). A pending batch is committed once the pipe is idle and its
linger is over: the fixed linger (`--batch-timeout`, 0 by default: group commit alone), or,
while messages pour in, the load linger (`--load-linger`, 10 ms by default), whichever is
longer. Messages pour in when at least `MIN_JOINERS` of them are expected to arrive within
the load linger at the current rate (10,000 a second at 10 ms): a linger that few would join
only delays rows. At the rates of a live feed (the latency benchmark's 500 and 2,000 a
second) the writer commits as soon as the pipe is idle, as before.

Why (issue 13, bench/RESULTS.md "third pass"): every commit costs the writer a fixed ~0.2 ms
of CPU (its statements and the WAL sync) and every AckBatch costs the supervisor a relay,
the decoder a wake-up and Pub/Sub an acknowledge call. Group commit alone makes a batch of
what arrived during the last commit: 100-150 messages in a drain on Google's emulator, where
a pull brings at most 100. Lingering 10 ms under that load lowered the tree's CPU from
21.5-28.5 to 17.5-21 us a message at `--workers 2`.

Never: read the clock (the caller passes `now`), commit, or hold a batch past
`max(fixed, load)` after its first message arrived.
"""

from __future__ import annotations

import math

# A load linger must be expected to bring at least this many more messages into the batch.
MIN_JOINERS = 100
# Time constant of the arrival rate: long enough to see a drain as one, short enough that a
# feed which slows down stops lingering within a few tenths of a second.
RATE_TAU_S = 0.05


class Linger:
    def __init__(self, fixed_s: float, load_s: float) -> None:
        self.fixed_s = fixed_s
        self.load_s = load_s
        self._rate = 0.0  # messages a second as of `_at`
        self._at = 0.0

    def arrived(self, count: int, now: float) -> None:
        """`count` messages reached the writer at `now` (monotonic)."""
        self._rate = self.rate(now) + count / RATE_TAU_S
        self._at = now

    def rate(self, now: float) -> float:
        """Messages a second arriving lately, decayed to `now`."""
        if not self._rate:
            return 0.0
        return self._rate * math.exp(-max(0.0, now - self._at) / RATE_TAU_S)

    def seconds(self, now: float) -> float:
        """How long after its first message a pending batch may wait for more."""
        if self.load_s > self.fixed_s and self.rate(now) * self.load_s >= MIN_JOINERS:
            return self.load_s
        return self.fixed_s
