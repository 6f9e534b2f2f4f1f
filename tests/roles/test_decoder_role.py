"""The decoder role in-process, one step at a time (`contracts.lifecycle`: open, run_once,
shutdown) against a recording stand-in for its subscription (the real one is covered end to
end in test_pipeline_e2e.py, in the lease test of test_supervisor_cli.py and in
`DecoderRole.open` below, against the emulator)."""

from __future__ import annotations

import time
from multiprocessing import Pipe

import pytest
from role_doubles import (
    HangingSubscription,
    decoder,
    held,
    pulled,
    read_sent,
    received_batch,
    settled,
    stop_settlers,
    without_heartbeats,
)

from contracts import messages
from contracts.lifecycle import CannotStart
from workers import decoder_process
from workers.decoder_process import DecoderRole
from workers.decoder_settings import DecoderSettings
from workers.puller import PULL_HUNG_AFTER_S


@pytest.fixture(autouse=True)
def no_thread_outlives_its_test():
    yield
    stop_settlers()


def test_decoder_holds_what_it_sent_until_the_writer_acks_it():
    role, subscription, supervisor_end = decoder([pulled(4)])
    assert role.pull_once() == 4
    batch = received_batch(supervisor_end)
    assert isinstance(batch, messages.DecodedBatch) and len(batch) == 4
    assert held(role) == {"ack-0", "ack-1", "ack-2", "ack-3"}
    assert subscription.acked == []
    role.handle(messages.AckBatch(slot=0, ack_ids=["ack-0", "ack-1"]))
    settled(role)
    assert subscription.acked == ["ack-0", "ack-1"]
    assert held(role) == {"ack-2", "ack-3"}


def test_decoder_stops_pulling_when_its_in_flight_budget_is_spent():
    role, subscription, _ = decoder([pulled(10), pulled(5, start=10)], max_in_flight=10)
    role.pull_once()
    calls = subscription.pull_calls
    assert role.pull_once() == 0
    assert subscription.pull_calls == calls, "pulled beyond the in-flight budget"


def test_writer_lost_hands_everything_back_for_redelivery():
    role, subscription, _ = decoder([pulled(3)])
    role.pull_once()
    role.handle(messages.WriterLost())
    settled(role)
    assert sorted(subscription.nacked) == ["ack-0", "ack-1", "ack-2"]
    assert held(role) == set()


def test_stop_pulling_sends_end_of_stream_and_nacks_a_late_pull():
    role, subscription, supervisor_end = decoder([pulled(2)])
    role.handle(messages.StopPulling())
    assert isinstance(supervisor_end.recv(), messages.EndOfStream)
    role.pulling = True  # a pull that was already open when the stop arrived ...
    subscription_pull = subscription.pull

    def pull_then_stop(max_messages, timeout=0):
        got = subscription_pull(max_messages)
        role.pulling = False  # ... returns after the stop
        return got

    subscription.pull = pull_then_stop
    assert role.pull_once() == 0
    settled(role)
    assert sorted(subscription.nacked) == ["ack-0", "ack-1"]
    assert not supervisor_end.poll(0), "a batch was sent after EndOfStream"


def test_leases_about_to_run_out_are_extended():
    role, subscription, _ = decoder([pulled(2)])
    role.pull_once()
    soon = time.monotonic() + 1.0  # as if the leases were about to run out
    for message in role.held.messages.values():
        message.lease_end = soon
    role.extend_leases_if_due()
    settled(role)
    assert sorted(subscription.extended) == ["ack-0", "ack-1"]
    assert all(m.lease_end > soon + 5 for m in role.held.messages.values())


def test_a_pull_that_never_returns_is_reported_as_a_crash():
    role, _, _ = decoder([])
    assert not role.pull_is_hung()
    role.puller.started_at = 100.0
    assert not role.pull_is_hung(now=110.0)
    assert role.pull_is_hung(now=100.0 + 31)
    assert "pull hung" in role.crash_reason


# --- the decoder's lifecycle: open, run_once, shutdown --------------------------------------


@pytest.mark.emulator
def test_decoder_open_refuses_a_missing_subscription_and_finds_an_existing_one(pubsub_target):
    supervisor_end, theirs = Pipe()
    with pytest.raises(CannotStart, match="no-such-sub does not exist"):
        DecoderRole.open(0, theirs, DecoderSettings(pubsub_target.project, "no-such-sub"))
    found = DecoderSettings(pubsub_target.project, pubsub_target.subscription)
    role = DecoderRole.open(2, theirs, found)
    assert role.slot == 2 and not role.finished
    role.shutdown()
    assert read_sent(supervisor_end) == [messages.Stopped(role="decoder-2")]


def test_decoder_run_once_extends_the_leases_that_are_due_and_heartbeats(monkeypatch):
    monkeypatch.setattr(decoder_process, "HEARTBEAT_INTERVAL_S", 3600.0)
    role, subscription, supervisor_end = decoder([])
    now = time.monotonic()
    far = now + 60
    role.held.add("due", b"x", "1", now, now + 1.0)  # "due" is about to run out
    role.held.add("fresh", b"y", "2", now, far)
    assert role.run_once(timeout=0) is True
    settled(role)
    assert subscription.extended == ["due"]
    assert role.held.get("due").lease_end > time.monotonic() + role.settings.lease_s - 5
    assert role.held.get("fresh").lease_end == far
    assert role.run_once(timeout=0) is True
    settled(role)
    assert subscription.extended == ["due"], "extended a lease that was not due"
    assert read_sent(supervisor_end) == [messages.Heartbeat(role="decoder-0")]
    role.shutdown()


def test_decoder_run_once_acts_on_one_supervisor_message_per_turn():
    role, subscription, supervisor_end = decoder([])
    supervisor_end.send(messages.AckBatch(slot=0, ack_ids=["a"]))
    supervisor_end.send(messages.AckBatch(slot=0, ack_ids=["b"]))
    role.run_once(timeout=0)
    settled(role)
    assert subscription.acked == ["a"]
    role.run_once(timeout=0)
    settled(role)
    assert subscription.acked == ["a", "b"]
    supervisor_end.send(messages.Stop())
    assert role.run_once(timeout=0) is False and role.finished
    role.shutdown()


def test_decoder_run_once_reports_a_hung_pull_instead_of_heartbeating(monkeypatch):
    monkeypatch.setattr(decoder_process, "HEARTBEAT_INTERVAL_S", 0.0)  # every turn, if alive
    subscription = HangingSubscription()
    supervisor_end, theirs = Pipe()
    role = DecoderRole(0, subscription, theirs)
    assert role.run_once(timeout=0) is True  # starts the puller, which enters the pull
    assert subscription.entered.wait(10), "the first run_once did not start pulling"
    assert role.run_once(timeout=0) is True, "a pull that just began is not hung"
    assert read_sent(supervisor_end) == [messages.Heartbeat(role="decoder-0")] * 2
    role.puller.started_at -= PULL_HUNG_AFTER_S + 1  # as if the pull had been open that long
    assert role.run_once(timeout=0) is False
    assert role.finished and "pull hung" in role.crash_reason
    assert read_sent(supervisor_end) == [], "heartbeat sent by a decoder whose pull hung"
    subscription.released.set()
    role.shutdown()
    assert read_sent(supervisor_end) == [messages.Stopped(role="decoder-0")]


def test_decoder_first_run_once_starts_pulling_and_shutdown_hands_back_what_it_held():
    role, subscription, supervisor_end = decoder([pulled(3)])
    assert role.run_once(timeout=0) is True
    sent = read_sent(supervisor_end, wait_s=10)
    deadline = time.monotonic() + 10
    while not any(isinstance(m, messages.DecodedBatch) for m in sent):
        assert time.monotonic() < deadline, "the puller sent no batch"
        sent += read_sent(supervisor_end, wait_s=0.5)
    assert held(role) == {"ack-0", "ack-1", "ack-2"}
    role.shutdown()
    assert not role.puller.thread.is_alive(), "the puller outlived shutdown"
    assert sorted(subscription.nacked) == ["ack-0", "ack-1", "ack-2"]
    assert held(role) == set() and subscription.closed.is_set()
    assert without_heartbeats(read_sent(supervisor_end)) == [messages.Stopped(role="decoder-0")]


def test_decoder_finishes_on_a_closed_link_and_on_a_stop_signal():
    role, _, supervisor_end = decoder([])
    supervisor_end.close()
    assert role.run_once(timeout=0) is False
    assert role.finished and role.crash_reason is None
    role.shutdown()
    role, _, _ = decoder([])
    role.handle_stop_signal()
    assert role.finished and role.crash_reason is None
