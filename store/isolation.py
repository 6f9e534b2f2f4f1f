"""Which messages of a batch the writer may ack, and which the database refused.

Owns: `write_isolating` (write a batch; if the database refuses its data, halve it until the
records or dead letters at fault are found, issue 5, with `isolate_bad_records`) and
`settlements_by_slot` (the acks and refusals each decoder slot
is sent after a commit).

Never: commit or ack by itself; the writer (`store.writer_process`) calls these with its
store's write, and sends what they return only after the commit returned.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from contracts.messages import DecodedBatch
from contracts.records import DeadLetter, ScanRecord
from store.errors import BatchDataError

log = logging.getLogger(__name__)

Tagged = tuple[object, tuple[int, str]]  # a record or dead letter and (decoder slot, ack id)


def write_isolating(
    write: Callable[..., object],
    batches: list[DecodedBatch],
    records: Sequence[ScanRecord],
    letters: Sequence[DeadLetter],
) -> dict[tuple[int, str], str]:
    """Write the whole batch with `write(records, letters)` (a store's `write_batch`); if the
    database refuses its data, isolate the dead letters, then the records, at fault. Return
    {(slot, ack id): why} for each one refused. A StoreUnavailable goes to the caller."""
    try:
        write(records, letters)
        return {}
    except BatchDataError as exc:
        log.warning("batch of %d refused (%s): isolating the bad records",
                    len(records) + len(letters), exc)  # fmt: skip
    tagged_letters = [
        (letter, (batch.slot, ack_id))
        for batch in batches
        for letter, ack_id in zip(batch.dead_letters, batch.dead_letter_ack_ids, strict=True)
    ]
    refused = isolate_bad_records(lambda part: write([], part), tagged_letters)
    tagged = [
        (record, (batch.slot, ack_id))
        for batch in batches
        for record, ack_id in zip(batch.records, batch.record_ack_ids, strict=True)
    ]
    refused += isolate_bad_records(lambda part: write(part), tagged)
    return dict(refused)


def isolate_bad_records(
    write: Callable[[list], object], records: list[Tagged]
) -> list[tuple[tuple[int, str], str]]:
    """Write the records (or dead letters), halving on data errors; return (tag, error) for
    each one no write would take.

    Every write that succeeds is committed (upserts are idempotent, so a crash between halves
    only causes redelivery). At most ~2·log2(n) extra commits per bad record.
    """
    if not records:
        return []
    try:
        write([record for record, _ in records])
        return []
    except BatchDataError as exc:
        if len(records) == 1:
            return [(records[0][1], str(exc))]
    middle = len(records) // 2
    return isolate_bad_records(write, records[:middle]) + isolate_bad_records(
        write, records[middle:]
    )


def settlements_by_slot(
    batches: list[DecodedBatch], refused: dict[tuple[int, str], str]
) -> dict[int, tuple[list[str], list[tuple[str, str]]]]:
    """{slot: (ack ids committed, [(ack id, why) refused])}, in the order they came."""
    by_slot: dict[int, tuple[list[str], list[tuple[str, str]]]] = {}
    for batch in batches:
        ack_ids, rejected = by_slot.setdefault(batch.slot, ([], []))
        for ack_id in (*batch.record_ack_ids, *batch.dead_letter_ack_ids):
            why = refused.get((batch.slot, ack_id)) if refused else None
            if why is None:
                ack_ids.append(ack_id)
            else:
                rejected.append((ack_id, why))
    return by_slot
