"""The relay and the graceful stop, driven one event at a time in-process: no processes.

Each test plays what the supervisor's loop would tell them (a batch from a decoder, acks
from the writer, a child up or down, a stop step) and asserts exactly who is sent what, in
which order: what a destination receives is the list of its deliveries, in order.
"""

from __future__ import annotations

import pickle

from contracts.messages import (
    AckBatch,
    DecodedBatch,
    Stop,
    WriterLost,
    encode_batch,
    split_batch_frame,
)
from contracts.records import ScanRecord
from supervisor.outbox import RawFrame
from supervisor.relay import WRITER, Relay
from supervisor.stopping import DONE, DRAINING, FLUSHING, RUNNING, SETTLING, GracefulStop

D0, D1 = "decoder-0", "decoder-1"


def batch_frame(slot: int, n: int, first: int = 0) -> bytes:
    """What decoder `slot` sends for a pull of `n` messages: the tagged frame."""
    records = [ScanRecord(f"10.0.0.{i}", 80, "HTTP", i, "r", 2) for i in range(first, first + n)]
    return encode_batch(
        DecodedBatch(
            slot=slot,
            records=records,
            record_ack_ids=[f"ack-{slot}-{i}" for i in range(first, first + n)],
            record_publish_times=[1.0] * n,
        )
    )


def from_decoder(relay: Relay, frame: bytes) -> list:
    """The supervisor's part: split the frame (never unpickle it) and hand it to the relay."""
    split = split_batch_frame(frame)
    assert split is not None
    return relay.batch(*split)


def forwarded(frame: bytes) -> RawFrame:
    """What the writer must receive for `frame`: its pickle, untouched, as a raw frame."""
    _, batch_pickle = split_batch_frame(frame)
    return RawFrame(batch_pickle)


def running_tree(*slots: int) -> Relay:
    relay = Relay()
    assert relay.writer_started() == []
    for slot in slots:
        assert relay.decoder_started(slot) == []
    return relay


# --- the two flows ----------------------------------------------------------------------------


def test_a_batch_goes_to_the_writer_as_the_same_bytes_without_unpickling():
    relay = running_tree(0)
    frame = batch_frame(0, 3)
    [(destination, sent)] = from_decoder(relay, frame)
    assert destination == WRITER
    assert type(sent) is RawFrame  # the Outbox sends it with send_bytes, not pickle
    assert sent.data == frame[5:]  # tag + count stripped, pickle byte for byte
    assert pickle.loads(sent.data).record_ack_ids == ["ack-0-0", "ack-0-1", "ack-0-2"]


def test_acks_go_to_the_decoder_in_their_slot():
    relay = running_tree(0, 1)
    acks_1 = AckBatch(slot=1, ack_ids=["a", "b"])
    acks_0 = AckBatch(slot=0, ack_ids=["c"])
    assert relay.acks(acks_1) == [(D1, acks_1)]
    assert relay.acks(acks_0) == [(D0, acks_0)]


def test_counts_messages_relayed_and_acked_then_starts_afresh():
    relay = running_tree(0)
    from_decoder(relay, batch_frame(0, 3))
    from_decoder(relay, batch_frame(0, 2))
    relay.acks(AckBatch(slot=0, ack_ids=["a", "b", "c", "d"]))
    assert relay.take_counts() == (5, 4)
    assert relay.take_counts() == (0, 0)


# --- restarts ------------------------------------------------------------------------------------


def test_restart_mid_batch_acks_wait_for_the_respawned_decoder_in_order():
    relay = running_tree(0, 1)
    frame = batch_frame(0, 2)
    assert from_decoder(relay, frame) == [(WRITER, forwarded(frame))]
    assert relay.decoder_exited(0) == []  # SIGKILL after its batch was forwarded
    first = AckBatch(slot=0, ack_ids=["ack-0-0"])
    other_slot = AckBatch(slot=1, ack_ids=["x"])
    second = AckBatch(slot=0, ack_ids=["ack-0-1"])
    assert relay.acks(first) == []  # held: nobody is in slot 0
    assert relay.acks(other_slot) == [(D1, other_slot)]  # other slots are not held up
    assert relay.acks(second) == []
    assert relay.decoder_started(0) == [(D0, first), (D0, second)]
    later = AckBatch(slot=0, ack_ids=["y"])
    assert relay.acks(later) == [(D0, later)]
    # Handed over once: a second restart of the slot is owed nothing.
    relay.decoder_exited(0)
    assert relay.decoder_started(0) == []


def test_acks_held_for_one_slot_are_not_given_to_another():
    relay = running_tree(0, 1)
    relay.decoder_exited(0)
    held = AckBatch(slot=0, ack_ids=["a"])
    assert relay.acks(held) == []
    assert relay.decoder_exited(1) == []
    assert relay.decoder_started(1) == []
    assert relay.decoder_started(0) == [(D0, held)]


def test_writer_lost_with_acks_in_flight_then_backlog_goes_to_the_new_writer_in_order():
    relay = running_tree(0, 1)
    b1, b2, b3, b4 = (batch_frame(s, 2, first=10 * i) for i, s in enumerate((0, 1, 0, 1)))
    assert from_decoder(relay, b1) == [(WRITER, forwarded(b1))]
    committed = AckBatch(slot=0, ack_ids=["ack-0-0"])  # acked before the writer died
    assert relay.acks(committed) == [(D0, committed)]
    # SIGKILL: b1's second message was never committed; every decoder must nack.
    assert relay.writer_exited(lost=True) == [(D0, WriterLost()), (D1, WriterLost())]
    assert from_decoder(relay, b2) == []
    assert from_decoder(relay, b3) == []
    assert relay.writer_started() == [(WRITER, forwarded(b2)), (WRITER, forwarded(b3))]
    assert relay.backlog == []
    assert from_decoder(relay, b4) == [(WRITER, forwarded(b4))]


def test_writer_lost_only_reaches_decoders_that_are_up_and_is_not_owed_later():
    relay = running_tree(0, 1, 2)
    relay.decoder_exited(1)
    assert relay.writer_exited(lost=True) == [
        ("decoder-0", WriterLost()),
        ("decoder-2", WriterLost()),
    ]
    assert relay.decoder_started(1) == []


def test_a_writer_that_stopped_as_asked_costs_no_writer_lost():
    relay = running_tree(0)
    assert relay.writer_exited(lost=False) == []
    frame = batch_frame(0, 1)
    assert from_decoder(relay, frame) == []
    assert relay.backlog == [forwarded(frame)]


# --- stopping -------------------------------------------------------------------------------------


class Tree:
    """The deliveries of a relay and a graceful stop, collected per destination in order."""

    def __init__(self, *slots: int) -> None:
        self.relay = running_tree(*slots)
        self.stop = GracefulStop(timeout_s=30)
        self.decoders = [f"decoder-{slot}" for slot in slots]
        self.writer_up = True
        self.drained: set[str] = set()
        self.received: dict[str, list] = {}

    def deliver(self, deliveries: list) -> None:
        for destination, message in deliveries:
            assert (destination == WRITER and self.writer_up) or destination in self.decoders
            self.received.setdefault(destination, []).append(message)

    def advance(self) -> None:
        self.deliver(
            self.stop.advance(
                writer_up=self.writer_up,
                decoders=list(self.decoders),
                drained=set(self.decoders) <= self.drained,
            )
        )


def test_stop_flushes_the_last_batches_before_the_writer_stop_and_acks_before_the_decoder_stop():
    tree = Tree(0, 1)
    assert tree.stop.begin(now=100.0)
    assert tree.stop.phase == DRAINING
    last = batch_frame(1, 2)
    tree.deliver(from_decoder(tree.relay, last))  # pulled before StopPulling arrived
    tree.drained.add(D1)
    tree.advance()
    assert tree.stop.phase == DRAINING  # decoder-0 has not said EndOfStream yet
    tree.drained.add(D0)
    tree.advance()
    assert tree.stop.phase == FLUSHING
    tree.deliver(tree.relay.acks(AckBatch(slot=1, ack_ids=["ack-1-0", "ack-1-1"])))
    tree.deliver(tree.relay.writer_exited(lost=False))
    tree.writer_up = False
    tree.advance()
    assert tree.stop.phase == SETTLING
    tree.decoders.clear()
    tree.advance()
    assert tree.stop.phase == DONE
    assert tree.received == {
        WRITER: [forwarded(last), Stop()],
        D1: [AckBatch(slot=1, ack_ids=["ack-1-0", "ack-1-1"]), Stop()],
        D0: [Stop()],
    }


def test_stop_with_a_backlog_and_no_writer_settles_the_decoders_and_never_sends_it():
    tree = Tree(0, 1)
    tree.deliver(tree.relay.writer_exited(lost=True))
    tree.writer_up = False
    backlog = [batch_frame(0, 1), batch_frame(1, 1)]
    for frame in backlog:
        tree.deliver(from_decoder(tree.relay, frame))
    assert tree.stop.begin(now=0.0)  # a stop cancels the writer's pending respawn
    tree.drained.update((D0, D1))
    tree.advance()
    assert tree.stop.phase == SETTLING  # no writer to flush: straight to the decoders
    assert tree.received == {D0: [WriterLost(), Stop()], D1: [WriterLost(), Stop()]}
    # Never sent: each decoder nacks on Stop what it still holds, so nothing is lost.
    assert tree.relay.backlog == [forwarded(frame) for frame in backlog]


def test_stop_with_nobody_left_is_done_at_once():
    stop = GracefulStop(timeout_s=5)
    assert stop.begin(now=0.0)
    assert stop.advance(writer_up=False, decoders=[], drained=True) == []
    assert stop.phase == DONE


def test_stop_begins_once_times_out_forces_once_and_kills_after_the_grace():
    stop = GracefulStop(timeout_s=5, kill_grace_s=3)
    assert stop.running and not stop.in_order
    assert stop.begin(now=10.0)
    assert not stop.begin(now=11.0)
    assert stop.in_order and not stop.running
    assert not stop.timed_out(now=15.0)
    assert stop.timed_out(now=15.5)
    assert stop.force(now=15.5)
    assert not stop.force(now=16.0)
    assert stop.phase == DONE and not stop.in_order and not stop.timed_out(now=99.0)
    assert not stop.kill_due(now=18.5)
    assert stop.kill_due(now=18.6)


def test_a_forced_stop_without_a_graceful_one_has_no_deadline():
    stop = GracefulStop(timeout_s=5)
    assert stop.phase == RUNNING
    assert stop.force(now=1.0)
    assert stop.advance(writer_up=True, decoders=[D0], drained=True) == []
