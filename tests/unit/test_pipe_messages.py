"""The messages on the pipes between the processes survive pickling, as they must."""

from __future__ import annotations

import pickle

import pytest
from role_doubles import (
    record,
)

from contracts import messages


@pytest.mark.parametrize(
    "message",
    [
        messages.DecodedBatch(slot=1, records=[record()], record_ack_ids=["a"],
                              record_publish_times=[1.0]),
        messages.AckBatch(slot=2, ack_ids=["a", "b"]),
        messages.Heartbeat(role="writer"),
        messages.StartupFailed(role="writer", reason="nope"),
        messages.EndOfStream(slot=0),
        messages.WriterLost(),
    ],
)  # fmt: skip
def test_messages_survive_pickle(message):
    assert pickle.loads(pickle.dumps(message)) == message
