"""The store's exceptions: what a caller may catch, and what each one asks it to do.

Owns: the `StoreError` family and `translate_error`, the one mapping from apsw (SQLite)
exceptions to these classes, so that the writer, the readers and the CLI classify failures
the same way.

Never: log, retry or decide policy; callers do (the writer retries `StoreUnavailable`,
bisects on `BatchDataError`; the CLI prints the one-line message and exits 1).
"""

from __future__ import annotations

import apsw


class StoreError(Exception):
    """Base class: the message is a clear one-line explanation."""


class SchemaError(StoreError):
    """The file is not a miniscan database, or is newer or older than this code accepts.

    Raised before anything is written: the file is left exactly as it was.
    """


class DatabaseMissing(StoreError):
    """A read or admin command was pointed at a path with no database (none is created)."""


class StoreUnavailable(StoreError):
    """The database cannot be written right now (disk full, I/O error, locked): retry later."""


class BatchDataError(StoreError):
    """The batch's own data was refused (constraint, too big, wrong type).

    Caller's move: split the batch to isolate the record(s) at fault.
    """


# Which apsw exceptions mean "the storage is not usable right now" as opposed to "this data
# cannot be stored". Anything not listed (corruption, misuse, bugs) stays a plain StoreError.
_UNAVAILABLE = (
    apsw.BusyError,
    apsw.LockedError,
    apsw.FullError,
    apsw.IOError,
    apsw.CantOpenError,
    apsw.ReadOnlyError,
    apsw.PermissionsError,
    apsw.ProtocolError,
    apsw.NoMemError,
    apsw.InterruptError,
)
_BAD_DATA = (apsw.ConstraintError, apsw.TooBigError, apsw.MismatchError)


def translate_error(exc: apsw.Error, action: str) -> StoreError:
    """Classify an apsw exception; `action` says what failed ("cannot write batch to X")."""
    detail = _describe(exc)
    if isinstance(exc, apsw.BusyError | apsw.LockedError):
        return StoreUnavailable(f"{action}: database is locked by another connection ({detail})")
    if isinstance(exc, _UNAVAILABLE):
        return StoreUnavailable(f"{action}: {detail}")
    if isinstance(exc, _BAD_DATA):
        return BatchDataError(f"{action}: {detail}")
    if isinstance(exc, apsw.NotADBError):
        return SchemaError(f"{action}: not an SQLite database ({detail})")
    if isinstance(exc, apsw.CorruptError):
        return StoreError(f"{action}: the database file is corrupt ({detail})")
    return StoreError(f"{action}: {detail}")


def _describe(exc: BaseException) -> str:
    # apsw messages read "FullError: database or disk is full"; keep only the readable half.
    text = str(exc).strip() or type(exc).__name__
    prefix = f"{type(exc).__name__}: "
    return text.removeprefix(prefix)
