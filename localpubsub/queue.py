"""The messages of one subscription: what waits for delivery, what is leased, when leases end.

Owns: `MessageQueue`, the backlog (published, not yet delivered, or handed back), the leases
(delivered, neither acknowledged nor expired: ack number -> lease) and a heap of lease
deadlines, so that the next expiry is known without scanning every lease. A lease that
expires puts its message back at the front of the backlog: at-least-once delivery.

Never: lock or wait (the caller, `localpubsub.state`, holds its lock around every call and
owns the waiting), read a clock (every call takes `now`), or know about gRPC.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

PubsubMessage = Any  # the raw protobuf class of google.pubsub.v1.PubsubMessage


@dataclass(slots=True)
class QueuedMessage:
    """A published message as every subscription of its topic shares it (never mutated)."""

    message: PubsubMessage
    size: int  # its serialized size, counted against a pull's byte budget


@dataclass(slots=True)
class Lease:
    item: QueuedMessage
    deadline: float  # monotonic seconds


class MessageQueue:
    """Backlog and leases of one subscription. Ack numbers come from `numbers`, which the
    server shares among all subscriptions, so that an ack id is never reused."""

    def __init__(self, numbers: Iterator[int]) -> None:
        self._numbers = numbers
        self.backlog: deque[QueuedMessage] = deque()
        self.leases: dict[int, Lease] = {}
        # (deadline, ack number); an entry whose lease is gone or was moved is stale and
        # skipped when it comes up, which is cheaper than removing it from the middle.
        self._deadlines: list[tuple[float, int]] = []

    def add(self, items: Iterable[QueuedMessage]) -> None:
        self.backlog.extend(items)

    def take(
        self, max_messages: int, max_bytes: int, lease_s: float, now: float
    ) -> list[tuple[int, QueuedMessage]]:
        """Lease up to `max_messages` (at least one, then at most `max_bytes` in all) for
        `lease_s` seconds; [(ack number, message)]."""
        self.expire(now)
        taken: list[tuple[int, QueuedMessage]] = []
        total = 0
        deadline = now + lease_s
        while self.backlog and len(taken) < max_messages:
            item = self.backlog[0]
            if taken and total + item.size > max_bytes:
                break
            self.backlog.popleft()
            total += item.size
            number = next(self._numbers)
            self.leases[number] = Lease(item, deadline)
            heapq.heappush(self._deadlines, (deadline, number))
            taken.append((number, item))
        return taken

    def acknowledge(self, numbers: Iterable[int]) -> None:
        """Forget the leased messages; unknown or expired numbers are ignored, as Pub/Sub does."""
        for number in numbers:
            self.leases.pop(number, None)

    def modify(self, numbers: Iterable[int], seconds: int, now: float) -> int:
        """Move the deadlines of these leases to `now + seconds`; 0 hands the messages back
        for redelivery at once (a nack). Returns how many went back to the backlog."""
        handed_back = []
        for number in numbers:
            lease = self.leases.get(number)
            if lease is None:
                continue
            if seconds == 0:
                del self.leases[number]
                handed_back.append(lease.item)
            else:
                lease.deadline = now + seconds
                heapq.heappush(self._deadlines, (lease.deadline, number))
        self.backlog.extendleft(reversed(handed_back))
        return len(handed_back)

    def expire(self, now: float) -> int:
        """Put every message whose lease ended by `now` back at the front of the backlog."""
        expired = []
        while self._deadlines and self._deadlines[0][0] <= now:
            deadline, number = heapq.heappop(self._deadlines)
            lease = self.leases.get(number)
            if lease is not None and lease.deadline == deadline:
                del self.leases[number]
                expired.append(lease.item)
        self.backlog.extendleft(reversed(expired))
        return len(expired)

    def next_expiry(self) -> float | None:
        """When the first live lease ends (monotonic seconds); None without leases."""
        while self._deadlines:
            deadline, number = self._deadlines[0]
            lease = self.leases.get(number)
            if lease is not None and lease.deadline == deadline:
                return deadline
            heapq.heappop(self._deadlines)
        return None

    def still_leased(self, numbers: set[int]) -> set[int]:
        """Those of `numbers` that are leased right now (for a stream's flow control)."""
        return {number for number in numbers if number in self.leases}
