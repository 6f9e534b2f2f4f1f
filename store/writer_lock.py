"""The single-writer rule of a SQLite file, across supervisors: one exclusive lock file.

Owns: `hold_writer_lock(target)`. For a SQLite path it takes an exclusive, non-blocking
`flock` on `<database>.writer.lock` next to the file and keeps it for as long as the returned
`WriterLock` is open: the supervisor holds it for its whole life, so a second supervisor on
the same file is refused at start-up with one line (`WriterLocked`) instead of becoming a
second writer. For a PostgreSQL URL there is nothing to hold: any number of supervisors, on
any number of machines, may write one database (store.postgres.writer).

Why a lock file of our own rather than SQLite's locks: SQLite serialises two writers
correctly but silently, so two supervisors would both run, each thinking it is the one
writer (issue 14 asks for a refusal, not a work-around). Why flock: the kernel drops it when
the holder dies, even by SIGKILL, so a crashed supervisor never leaves a stale lock behind;
it needs a local filesystem (flock over NFS is not reliable), as SQLite's WAL does anyway.

Never: open the database, wait for the lock, or delete the lock file (unlinking it while
another process holds or waits on it would let a third lock a new file: two writers).
"""

from __future__ import annotations

import fcntl
import os

from store.backend import is_postgres_url
from store.closing import ClosedOnExit
from store.errors import StoreError, StoreUnavailable

LOCK_SUFFIX = ".writer.lock"


class WriterLocked(StoreError):
    """Another process already holds the writer lock of this SQLite file."""


class WriterLock(ClosedOnExit):
    """An open lock file holding the exclusive lock; `close` (or process exit) releases it."""

    def __init__(self, fd: int | None, lock_path: str | None) -> None:
        self._fd = fd
        self.lock_path = lock_path  # None: nothing to hold (a PostgreSQL URL)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


def lock_path_for(db_path: str | os.PathLike[str]) -> str:
    # realpath: two spellings of one file, or a symlink to it, must meet on one lock.
    return os.path.realpath(os.fspath(db_path)) + LOCK_SUFFIX


def hold_writer_lock(target: str | os.PathLike[str]) -> WriterLock:
    """Take the writer lock of the SQLite file `target` now (no lock for a PostgreSQL URL).

    Creates the folder and the lock file if missing (as `ScanStore.open` creates the folder
    and the database). Raises WriterLocked when another process holds it, StoreUnavailable
    when the lock file cannot be created or locked.
    """
    if is_postgres_url(target):
        return WriterLock(None, None)
    lock_path = lock_path_for(target)
    try:
        os.makedirs(os.path.dirname(lock_path), mode=0o750, exist_ok=True)
        # O_CLOEXEC is Python's default: no child process ever inherits the lock.
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o640)
    except OSError as exc:
        raise StoreUnavailable(f"cannot create {lock_path}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise WriterLocked(
            f"{os.fspath(target)} already has a writer (another miniscan-supervisor holds"
            f" {lock_path}); a SQLite file takes exactly one: to run several supervisors"
            " on one store, give them all one --db postgresql://... URL"
        ) from None
    except OSError as exc:
        os.close(fd)
        raise StoreUnavailable(f"cannot lock {lock_path}: {exc.strerror}") from None
    return WriterLock(fd, lock_path)
