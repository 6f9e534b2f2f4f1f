"""The decoder in-process, one step at a time: byte budgets, refused records, Pub/Sub weather,
taking turns to pull; and the writer's bulk histogram observe. The settler's own tests are in
test_settler.py."""

from __future__ import annotations

import threading
import time

import pytest
from prometheus_client import CollectorRegistry, Histogram
from role_doubles import (
    RecordingSubscription,
    decoder,
    held,
    pulled,
    read_sent,
    received_batch,
    settled,
)

from broker.subscription import PubSubOutage, PulledMessage
from contracts import messages, metrics
from workers import pull_turns
from workers.held import HeldMessages
from workers.pull_backoff import PullBackoff
from workers.pull_turns import PullTurns


def big(i: int, size: int) -> PulledMessage:
    return PulledMessage(f"big-{i}", b"x" * size, f"m{i}", 1.0)


class SizedPulls(RecordingSubscription):
    """Serves `big` messages, as many as each pull asks for, and records what it asked."""

    def __init__(self, size: int, count: int):
        super().__init__([])
        self.backlog = [big(i, size) for i in range(count)]
        self.asked: list[int] = []

    def pull(self, max_messages, timeout=0):
        self.asked.append(max_messages)
        served, self.backlog = self.backlog[:max_messages], self.backlog[max_messages:]
        return served


def test_pulls_are_sized_to_the_byte_budget_and_stop_when_it_is_spent():
    role, _, supervisor_end = decoder([], max_in_flight=1000, max_in_flight_bytes=10_000)
    role.subscription = subscription = SizedPulls(size=1_000, count=50)
    role.puller.average_message_bytes = 1_000.0
    assert role.pull_once() == 10  # 10,000 bytes of room at 1,000 a message
    assert subscription.asked == [10]
    assert role.held.bytes_held == 10_000
    assert role.pull_once() == 0 and subscription.asked == [10], "pulled past the byte budget"
    role.handle(messages.AckBatch(slot=0, ack_ids=[f"big-{i}" for i in range(4)]))
    assert role.pull_once() == 4  # the room the acks freed, and no more
    assert received_batch(supervisor_end).nbytes == 10_000
    role.shutdown()


def test_a_message_larger_than_the_budget_is_pulled_alone_and_only_when_nothing_is_held():
    # Sizes scaled down so that the frames fit a pipe's buffer with nobody reading it.
    role, _, _ = decoder([], max_in_flight=1000, max_in_flight_bytes=1_000)
    role.subscription = subscription = SizedPulls(size=3_000, count=3)
    assert role.pull_once() == 1  # nothing held: one, though it alone exceeds the budget
    assert subscription.asked[-1] == 1
    assert role.pull_once() == 0  # something held and no room: no pull at all
    assert subscription.asked == [1]
    role.handle(messages.AckBatch(slot=0, ack_ids=["big-0"]))
    assert role.pull_once() == 1 and subscription.asked == [1, 1]
    role.shutdown()


def test_a_record_the_database_refused_comes_back_as_a_dead_letter_with_its_bytes():
    role, subscription, supervisor_end = decoder([pulled(3)])
    role.pull_once()
    received_batch(supervisor_end)
    role.handle(messages.AckBatch(slot=0, ack_ids=["ack-0", "ack-2"],
                                  rejected=(("ack-1", "CHECK constraint failed"),
                                            ("ack-from-before-a-restart", "too big"))))  # fmt: skip
    letter_batch = received_batch(supervisor_end)
    assert letter_batch.dead_letter_ack_ids == ["ack-1"] and letter_batch.records == []
    (letter,) = letter_batch.dead_letters
    assert letter.payload == pulled(3)[1].data  # the bytes received, not a re-encoding
    assert (letter.reason, letter.message_id) == ("store_rejected", "1")
    assert "CHECK constraint failed" in letter.detail
    settled(role)
    assert subscription.acked == ["ack-0", "ack-2"]  # the refused one is not acked yet
    assert subscription.nacked == ["ack-from-before-a-restart"]  # no bytes here: redeliver
    assert held(role) == {"ack-1"}
    role.handle(messages.AckBatch(slot=0, ack_ids=["ack-1"]))  # its letter was committed
    settled(role)
    assert held(role) == set() and subscription.acked[-1] == "ack-1"
    role.shutdown()


def test_leases_that_ran_out_are_released_and_never_extended_past_the_maximum():
    messages_held = HeldMessages(lease_s=10, max_lease_s=100)
    messages_held.add("old", b"x", "1", now=0.0, lease_end=10.0)
    messages_held.add("new", b"yy", "2", now=95.0, lease_end=105.0)
    assert messages_held.due_for_extension(now=101.0, margin_s=4.0) == []  # old: past 100 s
    assert messages_held.expired(now=101.0) == ["old"]
    messages_held.release(["old"])
    assert messages_held.bytes_held == 2
    assert messages_held.due_for_extension(now=102.0, margin_s=4.0) == ["new"]
    assert messages_held.due_for_extension(now=102.0, margin_s=4.0) == [], "extended twice"


def test_heartbeats_say_when_pubsub_is_unreachable_and_when_it_is_back():
    role, _, supervisor_end = decoder([])
    role.puller.backoff = PullBackoff(initial_s=0.01, maximum_s=0.02)
    role.puller.backoff.wait_after_failure(PubSubOutage("UNAVAILABLE"))
    role.heartbeat_if_due()
    assert read_sent(supervisor_end) == [messages.Heartbeat("decoder-0", pubsub_ok=False)]
    role.puller.backoff.succeeded()
    role._next_heartbeat = 0.0
    role.heartbeat_if_due()
    assert read_sent(supervisor_end) == [messages.Heartbeat("decoder-0", pubsub_ok=True)]
    role.shutdown()


def test_backoff_grows_to_its_cap_and_a_stop_cuts_the_wait_short():
    backoff = PullBackoff(initial_s=0.01, maximum_s=0.05)
    delays = [backoff.wait_after_failure(PubSubOutage("x")) for _ in range(8)]
    assert max(delays) <= 0.05 and backoff.failures == 8
    slow = PullBackoff(initial_s=30, maximum_s=30)
    slow.interrupt()
    started = time.monotonic()
    slow.wait_after_failure(PubSubOutage("x"))
    assert time.monotonic() - started < 5


# --- taking turns to pull (issue 13) --------------------------------------------------------


def test_a_decoder_caught_up_starts_its_pull_midway_between_the_waiting_pulls_looks():
    period = pull_turns.LOOK_PERIOD_S
    starts = [0.0, 0.0, 0.0]
    turns = PullTurns(starts, slot=0)
    turns.pull_returned(0.002, brought=3, asked=1000)  # short: the subscription is caught up
    now = 1000.0
    starts[1] = now - 1.0  # open (and waiting) for a second: it looks at phase `now`
    at = turns.start_time(now)
    assert at == pytest.approx(now + period / 2)  # the far side of the circle
    starts[2] = now - 1.0 + period / 2  # another waiting pull already looks there
    at = turns.start_time(now)
    phase = (at - now) % period  # the middle of one of the two (equal) gaps
    assert phase == pytest.approx(period / 4) or phase == pytest.approx(3 * period / 4)


def test_with_a_backlog_or_nothing_waiting_a_decoder_pulls_again_at_once():
    starts = [0.0, 999.0]
    turns = PullTurns(starts, slot=0)
    turns.pull_returned(0.002, brought=100, asked=1000)  # full (the emulator's most)
    assert turns.start_time(1000.0) == 1000.0, "waited for a phase with a backlog"
    turns.pull_returned(0.002, brought=5, asked=1000)
    starts[1] = 1000.0 - 0.001  # in transit, not waiting: younger than a few round trips
    assert turns.start_time(1000.0) == 1000.0
    starts[1] = 1000.0 - pull_turns.STALE_S - 1  # a dead decoder's leftover
    assert turns.start_time(1000.0) == 1000.0
    alone = PullTurns(None, slot=0)
    alone.pull_returned(0.002, brought=0, asked=1000)
    assert alone.start_time(5.0) == 5.0


def test_waiting_for_a_turn_marks_the_start_and_stops_at_once_when_asked():
    starts = [0.0, 0.0]
    turns = PullTurns(starts, slot=0)
    turns.pull_returned(0.002, brought=1, asked=1000)
    starts[1] = time.monotonic() - 1.0
    stop = threading.Event()
    stop.set()
    planned = turns.start_time(time.monotonic())
    assert turns.wait_for_turn(stop) is (planned <= time.monotonic()), "slept through a stop"
    starts[1] = 0.0
    assert turns.wait_for_turn(threading.Event()) is True and starts[0] > 0
    turns.pull_returned(0.01, brought=0, asked=1000)
    assert starts[0] == 0.0


def test_observe_many_fills_the_histogram_exactly_as_observing_one_by_one():
    buckets = (0.01, 0.05, 0.1, 1.0)
    one = Histogram("one", "t", buckets=buckets, registry=CollectorRegistry())
    bulk = Histogram("bulk", "t", buckets=buckets, registry=CollectorRegistry())
    amounts = [0.0, 0.01, 0.0100001, 0.05, 0.07, 0.5, 2.0, 99.0, 0.003]
    for amount in amounts:
        one.observe(amount)
    metrics.observe_many(bulk, amounts)
    metrics.observe_many(bulk, [])

    def samples(histogram):
        (family,) = histogram.collect()
        return [(s.name.split("_", 2)[-1], s.labels, s.value) for s in family.samples
                if not s.name.endswith("_created")]  # fmt: skip

    assert samples(one) == samples(bulk)
