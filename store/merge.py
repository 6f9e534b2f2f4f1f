"""Newest-wins reduction of scan records, in memory and free of I/O.

Owns: the precedence rule that decides which of two scans of one (ip, port, service) is kept,
and the in-batch reduction that gives the database one row per key per batch.

The rule (issue: "the final table is a pure function of the set of messages"):
  1. the greater `timestamp` wins;
  2. on equal timestamps the greater `response` wins, compared as Python `str` (code points),
     which is the order SQLite's BINARY collation gives for the same text in UTF-8;
  3. on equal timestamps and responses the greater `data_version` wins.
Records equal on all three are interchangeable. `first_seen` is the smallest timestamp seen.
Both are associative and commutative, so any order, duplication or batching gives one result.
The SQL upsert in `store.db` applies the very same rule; tests check both agree.

Never: touch SQLite, validate fields (the decoders did), or depend on input order.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from store.records import ScanRecord


class ReducedScan(NamedTuple):
    """The winning record for one key, with the earliest timestamp seen for that key."""

    record: ScanRecord
    first_seen: int


def precedence(record: ScanRecord) -> tuple[int, str, int]:
    """The sort key of the newest-wins rule: the greatest one is kept."""
    return (record.timestamp, record.response, record.data_version)


def reduce_batch(records: Iterable[ScanRecord]) -> list[ReducedScan]:
    """One entry per key: the winning record and the smallest timestamp of that key."""
    winners: dict[tuple[str, int, str], ScanRecord] = {}
    first_seen: dict[tuple[str, int, str], int] = {}
    for record in records:
        key = (record.ip, record.port, record.service)
        current = winners.get(key)
        if current is None:
            winners[key] = record
            first_seen[key] = record.timestamp
            continue
        if precedence(record) > precedence(current):
            winners[key] = record
        if record.timestamp < first_seen[key]:
            first_seen[key] = record.timestamp
    return [ReducedScan(record, first_seen[key]) for key, record in winners.items()]


def reduce_newest(records: Iterable[ScanRecord]) -> list[ScanRecord]:
    """The newest record of each key (see the module docstring for the tie rules)."""
    return [reduced.record for reduced in reduce_batch(records)]
