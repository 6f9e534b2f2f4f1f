"""A pull that was waited out takes nothing more (issue 25), on both local servers.

Why a stopping decoder waits for its open pull instead of cancelling it: Google's emulator
honours a cancelled (or abandoned) pull only now and then. Measured here, cancelling a
waiting pull and publishing at once: 0 of 5, then 5 of 5, then 1 of 3 messages reached a
fresh puller within seconds; the rest were handed to the cancelled pull and stayed invisible
until their ack deadline. The built-in server drops a cancelled pull every time. What holds
on both is this: a pull answers by its deadline, and once it has, it takes nothing more; so
waiting for it and nacking what it brought leaves nothing behind.
"""

from __future__ import annotations

import time

import pubsub_servers
import pytest

from broker.subscription import Subscription

pytestmark = pytest.mark.emulator

pubsub_server = pubsub_servers.pubsub_server
target = pubsub_servers.target


def pulled_within(target, count: int, seconds: float) -> int:
    """How many of `count` messages a fresh pull loop gets within `seconds` (acking them)."""
    got = 0
    deadline = time.monotonic() + seconds
    while got < count and time.monotonic() < deadline:
        received = target.pull(max_messages=count, timeout=1.0)
        if received:
            target.ack(*(m.ack_id for m in received))
        got += len(received)
    return got


def open_subscription(target) -> Subscription:
    return Subscription(target.project, target.subscription.rsplit("/", 1)[1])


def test_a_pull_that_was_waited_out_takes_nothing_more(target):
    waited = open_subscription(target)
    started = time.monotonic()
    assert waited.pull(10, timeout=3.0) == []
    assert time.monotonic() - started < 3.5  # answered by its deadline, not left open
    for i in range(3):
        target.publish(b"after the pull returned %d" % i)
    assert pulled_within(target, 3, seconds=4.0) == 3
    waited.close()
