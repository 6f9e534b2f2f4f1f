"""Connections to a SQLite store, and what apsw's errors mean to a caller.

Owns: opening a file with a busy timeout and a preparation step (`connect`: a failed open
closes the connection again and is always a StoreError), `connect_existing` for readers and
admin commands, every setting of the writer's connection (`apply_writer_settings`: WAL,
synchronous, cache, checkpointing) and `translate_error`, the one mapping from apsw
exceptions to the store.errors classes.

Never: create or migrate tables (store.sqlite.schema, called by the writer's open), write
data, log, or retry.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from typing import TypeVar

import apsw

from store.connection_options import BUSY_TIMEOUT_MS
from store.errors import (
    BatchDataError,
    DatabaseMissing,
    SchemaError,
    StoreError,
    StoreInaccessible,
    StoreUnavailable,
)
from store.sqlite import schema

# 64 MiB of page cache for the writer: random-key upserts touch index pages all over the
# file, and the default 2 MiB cache measured ~20% slower at 200k rows.
WRITER_CACHE_KIB = 65536
# Checkpoint the WAL every ~40 MiB instead of SQLite's ~4 MiB: a batch of random keys
# dirties hundreds of index pages, and checkpointing less often writes each hot page to the
# database file once instead of many times (measured +35% rows/s at 200k rows). The file is
# cut back to JOURNAL_LIMIT_BYTES after each checkpoint so that it does not stay large.
WAL_AUTOCHECKPOINT_PAGES = 10_000
JOURNAL_LIMIT_BYTES = 64 * 1024 * 1024


def connect_existing(
    path: str | os.PathLike[str], *, writable: bool = False, busy_timeout_ms: int = BUSY_TIMEOUT_MS
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

    conn, _ = connect(path, flags, busy_timeout_ms, prepare)
    return conn


Prepared = TypeVar("Prepared")
CREATE = apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE  # apsw.Connection's default


def connect(
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


# Which apsw exceptions mean "the storage is not usable right now" as opposed to "this data
# cannot be stored". Anything not listed (corruption, misuse, bugs) stays a plain StoreError.
_UNAVAILABLE = (
    apsw.BusyError,
    apsw.LockedError,
    apsw.FullError,
    apsw.IOError,
    apsw.ProtocolError,
    apsw.NoMemError,
    apsw.InterruptError,
)
# The file cannot be opened or written for a reason outside it (permissions, a read-only
# file system): at start-up a refusal, while running weather (store.errors.StoreInaccessible).
_INACCESSIBLE = (apsw.CantOpenError, apsw.ReadOnlyError, apsw.PermissionsError)
_BAD_DATA = (apsw.ConstraintError, apsw.TooBigError, apsw.MismatchError)


def translate_error(exc: apsw.Error, action: str) -> StoreError:
    """Classify an apsw exception; `action` says what failed ("cannot write batch to X")."""
    detail = _describe(exc)
    if isinstance(exc, apsw.BusyError | apsw.LockedError):
        return StoreUnavailable(f"{action}: database is locked by another connection ({detail})")
    if isinstance(exc, _INACCESSIBLE):
        return StoreInaccessible(f"{action}: {detail}")
    if isinstance(exc, _UNAVAILABLE):
        return StoreUnavailable(f"{action}: {detail}")
    if isinstance(exc, _BAD_DATA):
        return BatchDataError(f"{action}: {detail}")
    if isinstance(exc, apsw.NotADBError):
        return SchemaError(f"{action}: not an SQLite database ({detail})")
    if isinstance(exc, apsw.CorruptError):
        return StoreError(f"{action}: the database file is corrupt ({detail})")
    return StoreError(f"{action}: {detail}")


# What an OSError's errno says about creating the file or its folder: these are settings
# that waiting will not fix (EEXIST: a file where the folder should be); anything else (a
# full disk, an I/O error) is weather.
_ACCESS_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EISDIR, errno.EEXIST)


def translate_os_error(exc: OSError, action: str) -> StoreUnavailable:
    """Classify a failure to create the database's folder or file."""
    kind = StoreInaccessible if exc.errno in _ACCESS_ERRNOS else StoreUnavailable
    return kind(f"{action}: {exc.strerror}")


def _describe(exc: BaseException) -> str:
    # apsw messages read "FullError: database or disk is full"; keep only the readable half.
    text = str(exc).strip() or type(exc).__name__
    prefix = f"{type(exc).__name__}: "
    return text.removeprefix(prefix)


# One small function per connection setting, applied together (apsw bestpractice).
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
