"""The graceful stop (`supervisor.stopping`), with the relay it sends through, driven one
event at a time in-process: no processes. Each test plays what the supervisor's loop would
tell them (a stop step, a child drained or gone) and asserts who is sent what, in order."""

from __future__ import annotations

from relay_frames import D0, D1, batch_frame, forwarded, from_decoder, running_tree

from contracts.messages import AckBatch, Stop, WriterLost
from supervisor.relay import WRITER
from supervisor.stopping import DONE, DRAINING, FLUSHING, RUNNING, SETTLING, GracefulStop


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
