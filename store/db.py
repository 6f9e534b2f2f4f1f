"""The single writer's handle on the database: open (create, migrate), write batches, close.

Owns: every connection setting of the writer (WAL, synchronous, busy timeout, cache), the
newest-wins upsert in SQL, and the guarantee that `write_batch` either commits a whole batch
durably or leaves nothing of it and raises a `StoreError` subclass. Also
`connect_existing`, the one way readers and admin commands open a file that must already exist.

Never: decide retry or ack policy (the writer process does), talk to Pub/Sub, or create or
migrate a database from a read or admin command.

Concurrency: exactly one `ScanStore` writes a file (the writer process); readers use WAL
snapshots, so they neither block it nor see part of a batch.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import apsw

from contracts.records import DeadLetter, ScanRecord
from store import schema
from store.closing import ClosedOnExit
from store.errors import (
    BatchDataError,
    DatabaseMissing,
    SchemaError,
    StoreError,
    StoreUnavailable,
    translate_error,
)
from store.merge import UpsertRow, reduce_rows

__all__ = [
    "BatchDataError",
    "DatabaseMissing",
    "ScanStore",
    "SchemaError",
    "StoreError",
    "StoreUnavailable",
    "WriteResult",
    "connect_existing",
]

SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")
# 64 MiB of page cache for the writer: random-key upserts touch index pages all over the
# file, and the default 2 MiB cache measured ~20% slower at 200k rows.
WRITER_CACHE_KIB = 65536
# Checkpoint the WAL every ~40 MiB instead of SQLite's ~4 MiB: a batch of random keys
# dirties hundreds of index pages, and checkpointing less often writes each hot page to the
# database file once instead of many times (measured +35% rows/s at 200k rows). The file is
# cut back to JOURNAL_LIMIT_BYTES after each checkpoint so that it does not stay large.
WAL_AUTOCHECKPOINT_PAGES = 10_000
JOURNAL_LIMIT_BYTES = 64 * 1024 * 1024

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
INSERT_DEAD_LETTER = """
INSERT OR IGNORE INTO dead_letters
    (payload, reason, detail, message_id, received_at, payload_sha256)
VALUES (?, ?, ?, ?, ?, ?)
"""


@dataclass(frozen=True)
class WriteResult:
    """What one committed batch did.

    scans: scan records in the batch (all of them are now reflected in the table);
    new_keys: keys that did not exist before this batch (the table grew by this much);
    dead_letters: dead letters newly stored (a message id already stored is not counted);
    changed_keys: rows inserted or changed (a stale record changes nothing).
    """

    scans: int
    new_keys: int
    dead_letters: int
    changed_keys: int = 0


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
        busy_timeout_ms: int = 5000,
    ) -> ScanStore:
        """Open (creating the folder and the file if missing) and bring the schema current.

        synchronous: FULL (default) makes every commit durable before `write_batch` returns,
        which is what allows acking the batch. NORMAL skips the fsync per commit: faster, but
        a power loss (not a process crash) may undo the last commits, whose messages were
        already acked and so are lost. Use it only for data that can be scanned again.
        Raises SchemaError (file refused, untouched) or StoreUnavailable.
        """
        path = os.fspath(path)
        mode = synchronous.upper()
        if mode not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {', '.join(SYNCHRONOUS_MODES)}")
        _refuse_foreign_file(path)
        try:
            os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o750, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailable(f"cannot create the folder of {path}: {exc.strerror}") from None
        _create_private_file(path)

        def prepare(conn: apsw.Connection) -> tuple[int | None, int]:
            version_before = schema.ensure_current(conn, path)
            apply_writer_settings(conn, mode)
            return version_before, conn.execute("SELECT count(*) FROM scans").get

        conn, (version_before, rows) = _connect(path, _CREATE, busy_timeout_ms, prepare)
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
                    schema.payload_digest(d.payload),
                )
                for d in dead_letters
            ]
        except (TypeError, AttributeError, IndexError) as exc:
            raise BatchDataError(f"batch holds a malformed record: {exc}") from None
        if not scan_rows and not letter_rows:
            return WriteResult(scans=0, new_keys=0, dead_letters=0)
        try:
            new_keys, changed, stored_letters = self._apply(scan_rows, letter_rows)
        except apsw.Error as exc:
            raise translate_error(exc, f"cannot write batch to {self.path}") from None
        except (TypeError, ValueError, OverflowError) as exc:
            # Raised by apsw while binding a value SQLite cannot hold (an int over 64 bits,
            # text with a lone surrogate, ...): the data's fault, not the store's.
            raise BatchDataError(f"batch holds a value SQLite cannot store: {exc}") from None
        self._rows += new_keys
        return WriteResult(len(records), new_keys, stored_letters, changed)

    def _apply(self, scan_rows: list[UpsertRow], letter_rows: list[tuple]) -> tuple[int, int, int]:
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
            # New rows always get a rowid above the previous maximum, so this counts the new
            # keys by reading only them, instead of a COUNT(*) over the whole table.
            new_keys = conn.execute(
                "SELECT count(*) FROM scans WHERE rowid > ?", (highest_rowid,)
            ).get
            before = conn.total_changes()
            if letter_rows:
                conn.executemany(INSERT_DEAD_LETTER, letter_rows)
            stored_letters = conn.total_changes() - before
            conn.execute("COMMIT")
        except BaseException:
            self._roll_back()
            raise
        return new_keys, changed, stored_letters

    def _roll_back(self) -> None:
        # SQLite may already have rolled back by itself (e.g. after SQLITE_FULL at commit).
        if self._conn.get_autocommit():
            return
        # The original error is the one to report; if ROLLBACK fails too, SQLite rolls the
        # unfinished transaction back from the WAL on the next open.
        with contextlib.suppress(apsw.Error):
            self._conn.execute("ROLLBACK")

    def row_count(self) -> int:
        """Rows in `scans`: counted once at open, then kept up to date by each batch."""
        return self._rows

    @property
    def synchronous(self) -> str:
        """The effective `PRAGMA synchronous` of this connection, by name."""
        return SYNCHRONOUS_MODES[self._conn.pragma("synchronous")]

    def close(self) -> None:
        self._conn.close()



def connect_existing(
    path: str | os.PathLike[str], *, writable: bool = False, busy_timeout_ms: int = 5000
) -> apsw.Connection:
    """Open a database that must exist and be current, for reading or small admin writes.

    Never creates or migrates. Raises DatabaseMissing, SchemaError or StoreUnavailable.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DatabaseMissing(f"no database at {path}")
    flags = apsw.SQLITE_OPEN_READWRITE if writable else apsw.SQLITE_OPEN_READONLY

    def prepare(conn: apsw.Connection) -> None:
        schema.require_current(conn, path)

    conn, _ = _connect(path, flags, busy_timeout_ms, prepare)
    return conn


Prepared = TypeVar("Prepared")
_CREATE = apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE  # apsw.Connection's default


def _connect(
    path: str, flags: int, busy_timeout_ms: int, prepare: Callable[[apsw.Connection], Prepared]
) -> tuple[apsw.Connection, Prepared]:
    """A connection with `prepare` applied to it, and what `prepare` returned.

    If any step fails the connection is closed again and the error is a StoreError, so that
    the writer and the readers classify a failed open the same way.
    """
    conn = None
    try:
        conn = apsw.Connection(path, flags=flags)
        conn.set_busy_timeout(busy_timeout_ms)
        return conn, prepare(conn)
    except (apsw.Error, StoreError) as exc:
        if conn is not None:
            conn.close()
        if isinstance(exc, StoreError):
            raise
        raise translate_error(exc, f"cannot open {path}") from None


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


# One small function per connection setting, applied together (apsw bestpractice).
def _create_private_file(path: str) -> None:
    """Create a missing database file readable by its owner and group only (0640 before the
    umask): scan results are not for every user of the machine. SQLite gives the -wal and
    -shm files the database file's permissions. An existing file keeps its own."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640))
    except FileExistsError:
        pass
    except OSError as exc:
        raise StoreUnavailable(f"cannot create {path}: {exc.strerror}") from None


def apply_writer_settings(conn: apsw.Connection, synchronous: str = "FULL") -> None:
    """Every setting of the writer's connection (the benchmark applies the same to raw apsw)."""
    _use_wal(conn)
    _set_synchronous(conn, synchronous)
    _set_cache(conn)
    _set_checkpointing(conn)


def _use_wal(conn: apsw.Connection) -> None:
    # WAL: readers never block the writer nor see a half-written batch.
    mode = conn.pragma("journal_mode", "wal")
    if mode != "wal":
        raise StoreUnavailable(f"cannot switch to WAL (journal_mode stays {mode})")


def _set_synchronous(conn: apsw.Connection, mode: str) -> None:
    conn.pragma("synchronous", mode)


def _set_cache(conn: apsw.Connection) -> None:
    conn.pragma("cache_size", -WRITER_CACHE_KIB)


def _set_checkpointing(conn: apsw.Connection) -> None:
    conn.wal_autocheckpoint(WAL_AUTOCHECKPOINT_PAGES)
    conn.pragma("journal_size_limit", JOURNAL_LIMIT_BYTES)
