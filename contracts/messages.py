"""The messages that cross process boundaries in the miniscan tree.

Owns: the small, plain, picklable dataclasses that decoders, the writer and the supervisor send
each other over their pipes. The supervisor defines this protocol; `workers/` and `store/`
import it to speak it.

Never: carry a client object, a connection or a lock; never grow behaviour beyond trivial
properties. Anything here must survive `pickle` under the `spawn` start method.
"""

from __future__ import annotations

import pickle
import struct
from dataclasses import dataclass, field
from functools import partial

from contracts.records import DeadLetter, ScanRecord

# --- decoder -> writer (relayed by the supervisor) --------------------------------------


@dataclass(slots=True)
class DecodedBatch:
    """What one pull produced: records and dead letters, each with the ack id to settle."""

    slot: int  # the decoder slot that pulled it; the writer sends acks back to this slot
    records: list[ScanRecord] = field(default_factory=list)
    record_ack_ids: list[str] = field(default_factory=list)
    record_publish_times: list[float] = field(default_factory=list)  # unix s, for latency
    dead_letters: list[DeadLetter] = field(default_factory=list)
    dead_letter_ack_ids: list[str] = field(default_factory=list)
    nbytes: int = 0  # payload bytes received for it: what the writer's byte bound counts

    def __len__(self) -> int:
        return len(self.records) + len(self.dead_letters)

    def __reduce__(self) -> tuple:
        # Records travel as plain tuples, which pickle packs and unpacks in C, and are
        # rebuilt without running Python code per record (issue 13: unpickling and building
        # them one by one was a third of the writer's CPU).
        fields = (self.record_ack_ids, self.record_publish_times, self.dead_letters,
                  self.dead_letter_ack_ids, self.nbytes)  # fmt: skip
        return (_rebuild_batch, (self.slot, list(map(tuple, self.records)), *fields))


_as_record = partial(tuple.__new__, ScanRecord)


def _rebuild_batch(slot: int, records: list[tuple], *rest) -> DecodedBatch:
    return DecodedBatch(slot, list(map(_as_record, records)), *rest)


# A DecodedBatch travels as BATCH_TAG + message count + its pickle, so that the supervisor
# can forward it to the writer without unpickling and re-pickling it (measured: 5-10 ms of
# supervisor CPU per 1,000 messages the other way, 0.05 ms this way). Every other message
# is a plain pickle, which never starts with this tag (pickles start with 0x80).
BATCH_TAG = b"B"
_COUNT = struct.Struct("!I")


def encode_batch(batch: DecodedBatch) -> bytes:
    return BATCH_TAG + _COUNT.pack(len(batch)) + pickle.dumps(batch, pickle.HIGHEST_PROTOCOL)


def split_batch_frame(frame: bytes) -> tuple[int, memoryview] | None:
    """(message count, the batch's pickle) for a batch frame; None for any other message.
    The pickle is a view into `frame`, not a copy: batches can weigh many MiB."""
    if not frame.startswith(BATCH_TAG):
        return None
    (count,) = _COUNT.unpack_from(frame, len(BATCH_TAG))
    return count, memoryview(frame)[len(BATCH_TAG) + _COUNT.size :]


@dataclass(frozen=True, slots=True)
class EndOfStream:
    """A decoder stopped pulling: no batch from `slot` follows this one (graceful stop)."""

    slot: int


# --- writer -> decoder (relayed by the supervisor) --------------------------------------


@dataclass(frozen=True, slots=True)
class AckBatch:
    """These messages are durably committed: the decoder in `slot` may acknowledge them.

    `rejected` names records the database refused, as (ack id, why): they are not committed
    and not acked; the decoder, which holds the bytes received, sends each back as a
    `store_rejected` dead letter, acked once that letter is committed."""

    slot: int
    ack_ids: list[str]
    rejected: tuple[tuple[str, str], ...] = ()


# --- supervisor -> child ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StopPulling:
    """Graceful stop, step 1 (decoders): pull no more, send EndOfStream, keep acking."""


@dataclass(frozen=True, slots=True)
class Stop:
    """Graceful stop, last step: settle what you hold (writer: flush; decoder: nack) and exit."""


@dataclass(frozen=True, slots=True)
class WriterLost:
    """The writer died with an uncommitted batch: nack everything in flight for prompt
    redelivery instead of waiting out the ack deadline."""


# --- child -> supervisor ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Sent by a child's main loop about once a second: proof that the loop is not stuck.
    `pubsub_ok` is False while a decoder cannot reach Pub/Sub (it waits it out: /readyz says
    not ready meanwhile, and the supervisor does not restart it). `database_problem` is the
    writer's: why it cannot write the database right now (it waits that out too, holding its
    batch), empty while it can; one line, never a password."""

    role: str
    pubsub_ok: bool = True
    database_problem: str = ""


@dataclass(frozen=True, slots=True)
class Ready:
    """The child finished its set-up (writer: database open; decoder: subscription found)."""

    role: str


@dataclass(frozen=True, slots=True)
class StartupFailed:
    """The child could not start for a reason a restart will not fix (bad config, refused
    database, missing subscription): the supervisor halts the tree instead of flapping."""

    role: str
    reason: str


@dataclass(frozen=True, slots=True)
class Crashed:
    """The child is about to exit on an unexpected error; `reason` is its last line, and
    `traceback` the formatted traceback of an exception ("" when nothing raised, e.g. a hung
    pull). The supervisor logs it, once; the child does not."""

    role: str
    reason: str
    traceback: str = ""


@dataclass(frozen=True, slots=True)
class Stopped:
    """The child settled what it held and is exiting cleanly."""

    role: str
