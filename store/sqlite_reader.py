"""The readers' handle on a SQLite file: `SqliteReader`, and the SQL on its `dead_letters`.

Owns: `SqliteReader`, the `store.reader.StoreReader` of a SQLite file (scans and the summary
through `store.query`), and the SQL that reads and deletes SQLite's `dead_letters` rows.
`store.postgres_query` is its PostgreSQL twin; both return the shapes of `store.query`.

Never: create or migrate a database (`store.db.connect_existing` refuses to), talk to
Pub/Sub (replaying is `store.dead_letters`), or format output.

A writable reader (replay's delete) is a small write from a second process while the
supervisor's writer may be running: it relies on WAL and the busy timeout (each delete is
one short transaction), not on any lock of its own.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence

import apsw

from store import query
from store.closing import ClosedOnExit
from store.db import connect_existing
from store.errors import translate_error
from store.query import ScanRow, StoredDeadLetter, StoreStats

_COLUMNS = "id, payload, reason, detail, message_id, received_at"


class SqliteReader(ClosedOnExit):
    """A connection to an existing, current SQLite file; read-only unless `writable`."""

    def __init__(self, conn: apsw.Connection, where: str) -> None:
        self._conn = conn
        self.where = where

    @classmethod
    def open(
        cls, path: str | os.PathLike[str], *, writable: bool = False, busy_timeout_ms: int = 5000
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
        return query.find_scans(
            self._conn, ip=ip, port=port, service=service, since=since, limit=limit
        )

    def read_stats(self, top_services: int = 10) -> StoreStats:
        return query.read_stats(self._conn, top_services)

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
    clauses, params = ["id > ?"], [after_id]
    if reason is not None:
        clauses.append("reason = ?")
        params.append(reason)
    wanted = sorted(set(ids))
    if wanted:
        clauses.append(f"id IN ({', '.join('?' * len(wanted))})")
        params.extend(wanted)
    sql = f"SELECT {_COLUMNS} FROM dead_letters WHERE {' AND '.join(clauses)} ORDER BY id"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    try:
        return [StoredDeadLetter(*row) for row in conn.execute(sql, params)]
    except apsw.Error as exc:
        raise translate_error(exc, "cannot read dead letters") from None


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
