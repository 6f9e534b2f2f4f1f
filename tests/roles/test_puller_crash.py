"""A failure after a pull hands the pulled messages back at once (nack) before the error
goes on: they are redelivered now, not after their whole ack deadline. And a pull that
will not start after all leaves no mark in the tree's shared pull times."""

from __future__ import annotations

import pytest
from role_doubles import decoder, pulled, stop_settlers

from workers import puller


@pytest.fixture(autouse=True)
def _stop_settlers():
    yield
    stop_settlers()


def test_a_decode_that_raises_nacks_what_was_pulled(monkeypatch):
    role, subscription, _ = decoder([pulled(3)])

    def broken(*args, **kwargs):
        raise RuntimeError("decoder bug")

    monkeypatch.setattr(puller, "decode_pulled", broken)
    with pytest.raises(RuntimeError, match="decoder bug"):
        role.pull_once()
    assert sorted(subscription.nacked) == sorted(m.ack_id for m in pulled(3))


def test_a_send_that_raises_nacks_and_a_failing_nack_does_not_hide_the_error(monkeypatch):
    role, subscription, _ = decoder([pulled(2)])

    def send_fails(messages, frame):
        raise OSError("pipe closed")

    def nack_fails(ack_ids, deadline=None):
        subscription.nacked += ack_ids
        raise ConnectionError("Pub/Sub away")

    monkeypatch.setattr(role, "send_pulled", send_fails)
    monkeypatch.setattr(subscription, "nack", nack_fails)
    with pytest.raises(OSError, match="pipe closed"):
        role.pull_once()
    assert len(subscription.nacked) == 2


def test_a_turn_taken_after_the_role_stopped_pulling_is_given_back():
    role, subscription, _ = decoder([pulled(1)])
    starts = role.puller.turns.starts
    role.pulling = False
    assert role.pull_once() == 0
    assert subscription.pull_calls == 0
    assert starts[role.slot] == 0.0  # no phantom pull for the other decoders to space around
