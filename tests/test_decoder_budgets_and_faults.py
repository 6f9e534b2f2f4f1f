"""The decoder in-process, one step at a time: byte budgets, refused records, Pub/Sub weather."""

from __future__ import annotations

import time

from test_supervisor_roles import (
    RecordingSubscription,
    decoder,
    held,
    pulled,
    read_sent,
    received_batch,
    settled,
)

from broker.subscription import PubSubOutage, PulledMessage
from contracts import messages
from workers.held import HeldMessages
from workers.pull_backoff import PullBackoff


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
    role.average_message_bytes = 1_000.0
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


class FailingSettles(RecordingSubscription):
    def __init__(self):
        super().__init__([])
        self.fail = True

    def modify_deadline(self, ack_ids, seconds, deadline=None):
        if self.fail:
            raise PubSubOutage("modify_ack_deadline gave up after 8s")
        super().modify_deadline(ack_ids, seconds)

    def acknowledge(self, ack_ids, deadline=None):
        raise PubSubOutage("acknowledge gave up after 60s")


def test_failed_extensions_are_tried_again_and_failed_acks_only_cost_a_redelivery():
    role, _, _ = decoder([])
    role.subscription = role.settler.subscription = subscription = FailingSettles()
    now = time.monotonic()
    role.held.add("a", b"x", "1", now, now + 1.0)
    role.extend_leases_if_due(now)
    settled(role)
    assert role.held.get("a").lease_end == now + 1.0, "lease recorded before the call succeeded"
    subscription.fail = False
    role.extend_leases_if_due(now)  # the failed one is due again, and tried again
    settled(role)
    assert subscription.extended == ["a"] and role.held.get("a").lease_end > now + 5
    role.handle(messages.AckBatch(slot=0, ack_ids=["a"]))
    settled(role)  # the failure is logged and counted, nothing raises
    assert held(role) == set()
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
    role.backoff = PullBackoff(initial_s=0.01, maximum_s=0.02)
    role.backoff.wait_after_failure(PubSubOutage("UNAVAILABLE"))
    role.heartbeat_if_due()
    assert read_sent(supervisor_end) == [messages.Heartbeat("decoder-0", pubsub_ok=False)]
    role.backoff.succeeded()
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
