"""From pulled messages to what the writer commits: pure functions, no I/O.

Owns: `decode_pulled` (a record or a dead letter for every message of one pull, in one
`DecodedBatch`) and `rejected_batch` (the `store_rejected` dead letters for records the
database refused, built from the bytes the decoder still holds).

Never: pull, send, acknowledge or read the clock; the decoder passes in what it needs.
"""

from __future__ import annotations

from collections.abc import Callable

from broker.subscription import PulledMessage
from contracts.messages import DecodedBatch
from contracts.reasons import DECODER_ERROR, STORE_REJECTED
from contracts.records import DeadLetter, ScanRecord
from workers.decode import DEFAULT_MAX_CLOCK_SKEW_S, Rejection, decode_scan
from workers.held import Held


def decode_pulled(
    slot: int,
    messages: list[PulledMessage],
    received_at: float,
    decode: Callable[..., ScanRecord] = decode_scan,
    max_clock_skew_s: float = DEFAULT_MAX_CLOCK_SKEW_S,
) -> DecodedBatch:
    """Turn pulled messages into one batch: a record or a dead letter for every message.

    A timestamp is judged against the message's publish time, Pub/Sub's own clock, not
    `received_at` (this host's clock when the pull returned): the verdict is then the same on
    every redelivery and on every decoder host, whatever its clock or the backlog's age, so
    the final table stays a function of the messages alone. `received_at` stands in only for
    a message without a publish time.

    Anything the decoder raises besides its own Rejection is a decoder bug; the message is
    still dead-lettered (as `decoder_error`) rather than crashing the process, because a crash
    would only bring the same message back and crash again.
    """
    batch = DecodedBatch(slot=slot, nbytes=sum(len(m.data) for m in messages))
    for message in messages:
        try:
            record = decode(
                message.data,
                received_at=message.publish_time or received_at,
                max_clock_skew_s=max_clock_skew_s,
            )
        except Rejection as rejection:
            reason, detail = rejection.reason, rejection.detail
        except Exception as exc:  # see docstring
            reason, detail = DECODER_ERROR, f"{type(exc).__name__}: {exc}"[:500]
        else:
            batch.records.append(record)
            batch.record_ack_ids.append(message.ack_id)
            batch.record_publish_times.append(message.publish_time)
            continue
        batch.dead_letters.append(
            DeadLetter(
                payload=message.data,
                reason=reason,
                message_id=message.message_id,
                received_at=received_at,
                detail=detail,
            )
        )
        batch.dead_letter_ack_ids.append(message.ack_id)
    return batch


def rejected_batch(
    slot: int,
    rejected: tuple[tuple[str, str], ...],
    held: Callable[[str], Held | None],
    received_at: float,
) -> tuple[DecodedBatch, list[str]]:
    """Dead letters for the refused records whose bytes are held, and the ack ids of those
    whose bytes are not, or whose dead letter was refused too (to be nacked)."""
    batch = DecodedBatch(slot=slot)
    lost = []
    for ack_id, detail in rejected:
        message = held(ack_id)
        # A store_rejected letter the database refused too is nacked, not wrapped again:
        # wrapping it again would be refused again, a loop that never ends (issue 25).
        # Redelivered later, it meets the database's rules afresh.
        if message is None or message.dead_lettered:
            lost.append(ack_id)
            continue
        message.dead_lettered = True
        batch.dead_letters.append(
            DeadLetter(message.payload, STORE_REJECTED, message.message_id, received_at,
                       f"database refused the record: {detail}"[:500])
        )  # fmt: skip
        batch.dead_letter_ack_ids.append(ack_id)
        batch.nbytes += len(message.payload)
    return batch, lost
