"""Decoders space out their waiting pulls: a tree of long polls that leaves no blind spot.

Owns: `PullTurns`, one decoder's view of a small array shared by every decoder of the tree
(the monotonic time each slot started, or will start, the pull it has open; 0 while it has
none), and the rule by which a decoder picks when to start its next pull. The clock is
CLOCK_MONOTONIC, the same in every process of the machine.

Why (issue 13, measured on the Google emulator, bench/RESULTS.md): the emulator answers a
waiting pull only when it looks at the backlog again, every 50 ms from the pull's arrival.
A message published while every pull waits is therefore picked up 0-50 ms later, at the
next look of whichever pull looks first; with pulls that happen to look at nearly the same
moments (they drift together), most of that 50 ms is paid. So a decoder whose pull just
returned does not start the next one blindly: while other pulls are *waiting* (open for
longer than a pull's round trip, so they found nothing yet), it starts its own in the middle
of the largest gap between their looks, i.e. it sleeps until then (at most one period).
With N decoders the looks end up spread evenly, and a message waits at most ~50/N ms.

What it never costs: with a backlog, a pull comes back full (as many as asked, or the 100
the emulator hands out at most), and the decoder pulls again at once: no sleep, no wake-up,
whatever the others do. Only a decoder whose last pull came back short (the subscription is
caught up) picks a moment. A service
that answers a waiting pull as soon as a message arrives (real Pub/Sub) loses nothing
either: a pull in transit is not waiting (the threshold follows the measured round trip),
and while a decoder sleeps for its phase, the waiting pulls of the others are open.

Never: call Pub/Sub, hold a lock, or let a stuck, frozen or dead decoder hold up the others:
an entry is only a start time, and one older than STALE_S is ignored.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import MutableSequence

# The Google emulator looks at the backlog for a waiting pull every 50 ms (its pull loop
# sleeps 50 ms between looks; measured here: a waiting pull returned 0-50 ms, evenly
# spread, after the message was published).
LOOK_PERIOD_S = 0.05
# A pull open this many round trips (and at least WAITING_MIN_S) found nothing yet.
WAITING_ROUND_TRIPS = 4
WAITING_MIN_S = 0.005
# Close enough to the chosen moment: start now rather than sleep a whole period.
TOLERANCE_S = 0.004
# An entry older than this belongs to a pull that was answered long ago by a decoder that
# died before clearing it (an idle pull is re-issued every 10 s).
STALE_S = 30.0
ROUND_TRIP_SAMPLES = 128
# The Google emulator never returns more than 100 messages a pull, whatever was asked (its
# MessageBacklog caps a pull at 100); a pull that brings that many found a backlog.
FULL_PULL = 100


class PullTurns:
    def __init__(self, starts: MutableSequence[float] | None, slot: int) -> None:
        """`starts`: the tree's shared array (one float per decoder slot); None for a lone
        decoder (tests), which never waits."""
        self.starts = starts if starts is not None else [0.0] * (slot + 1)
        self.slot = slot
        self.round_trips: list[float] = []  # of recent pulls that brought messages
        self.slept_s = 0.0  # total time spent waiting for a phase (for tests and profiles)
        self.backlog = True  # the last pull came back full: pull again at once

    def waiting_after_s(self) -> float:
        """How long a pull must be open to count as waiting (found nothing yet)."""
        fastest = min(self.round_trips, default=0.0)
        return max(WAITING_MIN_S, WAITING_ROUND_TRIPS * fastest)

    def start_time(self, now: float) -> float:
        """When this decoder should start its next pull (>= now), given the others' pulls."""
        if self.backlog:
            return now
        threshold = self.waiting_after_s()
        looks = sorted(
            start % LOOK_PERIOD_S
            for slot, start in enumerate(self.starts[:])
            if slot != self.slot and start > 0 and (now - start > threshold or start > now)
            and now - start < STALE_S
        )  # fmt: skip
        if not looks:
            return now
        # The largest gap between consecutive looks (around the circle), and its middle.
        gaps = [(b - a, a) for a, b in itertools.pairwise(looks)]
        gaps.append((looks[0] + LOOK_PERIOD_S - looks[-1], looks[-1]))
        width, after = max(gaps)
        target = (after + width / 2) % LOOK_PERIOD_S
        wait = (target - now) % LOOK_PERIOD_S
        if wait > LOOK_PERIOD_S - TOLERANCE_S or wait < TOLERANCE_S:
            return now
        return now + wait

    def wait_for_turn(self, stop: threading.Event) -> bool:
        """Sleep until this decoder's moment to pull (marked in the shared array first, so
        that no other decoder picks the same one). False if `stop` was set meanwhile."""
        now = time.monotonic()
        start = self.start_time(now)
        self.starts[self.slot] = start
        if start > now:
            self.slept_s += start - now
            if stop.wait(start - now):
                self.starts[self.slot] = 0.0
                return False
        return True

    def give_up_turn(self) -> None:
        """The pull marked by `wait_for_turn` will not start: clear its mark, or the others
        would space their pulls around a pull that does not exist (until STALE_S)."""
        self.starts[self.slot] = 0.0

    def pull_returned(self, round_trip_s: float, brought: int, asked: int) -> None:
        """The pull is over: it took `round_trip_s` and brought `brought` of `asked`."""
        self.starts[self.slot] = 0.0
        # As many as asked, or as many as any pull brings on the emulator: more are waiting.
        self.backlog = brought >= min(asked, FULL_PULL)
        if brought:
            self.round_trips.append(round_trip_s)
            del self.round_trips[:-ROUND_TRIP_SAMPLES]
