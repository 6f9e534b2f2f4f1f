"""The readers' handle on a SQLite file: `SqliteReader`, with SQLite's read SQL.

Owns: `SqliteReader`, the `store.reader.StoreReader` of a SQLite file, and the SQL behind it:
finding scans, the summary of the file (from the kept counts of `store.sqlite.scan_counts`
unless asked to read every row), and reading and deleting `dead_letters` rows. The
functions take an apsw connection, for tests and benchmarks that hold one
(`open_reader`). `store.postgres.reader` is its PostgreSQL twin; both return the shapes of
`store.rows`. Works while the supervisor writes: connections are read-only, every answer
comes from one WAL snapshot, so it holds whole batches only and never blocks the writer.

Never: create or migrate a database (`store.sqlite.connection.connect_existing` refuses
to), talk to Pub/Sub (replaying is `store.dead_letters`), or format output.

A writable reader (replay's delete) is a small write from a second process while the
supervisor's writer may be running: it relies on WAL and the busy timeout (each delete is
one short transaction), not on any lock of its own.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

import apsw

from store.closing import ClosedOnExit
from store.connection_options import BUSY_TIMEOUT_MS
from store.filters import dead_letters_sql, find_scans_sql
from store.kept_counts import FullRead, read_kept_counts, scan_figures
from store.rows import SCAN_FIELDS, ScanRow, StoredDeadLetter, StoreStats
from store.sqlite import scan_counts
from store.sqlite.connection import connect_existing, translate_error

_SCAN_COLUMNS = ", ".join(SCAN_FIELDS)
_LETTER_COLUMNS = "id, payload, reason, detail, message_id, received_at"


class SqliteReader(ClosedOnExit):
    """A connection to an existing, current SQLite file; read-only unless `writable`."""

    def __init__(self, conn: apsw.Connection, where: str) -> None:
        self._conn = conn
        self.where = where

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        writable: bool = False,
        busy_timeout_ms: int = BUSY_TIMEOUT_MS,
    ) -> SqliteReader:
        """Raises DatabaseMissing, SchemaError or StoreUnavailable; never creates a file."""
        conn = connect_existing(path, writable=writable, busy_timeout_ms=busy_timeout_ms)
        return cls(conn, os.fspath(path))

    def find_scans(
        self,
        *,
        ip: str | None = None,
        port: int | None = None,
        service: str | None = None,
        since: int | None = None,
        limit: int | None = None,
    ) -> Iterator[ScanRow]:
        return find_scans(self._conn, ip=ip, port=port, service=service, since=since, limit=limit)

    def read_stats(self, top_services: int = 10, *, full: bool = False) -> StoreStats:
        return read_stats(self._conn, top_services, full=full)

    def count_by_reason(self) -> list[tuple[str, int]]:
        return count_by_reason(self._conn)

    def list_dead_letters(
        self,
        *,
        reason: str | None = None,
        ids: Iterable[int] = (),
        after_id: int = 0,
        limit: int | None = None,
    ) -> list[StoredDeadLetter]:
        return list_dead_letters(self._conn, reason=reason, ids=ids, after_id=after_id,
                                 limit=limit)  # fmt: skip

    def get_dead_letter(self, letter_id: int) -> StoredDeadLetter | None:
        return get_dead_letter(self._conn, letter_id)

    def delete_dead_letters(self, ids: Sequence[int]) -> int:
        return delete_dead_letters(self._conn, ids)

    def close(self) -> None:
        self._conn.close()


def count_by_reason(conn: apsw.Connection) -> list[tuple[str, int]]:
    """(reason, count) pairs, most frequent first."""
    try:
        rows = conn.execute(
            "SELECT reason, count(*) AS n FROM dead_letters GROUP BY reason ORDER BY n DESC, reason"
        ).fetchall()
    except apsw.Error as exc:
        raise translate_error(exc, "cannot read dead letters") from None
    return [(reason, n) for reason, n in rows]


def list_dead_letters(
    conn: apsw.Connection,
    *,
    reason: str | None = None,
    ids: Iterable[int] = (),
    after_id: int = 0,
    limit: int | None = None,
) -> list[StoredDeadLetter]:
    """Dead letters in id order (oldest first), filtered by reason and/or ids."""
    sql, params = dead_letters_sql(_LETTER_COLUMNS, "?", _match_ids, reason, ids, after_id, limit)
    try:
        return [StoredDeadLetter(*row) for row in conn.execute(sql, params)]
    except apsw.Error as exc:
        raise translate_error(exc, "cannot read dead letters") from None


def _match_ids(wanted: list[int]) -> tuple[str, list[object]]:
    return f"id IN ({', '.join('?' * len(wanted))})", list(wanted)


def get_dead_letter(conn: apsw.Connection, letter_id: int) -> StoredDeadLetter | None:
    found = list_dead_letters(conn, ids=[letter_id])
    return found[0] if found else None


def delete_dead_letters(conn: apsw.Connection, ids: Sequence[int]) -> int:
    """Delete these rows in one short transaction; the number actually deleted."""
    if not ids:
        return 0
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            before = conn.total_changes()
            conn.executemany("DELETE FROM dead_letters WHERE id = ?", [(i,) for i in ids])
            deleted = conn.total_changes() - before
            conn.execute("COMMIT")
        except BaseException:
            if not conn.get_autocommit():
                conn.execute("ROLLBACK")
            raise
    except apsw.Error as exc:
        raise translate_error(exc, "cannot delete replayed dead letters") from None
    return deleted


def open_reader(path: str | os.PathLike[str]) -> apsw.Connection:
    """A read-only connection to an existing, current SQLite file (never creates one).
    Commands use `store.reader.open_store_reader`, which takes a PostgreSQL URL too."""
    return connect_existing(path, writable=False)


def find_scans(
    conn: apsw.Connection,
    *,
    ip: str | None = None,
    port: int | None = None,
    service: str | None = None,
    since: int | None = None,
    limit: int | None = None,
) -> Iterator[ScanRow]:
    """Rows matching every given filter, in key order; `since` keeps last_scanned >= since.

    Values are matched exactly as stored (canonical IP text, upper-case service).
    """
    sql, params = find_scans_sql(_SCAN_COLUMNS, "?", ip, port, service, since, limit)
    try:
        for row in conn.execute(sql, params):
            yield ScanRow(*row)
    except apsw.Error as exc:
        raise translate_error(exc, "cannot read scans") from None


def read_stats(conn: apsw.Connection, top_services: int = 10, *, full: bool = False) -> StoreStats:
    """A summary of the whole database, all from the same snapshot. Rows, services and the
    newest scan come from the kept counts (schema version 4); distinct IPs, the oldest scan
    and data versions only with `full`, which reads every row (minutes on 100M rows), else
    the IPs are estimated from `sqlite_stat1` where ANALYZE left one."""
    path = conn.filename
    try:
        with read_snapshot(conn):
            kept = read_kept_counts(conn.execute(scan_counts.READ_BY_SERVICE).fetchall())
            every_row = _read_every_row(conn) if full else None
            estimate = None if full else _estimate_distinct_ips(conn, kept.rows)
            by_reason = conn.execute(
                "SELECT reason, count(*) AS n FROM dead_letters GROUP BY reason"
                " ORDER BY n DESC, reason"
            ).fetchall()
            schema_version = conn.pragma("user_version")
    except apsw.Error as exc:
        raise translate_error(exc, f"cannot read {path}") from None
    return StoreStats(
        path=path,
        file_bytes=_size(path) + _size(path + "-wal"),
        schema_version=schema_version,
        dead_letters=sum(n for _, n in by_reason),
        dead_letters_by_reason=[tuple(row) for row in by_reason],
        **scan_figures(kept, top_services, every_row, estimate),
    )


def _read_every_row(conn: apsw.Connection) -> FullRead:
    ips, oldest, newest = conn.execute(
        "SELECT count(DISTINCT ip), min(last_scanned), max(last_scanned) FROM scans"
    ).fetchall()[0]
    versions = conn.execute(
        "SELECT data_version, count(*) FROM scans GROUP BY data_version ORDER BY data_version"
    ).fetchall()
    return FullRead(ips, oldest, newest, [tuple(row) for row in versions])


def _estimate_distinct_ips(conn: apsw.Connection, rows: int) -> int | None:
    """The query planner's estimate, from the statistics ANALYZE (or PRAGMA optimize) left
    on the primary key: its second figure is the average rows per IP. None without them."""
    if not conn.execute("SELECT 1 FROM sqlite_schema WHERE name = 'sqlite_stat1'").fetchall():
        return None
    found = conn.execute(
        "SELECT stat FROM sqlite_stat1 WHERE tbl = 'scans' AND idx = 'sqlite_autoindex_scans_1'"
    ).fetchall()
    try:
        per_ip = int(str(found[0][0]).split()[1])
    except (IndexError, ValueError):
        return None
    return round(rows / per_ip) if per_ip > 0 else None


@contextmanager
def read_snapshot(conn: apsw.Connection) -> Iterator[None]:
    """Several SELECTs that see one committed state (a WAL read transaction)."""
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.execute("COMMIT")


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
