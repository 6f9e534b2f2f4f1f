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
The SQL upserts in `store.sqlite.writer` and `store.postgres.writer` apply the very same
rule; tests check all three agree.

Never: touch SQLite, validate fields (the decoders did), or depend on input order.
"""

from __future__ import annotations

from collections.abc import Iterable
from operator import attrgetter, itemgetter

from contracts.records import ScanRecord

# One reduced key, in the column order of the upsert:
# (ip, port, service, timestamp, response, data_version, first_seen).
UpsertRow = tuple[str, int, str, int, str, int, int]

# The timestamp twice: a record's own first_seen is its timestamp.
_ROW = attrgetter("ip", "port", "service", "timestamp", "response", "data_version", "timestamp")
_KEY = itemgetter(0, 1, 2)


def precedence(record: ScanRecord) -> tuple[int, str, int]:
    """The sort key of the newest-wins rule: the greatest one is kept."""
    return (record.timestamp, record.response, record.data_version)


def reduce_newest(records: Iterable[ScanRecord]) -> list[ScanRecord]:
    """The newest record of each key (see the module docstring for the tie rules)."""
    winners: dict[tuple[str, int, str], ScanRecord] = {}
    for record in records:
        current = winners.get(record.key)
        if current is None or precedence(record) > precedence(current):
            winners[record.key] = record
    return list(winners.values())


def reduce_rows(records: Iterable[ScanRecord]) -> list[UpsertRow]:
    """One row per key, ready to bind: the winner's fields and the key's earliest timestamp.

    The same rule as `reduce_newest`, on plain tuples: this runs for every batch the writer
    commits, so the usual case (no key twice in the batch) is done by C code alone
    (attrgetter, set); it measured 0.25 ms per 1,000 records against 0.6-0.9 ms for a loop
    over the dataclass attributes.
    """
    rows = list(map(_ROW, records))
    if len(set(map(_KEY, rows))) == len(rows):
        return rows
    return _reduce_duplicates(rows)


def _reduce_duplicates(rows: list[UpsertRow]) -> list[UpsertRow]:
    best: dict[tuple[str, int, str], UpsertRow] = {}
    for row in rows:
        key = row[:3]
        current = best.get(key)
        if current is None:
            best[key] = row
            continue
        # row[3:6] is (timestamp, response, data_version): the precedence tuple.
        winner = row if row[3:6] > current[3:6] else current
        best[key] = (*winner[:6], min(current[6], row[6]))
    return list(best.values())
