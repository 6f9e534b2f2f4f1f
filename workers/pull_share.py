"""How many of the tree's decoders pull while there is a backlog, as the decoders see it.

Owns: the layout of a small array shared by the supervisor and every decoder (element 0:
how many decoders may pull now, set by the supervisor's `supervisor.puller_count`; element
1: the monotonic time any decoder's pull last returned, 0.0 until one has; element 2 +
slot: the monotonic time that slot's last pull came back full), and one decoder's view of
it, `PullShare`: may this slot pull now, and "my pull returned, full (a backlog) or not".

Why (issue 13, bench/RESULTS.md "fourth pass"): with eight decoders on two cores and a
backlog on a local emulator, the work spread over eight processes, each running an eighth
of the time with cold caches and its own acks per commit: 27.6 us of the tree's CPU a
message against 19.4 with two decoders. Letting only two of the eight pull brought it to
21.6 and the drain from 32,772 to 43,974 msgs/s. Which is the right number depends on
where a pull waits: on a machine that is busy anyway, more pullers only share its CPU; on
real Pub/Sub a pull waits on the network, and more pullers do help. So the supervisor
sets the number from what it measures, and this module only carries it.

Never: decide the number (the supervisor does), block (a decoder that may not pull sleeps
on its own stop event), or let a dead decoder's entry matter for long: a backlog mark is a
time and goes stale by itself.
"""

from __future__ import annotations

from collections.abc import MutableSequence

_ALLOWED = 0  # element 0: how many decoders may pull now (slots below it may)
_ANY_RETURNED = 1  # element 1: when any pull last returned (0.0: none has yet)
_FIRST_SLOT = 2  # element 2 + slot: when that slot's last pull came back full


def shared_size(workers: int) -> int:
    """Elements of the shared array for a tree of `workers` decoders."""
    return _FIRST_SLOT + max(1, workers)


def set_allowed(shared: MutableSequence[float], count: int) -> None:
    shared[_ALLOWED] = float(count)


def allowed(shared: MutableSequence[float]) -> int:
    return int(shared[_ALLOWED])


def last_backlog_seen(shared: MutableSequence[float]) -> float:
    """The latest monotonic time any decoder's pull came back full (0.0: never)."""
    return max(shared[_FIRST_SLOT:], default=0.0)


def any_pull_returned(shared: MutableSequence[float]) -> bool:
    """Has any decoder's pull returned yet? Until then, nobody knows if there is a backlog."""
    return shared[_ANY_RETURNED] > 0.0


class PullShare:
    def __init__(self, shared: MutableSequence[float] | None, slot: int) -> None:
        """`shared`: the tree's array (`shared_size` elements); None for a lone decoder
        (tests), which always pulls."""
        self.shared = shared
        self.slot = slot

    def may_pull(self) -> bool:
        return self.shared is None or self.slot < allowed(self.shared)

    def pull_returned(self, now: float, full: bool) -> None:
        """This decoder's pull returned; `full`: it got all it asked for, so more messages
        are waiting (a backlog)."""
        if self.shared is None:
            return
        self.shared[_ANY_RETURNED] = now
        if full and _FIRST_SLOT + self.slot < len(self.shared):
            self.shared[_FIRST_SLOT + self.slot] = now
