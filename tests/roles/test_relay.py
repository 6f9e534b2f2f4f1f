"""The relay, driven one event at a time in-process: no processes.

Each test plays what the supervisor's loop would tell it (a batch from a decoder, acks from
the writer, a child up or down) and asserts exactly who is sent what, in which order: what a
destination receives is the list of its deliveries, in order. The graceful stop, which sends
through the relay too, is in test_graceful_stop.py.
"""

from __future__ import annotations

import pickle

from relay_frames import D0, D1, batch_frame, forwarded, from_decoder, running_tree

from contracts.messages import (
    AckBatch,
    WriterLost,
)
from supervisor.outbox import RawFrame
from supervisor.relay import WRITER

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
