"""How many of the tree's decoders pull while there is a backlog, as one decoder sees it.

Owns: `PullShare`, one decoder's view of the array the tree shares (its layout is
`contracts.pull_share_layout`): may this slot pull now, and "my pull returned, full (a
backlog) or not".

Why (issue 13, bench/RESULTS.md "fourth pass"): with eight decoders on two cores and a
backlog on a local emulator, the work spread over eight processes, each running an eighth
of the time with cold caches and its own acks per commit: 27.6 us of the tree's CPU a
message against 19.4 with two decoders. Letting only two of the eight pull brought it to
21.6 and the drain from 32,772 to 43,974 msgs/s. Which is the right number depends on
where a pull waits: on a machine that is busy anyway, more pullers only share its CPU; on
real Pub/Sub a pull waits on the network, and more pullers do help. So the supervisor
sets the number from what it measures (`supervisor.pull_steering`), and this module only
carries it.

Never: decide the number (the supervisor does), block (a decoder that may not pull sleeps
on its own stop event), or let a dead decoder's entry matter for long: a backlog mark is a
time and goes stale by itself.
"""

from __future__ import annotations

from collections.abc import MutableSequence

from contracts.pull_share_layout import allowed, mark_pull_returned


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
        if self.shared is not None:
            mark_pull_returned(self.shared, self.slot, now, full)
