"""The one store interface the writer sees, and `open_store`, which picks the backend.

Owns: `ScanStoreBackend` (what a store must offer: open, write_batch, row_count, close, a
context manager, migrated_from), the rule that a `postgresql://` or `postgres://` URL
means PostgreSQL (store.postgres) while anything else is a SQLite file path (store.sqlite),
and `import_postgres`, the one place the PostgreSQL backend is imported for the writer's
and the readers' paths alike, and `miniscan partition`'s (psycopg is an optional extra).

Never: hold SQL, connections or policy of its own. SQL differences live in each backend's
package; both are held to the same tests (tests/test_store_conformance.py), so that callers
never branch on the backend. Neither backend imports this module (they are below it).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from types import ModuleType, TracebackType
from typing import Protocol

from contracts.records import DeadLetter, ScanRecord
from store.connection_options import BUSY_TIMEOUT_MS
from store.errors import StoreError
from store.rows import WriteResult
from store.sqlite.writer import ScanStore

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
INSTALL_POSTGRES = "pip install 'miniscan[postgres]'"


class ScanStoreBackend(Protocol):
    """What the writer needs of a store; `store.sqlite.writer.ScanStore` and
    `store.postgres.writer.PostgresStore` both provide it."""

    path: str  # where the data lives, for messages (a PostgreSQL URL has no password here)
    migrated_from: int | None  # None: created or already current at open

    def write_batch(
        self, records: Sequence[ScanRecord], dead_letters: Sequence[DeadLetter] = ()
    ) -> WriteResult: ...

    def row_count(self) -> int: ...

    def ping(self) -> None:
        """A cheap round trip (no table-wide work); StoreUnavailable if the database is gone."""

    def close(self) -> None: ...

    def __enter__(self) -> ScanStoreBackend: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


def is_postgres_url(target: str | os.PathLike[str]) -> bool:
    return isinstance(target, str) and target.startswith(POSTGRES_SCHEMES)


def open_store(
    target: str | os.PathLike[str],
    *,
    synchronous: str = "FULL",
    busy_timeout_ms: int = BUSY_TIMEOUT_MS,
) -> ScanStoreBackend:
    """Open the store `target` names: a PostgreSQL URL or a SQLite file path.

    Both backends take the same options (see `ScanStore.open`, `PostgresStore.open`) and
    raise the same store.errors classes.
    """
    if is_postgres_url(target):
        return import_postgres().writer.PostgresStore.open(
            target, synchronous=synchronous, busy_timeout_ms=busy_timeout_ms
        )
    return ScanStore.open(target, synchronous=synchronous, busy_timeout_ms=busy_timeout_ms)


def import_postgres() -> ModuleType:
    """The `store.postgres` package with its modules loaded, imported on first use: psycopg is
    an optional extra, and a SQLite-only install must not need it. StoreError, saying how to
    install it, when psycopg is missing. (store.postgres imports nothing from here: this is
    no loop.)"""
    try:
        import store.postgres.connection
        import store.postgres.partition
        import store.postgres.reader
        import store.postgres.writer
    except ModuleNotFoundError as exc:
        if exc.name is not None and exc.name.split(".")[0] == "psycopg":
            raise StoreError(
                f"a PostgreSQL store needs psycopg, which is not installed: {INSTALL_POSTGRES}"
            ) from None
        raise
    return store.postgres
