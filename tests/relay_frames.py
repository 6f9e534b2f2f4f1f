"""Batch frames and relay deliveries as the supervisor's loop sees them, for tests that drive
the relay (`supervisor.relay`) one event at a time."""

from __future__ import annotations

from contracts.messages import DecodedBatch, encode_batch, split_batch_frame
from contracts.records import ScanRecord
from supervisor.outbox import RawFrame
from supervisor.relay import Relay

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
