"""Where batches and acks go: the supervisor's routing, as a pure object.

Owns: the routing of the two relayed flows and what each destination is owed across a
restart. A decoder's batch goes to the writer, or into a backlog while no writer is up; the
backlog is handed, in arrival order, to the next writer. The writer's AckBatch goes to the
decoder in its slot, or is held for that slot until a decoder is up in it again. A writer
that dies without being asked to costs every decoder a WriterLost (nack what is in flight:
the writer's uncommitted batch will not be acked). It also counts relayed and acked messages
for the throughput summary. Each event returns the deliveries to make now, as (destination
name, message) pairs in the order they must be sent; the caller only performs them.

Never: hold a process, pipe, socket, thread or clock; unpickle or re-pickle a batch (it goes
on as the `RawFrame` it came in); decide about restarts, stops or health (`supervisor.tree`
and `supervisor.stopping` do).
"""

from __future__ import annotations

from contracts.child_id import ChildId
from contracts.messages import AckBatch, WriterLost
from supervisor.outbox import RawFrame

WRITER = ChildId.writer().name

Delivery = tuple[str, object]  # (child name, message or RawFrame to send it)


class Relay:
    def __init__(self) -> None:
        self.writer_up = False
        # Insertion-ordered like the supervisor's children: WriterLost goes out in spawn order.
        self.decoders_up: dict[int, str] = {}
        self.backlog: list[RawFrame] = []  # batches that arrived with no writer up
        self.undelivered_acks: dict[int, list[AckBatch]] = {}  # slot -> acks, oldest first
        self.relayed = 0  # messages in batches forwarded since the last take_counts()
        self.acked = 0  # ack ids relayed since the last take_counts()

    # --- the two flows ----------------------------------------------------------------------

    def batch(self, count: int, batch_pickle: bytes) -> list[Delivery]:
        """A decoder sent a batch of `count` messages: pass it on untouched."""
        self.relayed += count
        frame = RawFrame(batch_pickle)
        if not self.writer_up:
            self.backlog.append(frame)
            return []
        return [(WRITER, frame)]

    def acks(self, message: AckBatch) -> list[Delivery]:
        """The writer committed these: the decoder that pulled them may ack them."""
        self.acked += len(message.ack_ids)
        if message.slot not in self.decoders_up:
            # Its decoder died after sending the batch; the acks stay this slot's due.
            self.undelivered_acks.setdefault(message.slot, []).append(message)
            return []
        return [(ChildId.decoder(message.slot).name, message)]

    # --- who is up ------------------------------------------------------------------------------

    def child_started(self, child: ChildId) -> list[Delivery]:
        """What a child that just started is owed, first."""
        return self.writer_started() if child.is_writer else self.decoder_started(child.slot)

    def child_exited(self, child: ChildId, *, lost: bool) -> list[Delivery]:
        """A child is gone; `lost` when it was not asked to stop and exit cleanly."""
        if child.is_writer:
            return self.writer_exited(lost=lost)
        return self.decoder_exited(child.slot)

    def writer_started(self) -> list[Delivery]:
        self.writer_up = True
        owed = [(WRITER, frame) for frame in self.backlog]
        self.backlog.clear()
        return owed

    def writer_exited(self, *, lost: bool) -> list[Delivery]:
        """The writer is gone; `lost` when it was not asked to stop and exit cleanly."""
        self.writer_up = False
        if not lost:
            return []
        return [(name, WriterLost()) for name in self.decoders_up.values()]

    def decoder_started(self, slot: int) -> list[Delivery]:
        name = ChildId.decoder(slot).name
        self.decoders_up[slot] = name
        return [(name, acks) for acks in self.undelivered_acks.pop(slot, [])]

    def decoder_exited(self, slot: int) -> list[Delivery]:
        del self.decoders_up[slot]
        return []

    # --- throughput ------------------------------------------------------------------------------

    def take_counts(self) -> tuple[int, int]:
        """(messages relayed, ack ids relayed) since the last call; starts counting afresh."""
        counts = (self.relayed, self.acked)
        self.relayed = self.acked = 0
        return counts
