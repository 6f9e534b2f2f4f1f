"""The decoder's settler (`workers.settler`): ack, nack and lease calls off the main loop; a
call that fails only costs a redelivery, and acks queued behind a call go out merged."""

from __future__ import annotations

import threading
import time

from role_doubles import RecordingSubscription, decoder, held, settled

from broker.subscription import PubSubOutage
from contracts import messages
from workers.settler import Settler


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


def test_acks_queued_behind_a_call_go_out_in_one_call_and_each_is_reported():
    class SlowAcks(RecordingSubscription):
        def __init__(self):
            super().__init__([])
            self.calls: list[list[str]] = []
            self.release = threading.Event()

        def acknowledge(self, ack_ids, deadline=None):
            self.calls.append(list(ack_ids))
            self.release.wait(10)
            super().acknowledge(ack_ids)

    subscription = SlowAcks()
    outcomes: list[tuple[str, int]] = []
    settler = Settler(subscription, lambda r, e: outcomes.append((r.kind, len(r.ack_ids))))
    settler.submit("ack", ["a"])
    deadline = time.monotonic() + 10
    while not subscription.calls:  # the first call is under way, and blocks
        assert time.monotonic() < deadline
        time.sleep(0.01)
    settler.submit("ack", ["b", "c"])
    settler.submit("ack", ["d"])
    settler.submit("nack", ["e"], why="test")
    settler.submit("ack", ["f"])
    subscription.release.set()
    assert settler.wait_idle(10)
    assert subscription.calls == [["a"], ["b", "c", "d"], ["f"]]  # the nack kept its place
    assert subscription.nacked == ["e"]
    assert outcomes == [("ack", 1), ("ack", 2), ("ack", 1), ("nack", 1), ("ack", 1)]
    assert settler.close(5)
