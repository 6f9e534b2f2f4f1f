"""The store's exceptions: what a caller may catch, and what each one asks it to do.

Owns: the `StoreError` family, which both backends raise (each backend's `connection`
module translates its driver's exceptions into these classes), so that the writer, the
readers and the commands classify failures the same way whichever the store.

Never: log, retry or decide policy; callers do (the writer retries `StoreUnavailable`,
bisects on `BatchDataError`; the CLI prints the one-line message and exits 1).
"""

from __future__ import annotations


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


class StoreInaccessible(StoreUnavailable):
    """The database file or its folder cannot be opened or created (permission denied, a
    read-only file system, a path through a file): a configuration error.

    While running it is weather like any StoreUnavailable (a remount may end it); at
    start-up waiting will not fix it, so the start is refused (exit 3) instead.
    """


class BatchDataError(StoreError):
    """The batch's own data was refused (constraint, too big, wrong type).

    Caller's move: split the batch to isolate the record(s) at fault.
    """
