"""The row count is kept, never counted (issues 25 and 26): a writer opened on a large table
does no table-wide work at open, on its first batch, or for the rows gauge, nor does the
default `stats` (only `stats --full` reads every row); and no failed statement leaves the
PostgreSQL writer's connection unusable.

What the stores run is read from the statements themselves (apsw's exec trace, psycopg's
cursor), so these are not timed tests: a count of the whole table shows up as a statement.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import apsw
import psycopg
import pytest

from contracts.records import ScanRecord
from store.errors import StoreUnavailable
from store.postgres import schema as postgres_schema
from store.postgres import writer as postgres_writer
from store.postgres.writer import PostgresStore
from store.reader import open_store_reader
from store.sqlite import schema as sqlite_schema
from store.sqlite.writer import ScanStore

ROWS = 1_000_000
# A statement that reads every row of scans: an aggregate over it with no WHERE (max(rowid)
# is not one: SQLite reads the last page of the rowid tree). count(DISTINCT ip),
# min/max(last_scanned) and GROUP BY service or data_version, which stats used to run, are.
TABLE_WIDE = re.compile(
    r"\b(count|sum|min|max|avg)\s*\((?!\s*rowid\s*\))[^)]*\)[^;]*\bFROM\s+scans\b(?!\s+WHERE)",
    re.I,
)


def batch(n: int = 100) -> list[ScanRecord]:
    return [ScanRecord(f"203.0.113.{i % 250}", 1000 + i, "HTTP", 5, "new", 1) for i in range(n)]


def first_batch_counts_nothing(open_store, statements: list[str]) -> None:
    """Open a writer on the preloaded table and commit a first batch: the count comes from
    scan_counts, and no statement run reads every row."""
    with open_store() as store:
        assert store.row_count() == ROWS
        assert store.write_batch(batch()).new_keys == 100
        assert store.row_count() == ROWS + 100
    wide = [s for s in statements if TABLE_WIDE.search(s)]
    assert statements and not wide, wide


def default_stats_count_nothing(target: str, statements: list[str]) -> None:
    """`stats` answers from the kept counts alone; `stats --full` reads every row, and the
    detector above sees that it does (so a pass is no blind spot)."""
    statements.clear()
    with open_store_reader(target) as reader:
        stats = reader.read_stats()
    assert (stats.scan_rows, stats.services, stats.newest_scan) == (
        ROWS + 100, [("HTTP", ROWS + 100)], 5)  # fmt: skip
    wide = [s for s in statements if TABLE_WIDE.search(s)]
    assert statements and not wide, wide
    statements.clear()
    with open_store_reader(target) as reader:
        assert reader.read_stats(full=True).distinct_ips == ROWS + 100
    assert [s for s in statements if TABLE_WIDE.search(s)]


@pytest.fixture
def sqlite_statements() -> Iterator[list[str]]:
    """Every statement run by an apsw connection opened while the fixture is active."""
    seen: list[str] = []

    def trace(_cursor, statement: str, _bindings) -> bool:
        seen.append(statement)
        return True

    def hook(conn: apsw.Connection) -> None:
        conn.exec_trace = trace

    apsw.connection_hooks.append(hook)
    try:
        yield seen
    finally:
        apsw.connection_hooks.remove(hook)


@pytest.fixture
def postgres_statements(monkeypatch) -> list[str]:
    """Every statement run through a psycopg cursor while the test runs."""
    seen: list[str] = []
    execute = psycopg.Cursor.execute

    def traced(self, query, *args, **kwargs):
        seen.append(query if isinstance(query, str) else repr(query))
        return execute(self, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", traced)
    return seen


def test_a_writer_on_a_million_rows_sqlite_counts_nothing_table_wide(tmp_path, sqlite_statements):
    path = tmp_path / "big.db"
    ScanStore.open(path).close()
    conn = apsw.Connection(str(path))
    with conn:  # bulk load: one transaction, straight into the table
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
            " INSERT INTO scans SELECT '10.' || (i >> 16) || '.' || ((i >> 8) & 255) || '.'"
            " || (i & 255), 80, 'HTTP', 1, 'old', 1, 1 FROM n",
            (ROWS - 1,),
        )
        sqlite_schema.recount_scans(conn)
    conn.close()
    sqlite_statements.clear()
    first_batch_counts_nothing(lambda: ScanStore.open(path), sqlite_statements)
    default_stats_count_nothing(str(path), sqlite_statements)


def test_a_writer_on_a_million_rows_postgres_counts_nothing_table_wide(
    postgres_url, postgres_statements
):
    PostgresStore.open(postgres_url).close()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO scans SELECT '10.' || (i >> 16) || '.' || ((i >> 8) & 255) || '.'"
            " || (i & 255), 80, 'HTTP', 1, 'old'::bytea, 1, 1 FROM generate_series(0, %s) i",
            (ROWS - 1,),
        )
        postgres_schema.recount_scans(conn)
    postgres_statements.clear()
    first_batch_counts_nothing(lambda: PostgresStore.open(postgres_url), postgres_statements)
    default_stats_count_nothing(postgres_url, postgres_statements)


def test_a_lock_on_the_table_never_poisons_the_writers_connection(postgres_url, monkeypatch):
    """Reproduced at 3b16fd5: the periodic recount hit the lock timeout, was ignored without a
    rollback, and the next batch failed with 25P02 (in failed transaction) and crashed the
    writer. Now the gauge never asks the database, and a batch that meets the lock rolls back:
    once the lock is gone, the next batch commits."""
    monkeypatch.setattr(postgres_writer, "RECOUNT_EVERY_S", 0.0, raising=False)
    with PostgresStore.open(postgres_url, busy_timeout_ms=100) as store:
        store.write_batch(batch(1))
        with psycopg.connect(postgres_url) as other:
            other.execute("LOCK TABLE scans IN ACCESS EXCLUSIVE MODE")
            assert store.row_count() == 1  # the gauge, as the writer reads it after a commit
            with pytest.raises(StoreUnavailable, match="locked"):
                store.write_batch(batch(2))
            other.rollback()
        assert store.write_batch(batch(3)).new_keys == 2
        assert store.row_count() == 3


def test_a_connection_left_in_a_failed_transaction_is_rolled_back_before_reuse(postgres_url):
    with PostgresStore.open(postgres_url) as store:
        store.write_batch(batch(1))
        conn = store._conn  # what any stray statement on the writer's session could leave
        with pytest.raises(psycopg.errors.UndefinedTable):
            conn.execute("SELECT * FROM no_such_table")
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
        assert store.write_batch(batch(2)).new_keys == 1
