"""The read API over a SQLite file: find scans, summarise the file; and the shapes every
reader returns, whichever the store.

Owns: the read-only SQL on SQLite's `scans` and the shapes readers get back (`ScanRow`,
`StoreStats`, `StoredDeadLetter`), which `store.postgres_query` returns too, so that the
commands print the same thing for both stores. Works while the supervisor writes:
connections are read-only, every answer comes from one WAL snapshot, so it holds whole
batches only and never blocks the writer. Commands reach this through `store.reader`.

Never: write, create or migrate a database (`store.db.connect_existing` refuses to), or
format output (the CLI does).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, astuple, dataclass, fields

import apsw

from store.db import connect_existing
from store.errors import translate_error


@dataclass(frozen=True, slots=True)
class ScanRow:
    """One row of `scans`, as stored."""

    ip: str
    port: int
    service: str
    last_scanned: int
    first_seen: int
    response: str
    data_version: int

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def as_tuple(self) -> tuple[object, ...]:
        return astuple(self)


SCAN_FIELDS = tuple(f.name for f in fields(ScanRow))
_SCAN_COLUMNS = ", ".join(SCAN_FIELDS)


@dataclass(frozen=True)
class StoreStats:
    """A summary of the database, read from one snapshot."""

    path: str  # a file path, or a PostgreSQL URL without its password
    file_bytes: int  # see size_of
    schema_version: int
    scan_rows: int
    distinct_ips: int
    oldest_scan: int | None
    newest_scan: int | None
    services: list[tuple[str, int]]  # most frequent first
    data_versions: list[tuple[int, int]]
    dead_letters: int
    dead_letters_by_reason: list[tuple[str, int]]  # most frequent first
    # What file_bytes measures: "file" (the SQLite file plus its WAL) or "tables"
    # (PostgreSQL's scans and dead_letters with their indexes and TOAST: a database has no
    # one file, and its other tables are not miniscan's).
    size_of: str = "file"

    def as_dict(self) -> dict[str, object]:
        summary = asdict(self)
        summary["services"] = dict(self.services)
        summary["data_versions"] = {str(v): n for v, n in self.data_versions}
        summary["dead_letters_by_reason"] = dict(self.dead_letters_by_reason)
        return summary


@dataclass(frozen=True, slots=True)
class StoredDeadLetter:
    """One row of `dead_letters`."""

    id: int
    payload: bytes
    reason: str
    detail: str
    message_id: str
    received_at: float


def find_scans_sql(
    columns: str,
    placeholder: str,
    ip: str | None,
    port: int | None,
    service: str | None,
    since: int | None,
    limit: int | None,
) -> tuple[str, list[object]]:
    """The SELECT behind `find_scans` and its parameters, for either store's placeholder
    style (`?` for SQLite, `%s` for psycopg): every given filter, key order."""
    clauses, params = [], []
    for column, value in (("ip", ip), ("port", port), ("service", service)):
        if value is not None:
            clauses.append(f"{column} = {placeholder}")
            params.append(value)
    if since is not None:
        clauses.append(f"last_scanned >= {placeholder}")
        params.append(since)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    sql = f"SELECT {columns} FROM scans{where} ORDER BY ip, port, service"
    if limit is not None:
        sql += f" LIMIT {placeholder}"
        params.append(limit)
    return sql, params


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


def read_stats(conn: apsw.Connection, top_services: int = 10) -> StoreStats:
    """Counts and ranges of the whole database, all from the same snapshot."""
    path = conn.filename
    try:
        with read_snapshot(conn):
            rows, ips, oldest, newest = conn.execute(
                "SELECT count(*), count(DISTINCT ip), min(last_scanned), max(last_scanned)"
                " FROM scans"
            ).fetchall()[0]
            services = conn.execute(
                "SELECT service, count(*) AS n FROM scans GROUP BY service"
                " ORDER BY n DESC, service LIMIT ?",
                (top_services,),
            ).fetchall()
            versions = conn.execute(
                "SELECT data_version, count(*) FROM scans GROUP BY data_version"
                " ORDER BY data_version"
            ).fetchall()
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
        scan_rows=rows,
        distinct_ips=ips,
        oldest_scan=oldest,
        newest_scan=newest,
        services=[tuple(row) for row in services],
        data_versions=[tuple(row) for row in versions],
        dead_letters=sum(n for _, n in by_reason),
        dead_letters_by_reason=[tuple(row) for row in by_reason],
    )


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
