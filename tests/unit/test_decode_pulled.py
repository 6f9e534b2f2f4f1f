"""Decoding one pull: every message becomes a record or a dead letter, and a decoder bug
dead-letters the message instead of crashing the process."""

from __future__ import annotations

from role_doubles import (
    pulled,
)

from broker.subscription import PulledMessage
from contracts.records import ScanRecord
from workers.pulled import decode_pulled


def test_decode_pulled_keeps_every_message_as_a_record_or_a_dead_letter():
    messages_in = [*pulled(3), PulledMessage("ack-bad", b"{nope", "m-bad", 2.0)]
    batch = decode_pulled(slot=4, messages=messages_in, received_at=99.0)
    assert batch.slot == 4
    assert [r.ip for r in batch.records] == ["1.1.1.0", "1.1.1.1", "1.1.1.2"]
    assert batch.record_ack_ids == ["ack-0", "ack-1", "ack-2"]
    assert batch.dead_letter_ack_ids == ["ack-bad"]
    (letter,) = batch.dead_letters
    assert (letter.payload, letter.reason, letter.message_id) == (b"{nope", "invalid_json", "m-bad")


def test_a_decoder_bug_dead_letters_the_message_instead_of_crashing():
    def broken_decode(payload: bytes, **clock: float) -> ScanRecord:
        raise KeyError("bug")

    batch = decode_pulled(0, pulled(1), received_at=0.0, decode=broken_decode)
    assert batch.records == []
    assert batch.dead_letters[0].reason == "decoder_error"
