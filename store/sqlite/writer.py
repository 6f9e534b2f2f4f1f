"""The single writer's handle on a SQLite file: open (create, migrate), write batches, close.

Owns: `ScanStore`, the newest-wins upsert in SQLite's SQL, and the guarantee that
`write_batch` either commits a whole batch durably or leaves nothing of it and raises a
`StoreError` subclass; the checks a file passes before it is opened to write (a foreign
file is refused untouched, a new one is created private). The connection's settings live in
`store.sqlite.connection`, the layout in `store.sqlite.schema`.

Never: decide retry or ack policy (the writer process does), talk to Pub/Sub, or create or
migrate a database from a read or admin command.

Concurrency: exactly one `ScanStore` writes a file (the writer process, under
`store.writer_lock`); readers use WAL snapshots, so they neither block it nor see part of a
batch.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence

import apsw

from contracts.records import DeadLetter, ScanRecord
from store.closing import ClosedOnExit
from store.connection_options import BUSY_TIMEOUT_MS, SYNCHRONOUS_MODES, synchronous_mode
from store.errors import BatchDataError
from store.kept_counts import kept_count_rows
from store.merge import UpsertRow, reduce_rows
from store.rows import WriteResult, payload_digest
from store.sqlite import scan_counts, schema
from store.sqlite.connection import (
    CREATE,
    apply_writer_settings,
    connect,
    translate_error,
    translate_os_error,
)

# The newest-wins rule of store.merge, in SQL. `newer` compares (timestamp, response,
# data_version) as a row value, which is lexicographic with BINARY collation for the text,
# exactly like Python's tuple comparison. The WHERE clause skips rows that would not
# change, so total_changes() counts only real changes. Keep the statement small: its cost
# per row grows with its size even where the DO UPDATE part never runs (measured: each
# extra row-value comparison ~4% of the upsert), hence max() where it is equivalent.
_NEWER = (
    "(excluded.last_scanned, excluded.response, excluded.data_version)"
    " > (scans.last_scanned, scans.response, scans.data_version)"
)
UPSERT_SCAN = f"""
INSERT INTO scans (ip, port, service, last_scanned, response, data_version, first_seen)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (ip, port, service) DO UPDATE SET
    last_scanned = max(scans.last_scanned, excluded.last_scanned),
    response     = CASE WHEN {_NEWER} THEN excluded.response ELSE scans.response END,
    data_version = CASE WHEN {_NEWER} THEN excluded.data_version ELSE scans.data_version END,
    first_seen   = min(scans.first_seen, excluded.first_seen)
WHERE {_NEWER} OR excluded.first_seen < scans.first_seen
"""
# An explicit conflict target: only a true duplicate (a redelivery) is skipped. INSERT OR
# IGNORE would also skip a row that breaks a CHECK or NOT NULL rule, without an error, and
# the writer would then ack a dead letter that was never stored (issue 25).
INSERT_DEAD_LETTER = """
INSERT INTO dead_letters
    (payload, reason, detail, message_id, received_at, payload_sha256)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (message_id, payload_sha256) WHERE message_id <> '' DO NOTHING
"""


class ScanStore(ClosedOnExit):
    """The writer's connection. Not thread-safe: one owner thread, one process per file."""

    def __init__(self, conn: apsw.Connection, path: str, rows: int, migrated_from: int | None):
        self._conn = conn
        self._rows = rows
        self.path = path
        # None: created now or already current; else the version this open migrated from.
        self.migrated_from = migrated_from

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "FULL",
        busy_timeout_ms: int = BUSY_TIMEOUT_MS,
    ) -> ScanStore:
        """Open (creating the folder and the file if missing) and bring the schema current.

        synchronous: FULL (default) makes every commit durable before `write_batch` returns,
        which is what allows acking the batch. NORMAL skips the fsync per commit: faster, but
        a power loss (not a process crash) may undo the last commits, whose messages were
        already acked and so are lost. Use it only for data that can be scanned again.
        Raises SchemaError (file refused, untouched) or StoreUnavailable.
        """
        path = os.fspath(path)
        mode = synchronous_mode(synchronous)
        _refuse_foreign_file(path)
        try:
            os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o750, exist_ok=True)
        except OSError as exc:
            raise translate_os_error(exc, f"cannot create the folder of {path}") from None
        _create_private_file(path)

        def prepare(conn: apsw.Connection) -> tuple[int | None, int]:
            version_before = schema.ensure_current(conn, path)
            apply_writer_settings(conn, mode)
            return version_before, conn.execute(scan_counts.READ_ROW_COUNT).get

        conn, (version_before, rows) = connect(path, CREATE, busy_timeout_ms, prepare)
        migrated = None if version_before in (None, schema.CURRENT_VERSION) else version_before
        return cls(conn, path, rows, migrated)

    def write_batch(
        self, records: Sequence[ScanRecord], dead_letters: Sequence[DeadLetter] = ()
    ) -> WriteResult:
        """Apply a batch in one transaction; return only once the commit is durable.

        Same-key records are reduced in memory first (store.merge). On any failure the
        transaction is rolled back and a StoreUnavailable / BatchDataError / StoreError is
        raised: nothing of the batch is visible.
        """
        try:
            scan_rows = reduce_rows(records)
            letter_rows = [
                (
                    d.payload,
                    d.reason,
                    d.detail,
                    d.message_id,
                    d.received_at,
                    payload_digest(d.payload),
                )
                for d in dead_letters
            ]
        except (TypeError, AttributeError, IndexError) as exc:
            raise BatchDataError(f"batch holds a malformed record: {exc}") from None
        if not scan_rows and not letter_rows:
            return WriteResult(scans=0, new_keys=0, dead_letters=0)
        try:
            new_keys, changed, stored_letters, kept = self._apply(scan_rows, letter_rows)
        except apsw.Error as exc:
            raise translate_error(exc, f"cannot write batch to {self.path}") from None
        except (TypeError, ValueError, OverflowError) as exc:
            # Raised by apsw while binding a value SQLite cannot hold (an int over 64 bits,
            # text with a lone surrogate, ...): the data's fault, not the store's.
            raise BatchDataError(f"batch holds a value SQLite cannot store: {exc}") from None
        self._rows = kept
        return WriteResult(len(records), new_keys, stored_letters, changed)

    def _apply(
        self, scan_rows: list[UpsertRow], letter_rows: list[tuple]
    ) -> tuple[int, int, int, int]:
        conn = self._conn
        # IMMEDIATE takes the write lock first (waiting up to the busy timeout), so the read
        # of max(rowid) below and the writes belong to one snapshot.
        conn.execute("BEGIN IMMEDIATE")
        try:
            highest_rowid = conn.execute("SELECT coalesce(max(rowid), 0) FROM scans").get
            before = conn.total_changes()
            if scan_rows:
                conn.executemany(UPSERT_SCAN, scan_rows)
            changed = conn.total_changes() - before
            # The counts are kept, never counted (issue 26): the new keys per service are
            # read from the new rows alone (store.sqlite.scan_counts).
            new_by_service = dict(
                conn.execute(scan_counts.NEW_KEYS_BY_SERVICE, (highest_rowid,)).fetchall()
            )
            new_keys = sum(new_by_service.values())
            if scan_rows:
                conn.executemany(
                    scan_counts.KEEP_COUNTS, kept_count_rows(scan_rows, new_by_service)
                )
            # Read back, not added up: rows deleted by hand (scan_counts' trigger subtracts
            # them) would otherwise leave the rows gauge drifting for good (issue 26).
            kept = conn.execute(scan_counts.READ_ROW_COUNT).get
            before = conn.total_changes()
            if letter_rows:
                conn.executemany(INSERT_DEAD_LETTER, letter_rows)
            stored_letters = conn.total_changes() - before
            conn.execute("COMMIT")
        except BaseException:
            self._roll_back()
            raise
        return new_keys, changed, stored_letters, kept

    def _roll_back(self) -> None:
        # SQLite may already have rolled back by itself (e.g. after SQLITE_FULL at commit).
        if self._conn.get_autocommit():
            return
        # The original error is the one to report; if ROLLBACK fails too, SQLite rolls the
        # unfinished transaction back from the WAL on the next open.
        with contextlib.suppress(apsw.Error):
            self._conn.execute("ROLLBACK")

    def ping(self) -> None:
        """A one-row read: the file is still there and readable."""
        try:
            self._conn.execute("SELECT 1 FROM scan_counts LIMIT 1").fetchall()
        except apsw.Error as exc:
            raise translate_error(exc, f"cannot read {self.path}") from None

    def row_count(self) -> int:
        """Rows in `scans`: read from scan_counts at open, then kept up to date by each batch
        (which adds its new keys per service there in its own transaction)."""
        return self._rows

    @property
    def synchronous(self) -> str:
        """The effective `PRAGMA synchronous` of this connection, by name."""
        return SYNCHRONOUS_MODES[self._conn.pragma("synchronous")]

    def close(self) -> None:
        self._conn.close()


def _refuse_foreign_file(path: str) -> None:
    """Look at an existing file through a read-only connection before opening it to write.

    Read-only so that refusing a file cannot change a byte of it (a read-write close would
    even checkpoint a foreign WAL into it).
    """
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return
    conn = None
    try:
        conn = apsw.Connection(path, flags=apsw.SQLITE_OPEN_READONLY)
        schema.read_schema_version(conn, path)
    except apsw.Error as exc:
        raise translate_error(exc, f"cannot open {path}") from None
    finally:
        if conn is not None:
            conn.close()


def _create_private_file(path: str) -> None:
    """Create a missing database file readable by its owner and group only (0640 before the
    umask): scan results are not for every user of the machine. SQLite gives the -wal and
    -shm files the database file's permissions. An existing file keeps its own."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640))
    except FileExistsError:
        pass
    except OSError as exc:
        raise translate_os_error(exc, f"cannot create {path}") from None
