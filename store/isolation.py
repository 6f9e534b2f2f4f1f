"""Which messages of a batch the writer may ack, and which the database refused.

Owns: `isolate_bad_records` (halving a refused batch until the records or dead letters at
fault are found, issue 5) and `settlements_by_slot` (the acks and refusals each decoder slot
is sent after a commit).

Never: commit or ack by itself; the writer (`store.writer_process`) calls these with its
store's write, and sends what they return only after the commit returned.
"""

from __future__ import annotations

from collections.abc import Callable

from contracts.messages import DecodedBatch
from store.errors import BatchDataError

Tagged = tuple[object, tuple[int, str]]  # a record or dead letter and (decoder slot, ack id)


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
