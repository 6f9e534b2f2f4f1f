"""The stored table as the end-to-end tests and the benchmarks compare it: read back whole.

Owns: `read_table`, every row of `scans` in the row shape of `scanner.workload` (the shape
its expected table has), and `count_dead_letters`, from a SQLite file or a PostgreSQL URL
alike, through the store's own readers (`store.reader.open_store_reader`).

Never: write to the store, create or migrate it, or judge what it holds (the callers compare
it with the workload's expected table).
"""

from __future__ import annotations

import os

from scanner.workload import Key, Row
from store.reader import open_store_reader


def read_table(target: str | os.PathLike[str]) -> dict[Key, Row]:
    """{(ip, port, service): (last_scanned, response, data_version)} of every row.

    A store that does not exist yet, or has no tables yet, raises the store's StoreError.
    """
    with open_store_reader(target) as reader:
        return {
            (row.ip, row.port, row.service): (row.last_scanned, row.response, row.data_version)
            for row in reader.find_scans()
        }


def count_dead_letters(target: str | os.PathLike[str]) -> int:
    """How many dead letters the store holds."""
    with open_store_reader(target) as reader:
        return sum(count for _, count in reader.count_by_reason())
