"""The writer's handle on a shared PostgreSQL store: open (create, migrate), write batches, close.

Owns: the writer's connection and its settings, running the statements of a batch (those
of `store.postgres.upsert` that fit a plain or a partitioned `scans`), the retry of a whole
batch on a deadlock or serialization failure, reconnecting after a lost connection, and the
guarantee that `write_batch` either commits a whole batch durably or leaves nothing of it.
The same contract as `store.sqlite.writer.ScanStore`; `store.backend` picks one of the two,
and tests/test_store_conformance.py holds both to it.

Never: decide the writer's retry or ack policy beyond the transient conflicts above (the
writer process retries `StoreUnavailable`), talk to Pub/Sub, or create tables from a reader.

Concurrency: unlike a SQLite file, any number of these stores (one per supervisor, on any
machine) may write one database at once. Every batch is ONE upsert statement that takes its
keys in (ip, port, service) byte order (two that each do on a partitioned `scans`, see
`store.postgres.upsert`), dead letters after the scans in their identity order, and last its
slot's rows of `scan_counts` in service order (two writers may draw one slot), so two
batches lock shared rows in the same order and cannot deadlock each other; READ COMMITTED
lets ON CONFLICT see the newest committed row, so newest-wins holds across writers. A
deadlock or serialization failure (another application's locks, a stricter default
isolation) rolls the batch back and retries it whole: the upsert is idempotent.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Sequence

import psycopg
from psycopg import errors as pg_errors

from contracts.records import DeadLetter, ScanRecord
from store.closing import ClosedOnExit
from store.connection_options import BUSY_TIMEOUT_MS, synchronous_mode
from store.errors import BatchDataError, StoreError, StoreUnavailable
from store.kept_counts import kept_count_rows
from store.merge import reduce_rows
from store.postgres import scan_counts, schema
from store.postgres.connection import connect, describe, translate_error
from store.postgres.partition import scans_partitioned
from store.postgres.upsert import (
    COPY_INCOMING,
    COPY_TYPES,
    INCOMING_DDL,
    INSERT_DEAD_LETTERS,
    UPSERTS,
)
from store.rows import WriteResult, payload_digest

log = logging.getLogger(__name__)

CONFLICT_RETRIES = 5  # whole-batch retries after a deadlock or serialization failure
CONFLICT_BACKOFF_S = 0.01  # the first retry waits up to this, doubling, with full jitter

_CONFLICTS = (pg_errors.DeadlockDetected, pg_errors.SerializationFailure)
_LEFT_OPEN = (psycopg.pq.TransactionStatus.INERROR, psycopg.pq.TransactionStatus.INTRANS)


# A batch's statement (or a commit waiting on a dead synchronous standby) gives up well
# before the supervisor's 30 s child timeout would kill the writer as stalled (issue 25);
# never below twice the lock wait, so a lock still ends as a lock timeout. Set after the
# migration at open, which may take longer.
STATEMENT_TIMEOUT_MS = 15_000


def statement_timeout_ms(busy_timeout_ms: int) -> int:
    return max(STATEMENT_TIMEOUT_MS, 2 * int(busy_timeout_ms))


class PostgresStore(ClosedOnExit):
    """One writer's connection to the shared database. Not thread-safe: one owner thread."""

    def __init__(self, url: str, mode: str, settings: dict[str, str], conn: psycopg.Connection,
                 rows: int, migrated_from: int | None, partitioned: bool):  # fmt: skip
        self._url = url
        self._mode = mode
        self._settings = settings
        self._conn: psycopg.Connection | None = conn
        self._closed = False
        # The shared count as of this store's last commit (other writers' keys included).
        self._rows = rows
        self._count_slot = random.randrange(scan_counts.COUNT_SLOTS)
        self._partitioned = partitioned  # picks the batch's statements (store.postgres.upsert)
        self.path = describe(url)
        self.migrated_from = migrated_from

    @classmethod
    def open(
        cls, url: str, *, synchronous: str = "FULL", busy_timeout_ms: int = BUSY_TIMEOUT_MS
    ) -> PostgresStore:
        """Connect, create or migrate the tables, and get ready to write.

        synchronous: FULL or EXTRA keep `synchronous_commit` on (a batch is durable before
        `write_batch` returns, which allows acking it); NORMAL or OFF turn it off (faster; a
        server crash may undo the last commits, never corrupt). busy_timeout_ms bounds the
        wait for another session's lock (`lock_timeout`), as SQLite's busy timeout does.
        Raises SchemaError (tables refused, untouched), StoreUnavailable or StoreError.
        """
        mode = synchronous_mode(synchronous)
        settings = {
            "synchronous_commit": "on" if mode in ("FULL", "EXTRA") else "off",
            "lock_timeout": f"{int(busy_timeout_ms)}ms",
            "statement_timeout": f"{statement_timeout_ms(busy_timeout_ms)}ms",
        }
        where = describe(url)
        conn = connect(url, where)
        try:
            version_before = schema.ensure_current(conn, where)
            partitioned = _prepare_writer(conn, settings)
            rows = conn.execute(scan_counts.READ_ROW_COUNT).fetchone()[0]
            conn.commit()
        except BaseException as exc:
            conn.close()
            if isinstance(exc, psycopg.Error):
                raise translate_error(exc, f"cannot open {where}") from None
            raise
        migrated_from = None if version_before in (None, schema.CURRENT_VERSION) else version_before
        return cls(url, mode, settings, conn, rows, migrated_from, partitioned)

    def write_batch(
        self, records: Sequence[ScanRecord], dead_letters: Sequence[DeadLetter] = ()
    ) -> WriteResult:
        """Apply a batch in one transaction; return only once the commit is durable.

        Same-key records are reduced in memory first (store.merge). On any failure the
        transaction is rolled back and a StoreUnavailable / BatchDataError / StoreError is
        raised: nothing of the batch is visible.
        """
        scan_rows, letter_columns = _bind_batch(records, dead_letters)
        if not scan_rows and not letter_columns:
            return WriteResult(scans=0, new_keys=0, dead_letters=0)
        action = f"cannot write batch to {self.path}"
        for attempt in range(CONFLICT_RETRIES + 1):
            try:
                new_keys, changed, stored, rows = self._apply(scan_rows, letter_columns)
                break
            except _CONFLICTS as exc:
                if attempt == CONFLICT_RETRIES:
                    raise self._failed(exc, action) from None
                log.warning("batch hit %s: retrying it whole", type(exc).__name__)
                # Full jitter: two writers that collided do not collide again in lockstep.
                time.sleep(random.uniform(0, CONFLICT_BACKOFF_S * 2**attempt))
            except psycopg.Error as exc:
                raise self._failed(exc, action) from None
            except (TypeError, ValueError, OverflowError) as exc:
                # Raised by psycopg while dumping a value it cannot send (an int over 64 bits
                # for a bigint, a str for an int): the data's fault, not the store's.
                raise BatchDataError(f"{action}: a value PostgreSQL cannot store: {exc}") from None
        self._rows = rows
        return WriteResult(len(records), new_keys, stored, changed)

    def _failed(self, exc: psycopg.Error, action: str) -> StoreError:
        # Weather drops the connection, so that the retry reconnects: a rollback can succeed
        # on a read-only or standby session (25006 after a failover), and reusing it would
        # make an outage that never ends (issue 25).
        error = translate_error(exc, action)
        if isinstance(error, StoreUnavailable) and self._conn is not None:
            self._conn.close()
            self._conn = None
        return error

    def _apply(
        self, scan_rows: list[tuple], letter_columns: list[list] | None
    ) -> tuple[int, int, int, int]:
        try:
            return self._apply_once(scan_rows, letter_columns)
        except pg_errors.FeatureNotSupported:
            # Partitioned under this writer (0A000 on xmax): a new session looks again, once.
            if self._partitioned or self._conn is None:
                raise
            self._conn.close()
            return self._apply_once(scan_rows, letter_columns)

    def _apply_once(
        self, scan_rows: list[tuple], letter_columns: list[list] | None
    ) -> tuple[int, int, int, int]:
        conn = self._connection()
        new_keys = changed = stored = 0
        new_by_service: dict[str, int] = {}
        try:
            with conn.cursor() as cur:
                if scan_rows:
                    with cur.copy(COPY_INCOMING) as copy:
                        copy.set_types(COPY_TYPES)
                        for row in scan_rows:
                            copy.write_row(row)
                    for statement in UPSERTS[self._partitioned]:
                        for service, inserted, service_changed in cur.execute(statement):
                            new_by_service[service] = new_by_service.get(service, 0) + inserted
                            new_keys, changed = new_keys + inserted, changed + service_changed
                if letter_columns:
                    cur.execute(INSERT_DEAD_LETTERS, letter_columns)
                    stored = cur.rowcount
                if scan_rows:
                    # The counts are kept, never counted (issue 26): this writer's slot gets
                    # its new keys and newest scan per service (store.postgres.scan_counts).
                    kept = kept_count_rows(scan_rows, new_by_service)
                    services, new, newest = (list(c) for c in zip(*kept, strict=True))
                    cur.execute(scan_counts.KEEP_COUNTS, (self._count_slot, services, new, newest))
                rows = cur.execute(scan_counts.READ_ROW_COUNT).fetchone()[0]
            conn.commit()
        except BaseException:
            # A broken connection cannot roll back; the server has already dropped its
            # transaction, and the next batch reconnects.
            with contextlib.suppress(psycopg.Error):
                conn.rollback()
            raise
        return new_keys, changed, stored, rows

    def _connection(self) -> psycopg.Connection:
        """The open connection, or a new one when the server dropped the last (a restart,
        a failover, a network cut): the writer's retry of StoreUnavailable then heals."""
        if self._closed:
            raise StoreError(f"the store of {self.path} is closed")
        if self._conn is not None and self._conn.info.transaction_status in _LEFT_OPEN:
            # Never reuse a connection left in a transaction, least of all a failed one (every
            # statement would be refused with 25P02): roll it back, or drop it if that fails.
            try:
                self._conn.rollback()
            except psycopg.Error:
                self._conn.close()
        if self._conn is None or self._conn.closed or self._conn.broken:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            conn = connect(self._url, self.path)
            try:
                schema.require_current(conn, self.path)
                partitioned = _prepare_writer(conn, self._settings)
                conn.commit()
            except BaseException:
                conn.close()
                raise
            self._conn, self._partitioned = conn, partitioned
        return self._conn

    def ping(self) -> None:
        """`SELECT 1` on the writer's connection (reconnecting if it was dropped)."""
        try:
            conn = self._connection()
            conn.execute("SELECT 1")
            conn.commit()
        except psycopg.Error as exc:
            raise self._failed(exc, f"cannot reach {self.path}") from None

    def row_count(self) -> int:
        """Rows in `scans` (every writer's), as scan_counts said at this store's last commit.
        Never touches the database: the figure comes with each batch (issue 26)."""
        return self._rows

    @property
    def synchronous(self) -> str:
        """The mode opened with; FULL and EXTRA keep synchronous_commit on, NORMAL and OFF
        turn it off (PostgreSQL has no level in between)."""
        return self._mode

    def close(self) -> None:
        self._closed = True
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _bind_batch(
    records: Sequence[ScanRecord], dead_letters: Sequence[DeadLetter]
) -> tuple[list[tuple], list[list] | None]:
    """Scan rows with the response as UTF-8 bytes, and dead letters as six column lists
    (None when there are none)."""
    try:
        scan_rows = [
            (ip, port, service, ts, response.encode("utf-8"), version, first_seen)
            for ip, port, service, ts, response, version, first_seen in reduce_rows(records)
        ]
        letters = [
            (d.payload, d.reason, d.detail, d.message_id, d.received_at,
             payload_digest(d.payload))
            for d in dead_letters
        ]  # fmt: skip
    except (TypeError, AttributeError) as exc:
        raise BatchDataError(f"batch holds a malformed record: {exc}") from None
    except UnicodeEncodeError as exc:  # a lone surrogate: no UTF-8 for it, as on SQLite
        raise BatchDataError(f"batch holds text that is not valid Unicode: {exc}") from None
    return scan_rows, [list(column) for column in zip(*letters, strict=True)] if letters else None


# One small function per connection setting, applied together (apsw bestpractice).
def _prepare_writer(conn: psycopg.Connection, settings: dict[str, str]) -> bool:
    """Every setting of the writer's session, its staging table; whether scans is partitioned."""
    for name, value in settings.items():
        _set(conn, name, value)
    conn.execute(INCOMING_DDL)
    return scans_partitioned(conn)


def _set(conn: psycopg.Connection, name: str, value: str) -> None:
    # set_config(..., false): for the session, not only this transaction.
    conn.execute("SELECT set_config(%s, %s, false)", (name, value))
