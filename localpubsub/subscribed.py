"""One subscription inside the server: its configuration, its messages, and the condition its
pulls sleep on.

Owns: `Subscribed`, and how its pulls wait and wake. A pull that finds nothing sleeps on the
subscription's `threading.Condition` (built on the server's one lock) until a publish or a
nack notifies it, until the next lease of that subscription expires (a timed wait to a known
instant, not polling), or until its own time is up. A stream at its outstanding limit is
counted, so that wake-ups are not swallowed by a pull that can take nothing.

Never: take the lock itself (every method runs with the caller holding it), check names or
requests, or sleep for a fixed time.
"""

from __future__ import annotations

import math
import threading

from localpubsub import protos
from localpubsub.queue import MessageQueue


class Subscribed:
    """One subscription: what it reports, its messages, and the condition pulls sleep on."""

    def __init__(self, config: protos.Subscription, queue: MessageQueue, lock: threading.Lock):
        self.config = config
        self.queue = queue
        self.ready = threading.Condition(lock)
        self.blocked_streams = 0  # streams at their outstanding limit, waiting for acks

    def notify(self, count: int) -> None:
        """Wake `count` waiting pulls for `count` new messages: each takes some or finds them
        gone. A stream at its outstanding limit takes none, so while one waits, wake them all
        rather than let it swallow a wake-up meant for a pull that has room."""
        if self.blocked_streams:
            self.ready.notify_all()
        else:
            self.ready.notify(count)

    def wait(self, left_s: float, blocked: bool, now: float) -> None:
        """Sleep until notified, the next lease expires, or `left_s` (math.inf: no limit)
        passed; `blocked` says the waiter is a stream at its outstanding limit."""
        timeout = None if math.isinf(left_s) else left_s
        expiry = self.queue.next_expiry()
        if expiry is not None:
            # Wake when the next lease ends, to hand its message out again.
            until_expiry = max(expiry - now, 0.001)
            timeout = until_expiry if timeout is None else min(timeout, until_expiry)
        if blocked:
            self.blocked_streams += 1
        try:
            self.ready.wait(timeout)
        finally:
            if blocked:
                self.blocked_streams -= 1
