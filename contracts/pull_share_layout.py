"""The layout of the small array in shared memory through which the supervisor tells the
decoders how many of them may pull while there is a backlog, and they tell it what their
pulls found.

Owns: which element means what, and the reads and writes of each:
- element 0 (`ALLOWED`): how many decoders may pull now (slots below it may), written by
  the supervisor (`supervisor.pull_steering`);
- element 1 (`ANY_RETURNED`): the monotonic time any decoder's pull last returned, 0.0
  until one has, written by the decoders (`workers.pull_share`);
- element 2 + slot (`FIRST_SLOT`): the monotonic time that slot's last pull came back full
  (a backlog), written by that slot's decoder.
Shared with no lock: each element has one writer at a time, and a decoder killed while
writing can spoil only its own element, whose time goes stale by itself.

Never: decide how many may pull (`supervisor.puller_count`), or hold the array itself.
"""

from __future__ import annotations

from collections.abc import MutableSequence

ALLOWED = 0
ANY_RETURNED = 1
FIRST_SLOT = 2


def shared_size(workers: int) -> int:
    """Elements of the shared array for a tree of `workers` decoders."""
    return FIRST_SLOT + max(1, workers)


def set_allowed(shared: MutableSequence[float], count: int) -> None:
    shared[ALLOWED] = float(count)


def allowed(shared: MutableSequence[float]) -> int:
    return int(shared[ALLOWED])


def last_backlog_seen(shared: MutableSequence[float]) -> float:
    """The latest monotonic time any decoder's pull came back full (0.0: never)."""
    return max(shared[FIRST_SLOT:], default=0.0)


def any_pull_returned(shared: MutableSequence[float]) -> bool:
    """Has any decoder's pull returned yet? Until then, nobody knows if there is a backlog."""
    return shared[ANY_RETURNED] > 0.0


def mark_pull_returned(shared: MutableSequence[float], slot: int, now: float, full: bool) -> None:
    """Slot `slot`'s pull returned at `now`; `full`: it got all it asked for (a backlog)."""
    shared[ANY_RETURNED] = now
    if full and FIRST_SLOT + slot < len(shared):
        shared[FIRST_SLOT + slot] = now
