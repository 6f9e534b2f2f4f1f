"""Bulk loads for the table-growth benchmark: rows generated inside the database server.

Owns: growing miniscan's `scans` table from `first` to `last` rows (numbered as
bench/table_keys.py numbers them) without the pipeline, fast enough for 100 million rows,
then leaving the kept counts true (`recount_scans`) and the table as the writer expects it;
and, for PostgreSQL, full rounds of updates of every row (the bloat measurement).

  SQLite      one INSERT ... SELECT over a recursive CTE per chunk, with the journal off and
              a large page cache for the primary key's index; WAL is set back afterwards.
  PostgreSQL  the primary key dropped, INSERT ... SELECT FROM generate_series per chunk,
              the key rebuilt by one sort, then VACUUM ANALYZE (the state a table reaches
              once autovacuum has passed).

Never: create the schema (the store's own open does, so the layout is the writer's), or
load through the writer: this is the preload behind the measurement, not the measurement.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator

import apsw
import table_keys

CHUNK_ROWS = 5_000_000
LOADER_CACHE_KIB = 4 * 1024 * 1024  # 4 GiB: the key index of 100M rows is ~3 GiB


def _pool_rows() -> list[tuple[int, str]]:
    return list(enumerate(table_keys.responses()))


def _pairs_rows() -> list[tuple[int, int, str]]:
    return [(i, port, service) for i, (port, service) in enumerate(table_keys.PORT_SERVICES)]


def sqlite_helpers(conn: apsw.Connection) -> None:
    """The temporary tables `table_keys.sqlite_select` reads: port/service pairs, responses."""
    conn.execute("CREATE TEMP TABLE pairs (i INTEGER PRIMARY KEY, port INTEGER, service TEXT)")
    conn.executemany("INSERT INTO temp.pairs VALUES (?, ?, ?)", _pairs_rows())
    conn.execute("CREATE TEMP TABLE pool (id INTEGER PRIMARY KEY, response TEXT)")
    conn.executemany("INSERT INTO temp.pool VALUES (?, ?)", _pool_rows())


def insert_sqlite_rows(conn: apsw.Connection, first: int, last: int) -> Iterator[int]:
    """Insert rows first..last-1 into `scans`, one transaction per chunk; yields the rows
    loaded after each. Needs `sqlite_helpers` on the same connection."""
    columns = "ip, port, service, last_scanned, response, data_version, first_seen"
    for low in range(first, last, CHUNK_ROWS):
        high = min(last, low + CHUNK_ROWS)
        conn.execute("BEGIN")
        conn.execute(
            "WITH RECURSIVE ks(k) AS (SELECT ? UNION ALL SELECT k + 1 FROM ks WHERE k + 1 < ?)"
            f" INSERT INTO main.scans ({columns}) SELECT {table_keys.sqlite_select('k')}"
            " FROM ks",
            (low, high),
        )
        conn.execute("COMMIT")
        yield high


def load_sqlite(path: str, first: int, last: int, say: Callable[[str], None]) -> float:
    """Add rows first..last-1 to the SQLite file at `path`; seconds taken."""
    from store.sqlite import schema

    started = time.perf_counter()
    conn = apsw.Connection(path)
    try:
        conn.pragma("journal_mode", "off")
        conn.pragma("synchronous", "off")
        conn.pragma("cache_size", -LOADER_CACHE_KIB)
        conn.pragma("temp_store", "memory")
        sqlite_helpers(conn)
        for high in insert_sqlite_rows(conn, first, last):
            say(f"  sqlite: loaded to {high:,} rows ({time.perf_counter() - started:.0f} s)")
        conn.execute("BEGIN")
        schema.recount_scans(conn)
        conn.execute("COMMIT")
        conn.pragma("journal_mode", "wal")
    finally:
        conn.close()
    return time.perf_counter() - started


def load_postgres(url: str, first: int, last: int, say: Callable[[str], None]) -> float:
    """Add rows first..last-1 to miniscan's tables at `url`; seconds taken."""
    import psycopg

    from store.postgres import schema

    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        _postgres_helpers(conn)
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute("SET max_parallel_maintenance_workers = 2")
        conn.execute("SET synchronous_commit = off")
        conn.execute("ALTER TABLE scans DROP CONSTRAINT scans_pkey")
        columns = "ip, port, service, last_scanned, response, data_version, first_seen"
        for low in range(first, last, CHUNK_ROWS):
            high = min(last, low + CHUNK_ROWS)
            # Integers inlined, no parameters: the key expressions use % as modulo.
            conn.execute(
                f"INSERT INTO scans ({columns}) SELECT {table_keys.postgres_select('k')}"
                f" FROM generate_series({low}::bigint, {high - 1}::bigint) AS k"
            )
            say(f"  postgres: loaded to {high:,} rows ({time.perf_counter() - started:.0f} s)")
        conn.execute("ALTER TABLE scans ADD PRIMARY KEY (ip, port, service)")
        say(f"  postgres: primary key rebuilt ({time.perf_counter() - started:.0f} s)")
        with conn.transaction():
            schema.recount_scans(conn)
        conn.execute("VACUUM ANALYZE scans")
        conn.execute("CHECKPOINT")
    return time.perf_counter() - started


def _postgres_helpers(conn) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS pairs (i integer PRIMARY KEY, port integer,"
                 " service text)")  # fmt: skip
    conn.execute("CREATE TABLE IF NOT EXISTS pool (id integer PRIMARY KEY, response bytea)")
    if conn.execute("SELECT count(*) FROM pairs").fetchone()[0] == 0:
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO pairs VALUES (%s, %s, %s)", _pairs_rows())
            cur.executemany("INSERT INTO pool VALUES (%s, %s)",
                            [(i, text.encode()) for i, text in _pool_rows()])  # fmt: skip


def update_rounds(
    url: str, rows: int, rounds: int, chunk: int, say: Callable[[str], None]
) -> float:
    """Update every one of the `rows` rows `rounds` times, in random key order, `chunk` rows a
    transaction (as writers' batches do), with autovacuum left to keep up; seconds taken.

    Each update changes last_scanned and the response only (no key column), so it may be a
    HOT update when the page has room: what fillfactor and autovacuum settings decide."""
    import psycopg

    step = 1_000_003
    while math.gcd(step, rows) != 1:
        step += 2
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        _postgres_helpers(conn)
        # One index probe a row, as the writers' upserts do: without these the planner hashes
        # the chunk and scans the whole table for every chunk (6k rows/s at 1M rows).
        conn.execute("SET enable_hashjoin = off")
        conn.execute("SET enable_mergejoin = off")
        for round_number in range(1, rounds + 1):
            for low in range(0, rows, chunk):
                high = min(rows, low + chunk)
                conn.execute(
                    "UPDATE scans SET last_scanned = scans.last_scanned + 86400,"
                    " response = (SELECT response FROM pool WHERE id = t.response_id)"
                    f" FROM (SELECT {table_keys.postgres_key('k')},"
                    f" {table_keys.postgres_response_id('k', str(round_number))} AS response_id"
                    f" FROM (SELECT (j * {step}) % {rows} AS k"
                    f" FROM generate_series({low}::bigint, {high - 1}::bigint) AS j) AS ks"
                    ") AS t(ip, port, service, response_id)"
                    " WHERE scans.ip = t.ip AND scans.port = t.port AND scans.service = t.service"
                )
            say(f"  postgres: update round {round_number} of {rounds} done"
                f" ({time.perf_counter() - started:.0f} s)")  # fmt: skip
    return time.perf_counter() - started
