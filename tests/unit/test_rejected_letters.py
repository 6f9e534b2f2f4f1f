"""A record the database refuses comes back once as a store_rejected dead letter; if the
database refuses that letter too, it is nacked (redelivered later), never wrapped again in
a loop that would not end (issue 25)."""

from __future__ import annotations

from workers.held import Held
from workers.pulled import rejected_batch


def test_a_refused_store_rejected_letter_is_nacked_not_wrapped_again() -> None:
    held = {"a1": Held(payload=b"{}", message_id="m1", pulled_at=0.0, lease_end=60.0)}
    first, lost = rejected_batch(0, (("a1", "bad value"),), held.get, 1.0)
    assert [d.reason for d in first.dead_letters] == ["store_rejected"] and lost == []
    again, lost = rejected_batch(0, (("a1", "bad letter"),), held.get, 2.0)
    assert again.dead_letters == [] and lost == ["a1"]
