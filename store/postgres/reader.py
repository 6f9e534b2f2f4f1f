"""The readers' handle on a PostgreSQL store: `PostgresReader`, the twin of `SqliteReader`.

Owns: the read SQL on PostgreSQL's `scans`, `scan_counts` and `dead_letters` (and the
delete of replayed dead letters), turning its rows into the shapes of `store.rows` exactly as
SQLite's reader does: the response decoded from its bytea
(`store.postgres.schema.decode_response`), reasons ordered by byte order like SQLite's BINARY
collation (keys are `COLLATE "C"` already), so that `miniscan query`, `stats` and
`dead-letters` print the same thing for the same data.

Never: create or migrate tables (`store.postgres.connection.connect_existing` refuses to),
write scans, talk to Pub/Sub, or format output. Messages name the store by
`store.postgres.connection.describe` (no password).

Consistency: every call runs in its own transaction (one call at a time: use up or drop a
`find_scans` iterator before the next call), read-only unless the reader was opened
`writable` (replay's delete), and ends it before returning, so that a reader holds no
snapshot while a person looks at its output. `read_stats` runs its queries in one
REPEATABLE READ transaction: one snapshot, like SQLite's WAL read transaction. Writers are
never blocked by a reader (MVCC).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence

import psycopg

from store.closing import ClosedOnExit
from store.connection_options import BUSY_TIMEOUT_MS
from store.filters import dead_letters_sql, find_scans_sql
from store.kept_counts import FullRead, read_kept_counts, scan_figures
from store.postgres import scan_counts, schema
from store.postgres.connection import connect_existing, describe, translate_error
from store.rows import SCAN_FIELDS, ScanRow, StoredDeadLetter, StoreStats

_SCAN_COLUMNS = ", ".join(SCAN_FIELDS)
_LETTER_COLUMNS = "id, payload, reason, detail, message_id, received_at"
_FETCH_ROWS = 2000  # rows per round trip of find_scans' server-side cursor
# A partitioned table has no storage of its own: its size is its partitions' (leaves of
# pg_partition_tree, which lists nothing for a plain table).
_TABLE_SIZES = """
SELECT pg_total_relation_size('scans') + pg_total_relation_size('dead_letters')
    + (SELECT coalesce(sum(pg_total_relation_size(relid)), 0) FROM pg_partition_tree('scans')
       WHERE isleaf)
"""
# Per partition of a partitioned scans: its distinct ips as ANALYZE estimated them, and the
# rows it had then; the partitions not analyzed yet are left out.
_PARTITIONS_DISTINCT_IPS = """
SELECT sum(CASE WHEN s.n_distinct < 0 THEN -s.n_distinct * c.reltuples ELSE s.n_distinct END),
       sum(c.reltuples)
FROM pg_partition_tree('scans') t JOIN pg_class c ON c.oid = t.relid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_stats s ON s.schemaname = n.nspname AND s.tablename = c.relname
    AND s.attname = 'ip' AND NOT s.inherited
WHERE t.isleaf AND c.reltuples > 0
"""


class PostgresReader(ClosedOnExit):
    """A connection to existing, current miniscan tables; read-only unless `writable`."""

    def __init__(self, conn: psycopg.Connection, where: str) -> None:
        self._conn = conn
        self.where = where

    @classmethod
    def open(
        cls, url: str, *, writable: bool = False, busy_timeout_ms: int = BUSY_TIMEOUT_MS
    ) -> PostgresReader:
        """Raises SchemaError (no miniscan tables, or not current), StoreUnavailable or
        StoreError; never creates anything. busy_timeout_ms bounds a wait for a row lock
        (`lock_timeout`), as SQLite's busy timeout does."""
        where = describe(url)
        conn = connect_existing(url, writable=writable)
        try:
            conn.execute("SELECT set_config('lock_timeout', %s, false)", (f"{busy_timeout_ms}ms",))
            conn.commit()
        except psycopg.Error as exc:
            conn.close()
            raise translate_error(exc, f"cannot open {where}") from None
        return cls(conn, where)

    def find_scans(
        self,
        *,
        ip: str | None = None,
        port: int | None = None,
        service: str | None = None,
        since: int | None = None,
        limit: int | None = None,
    ) -> Iterator[ScanRow]:
        """As `store.sqlite.reader.find_scans`: every filter given, key order, `since` inclusive."""
        sql, params = find_scans_sql(_SCAN_COLUMNS, "%s", ip, port, service, since, limit)
        # A server-side cursor: the whole table never sits in this process's memory.
        with (
            self._transaction("cannot read scans") as conn,
            conn.cursor(name="miniscan_find_scans") as cur,
        ):
            cur.itersize = _FETCH_ROWS
            cur.execute(sql, params)
            for ip_, port_, service_, last, first, response, version in cur:
                yield ScanRow(ip_, port_, service_, last, first,
                              schema.decode_response(response), version)  # fmt: skip

    def read_stats(self, top_services: int = 10, *, full: bool = False) -> StoreStats:
        """As `store.sqlite.reader.read_stats`, from one snapshot; sizes are the tables' own,
        and the IPs are estimated from `pg_stats` (ANALYZE, autovacuum) unless `full`."""
        with self._transaction(f"cannot read {self.where}", snapshot=True) as conn:
            kept = read_kept_counts(conn.execute(scan_counts.READ_BY_SERVICE).fetchall())
            every_row = self._read_every_row(conn) if full else None
            estimate = None if full else self._estimate_distinct_ips(conn, kept.rows)
            by_reason = self._count_by_reason(conn)
            size = conn.execute(_TABLE_SIZES).fetchone()[0]
            schema_version = schema.read_schema_version(conn, self.where)
        return StoreStats(
            path=self.where,
            file_bytes=int(size),
            schema_version=schema_version or 0,
            dead_letters=sum(n for _, n in by_reason),
            dead_letters_by_reason=by_reason,
            size_of="tables",
            **scan_figures(kept, top_services, every_row, estimate),
        )

    @staticmethod
    def _read_every_row(conn: psycopg.Connection) -> FullRead:
        ips, oldest, newest = conn.execute(
            "SELECT count(DISTINCT ip), min(last_scanned), max(last_scanned) FROM scans"
        ).fetchone()
        versions = conn.execute(
            "SELECT data_version, count(*) FROM scans GROUP BY data_version ORDER BY data_version"
        ).fetchall()
        return FullRead(ips, oldest, newest, [tuple(row) for row in versions])

    @staticmethod
    def _estimate_distinct_ips(conn: psycopg.Connection, rows: int) -> int | None:
        """The planner's estimate from the last ANALYZE: n_distinct is a count, or, when
        negative, minus the share of rows (which scales with the table). None before any.
        A partitioned scans has its own only after an ANALYZE by hand (autovacuum analyzes
        the partitions, never the parent); without it, the partitions' estimates are summed
        (an ip lives in one partition) and scaled from the rows they saw to `rows`."""
        found = conn.execute(
            "SELECT n_distinct FROM pg_stats WHERE schemaname = current_schema()"
            " AND tablename = 'scans' AND attname = 'ip'"
        ).fetchone()
        if found is not None and found[0] is not None:
            n_distinct = float(found[0])
            return round(-n_distinct * rows if n_distinct < 0 else min(n_distinct, rows))
        ips, analyzed_rows = conn.execute(_PARTITIONS_DISTINCT_IPS).fetchone()
        if ips is None or not analyzed_rows:
            return None
        return min(round(float(ips) * rows / float(analyzed_rows)), rows)

    def count_by_reason(self) -> list[tuple[str, int]]:
        """(reason, count) pairs, most frequent first."""
        with self._transaction("cannot read dead letters") as conn:
            return self._count_by_reason(conn)

    @staticmethod
    def _count_by_reason(conn: psycopg.Connection) -> list[tuple[str, int]]:
        # reason is plain text: byte order ties, as SQLite's BINARY, not the collation's.
        rows = conn.execute(
            "SELECT reason, count(*) AS n FROM dead_letters GROUP BY reason"
            ' ORDER BY n DESC, reason COLLATE "C"'
        ).fetchall()
        return [(reason, n) for reason, n in rows]

    def list_dead_letters(
        self,
        *,
        reason: str | None = None,
        ids: Iterable[int] = (),
        after_id: int = 0,
        limit: int | None = None,
    ) -> list[StoredDeadLetter]:
        """Dead letters in id order (oldest first), filtered by reason and/or ids."""
        sql, params = dead_letters_sql(
            _LETTER_COLUMNS, "%s", _match_ids, reason, ids, after_id, limit
        )
        with self._transaction("cannot read dead letters") as conn:
            return [
                StoredDeadLetter(letter_id, bytes(payload), *rest)
                for letter_id, payload, *rest in conn.execute(sql, params)
            ]

    def get_dead_letter(self, letter_id: int) -> StoredDeadLetter | None:
        found = self.list_dead_letters(ids=[letter_id])
        return found[0] if found else None

    def delete_dead_letters(self, ids: Sequence[int]) -> int:
        """Delete these rows in one short transaction; the number actually deleted."""
        if not ids:
            return 0
        with self._transaction("cannot delete replayed dead letters") as conn:
            return conn.execute(
                "DELETE FROM dead_letters WHERE id = ANY(%s::bigint[])", (list(ids),)
            ).rowcount

    @contextlib.contextmanager
    def _transaction(self, action: str, *, snapshot: bool = False) -> Iterator[psycopg.Connection]:
        """One transaction, committed at the end (rolled back on any error), its psycopg
        errors turned into StoreError classes; `snapshot`: REPEATABLE READ, one snapshot
        for every statement in it."""
        conn = self._conn
        isolation = psycopg.IsolationLevel.REPEATABLE_READ if snapshot else None
        if conn.isolation_level != isolation:  # settable only between transactions
            conn.isolation_level = isolation
        try:
            yield conn
            conn.commit()
        except BaseException as exc:
            # A broken connection cannot roll back; the server dropped the transaction.
            with contextlib.suppress(psycopg.Error):
                conn.rollback()
            if isinstance(exc, psycopg.Error):
                raise translate_error(exc, action) from None
            raise

    def close(self) -> None:
        self._conn.close()


def _match_ids(wanted: list[int]) -> tuple[str, list[object]]:
    # One array parameter, however many ids: the statement's text stays the same.
    return "id = ANY(%s::bigint[])", [wanted]
