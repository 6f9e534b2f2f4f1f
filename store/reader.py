"""The one reader interface the commands see, and `open_store_reader`, which picks the backend.

Owns: `StoreReader` (what `miniscan query`, `stats`, `dead-letters` and the replay need of a
store: find scans, a summary from one snapshot, dead letters listed, shown and deleted) and
the rule of `store.backend`: a `postgresql://` or `postgres://` URL is PostgreSQL
(`store.postgres.reader.PostgresReader`), anything else a SQLite file
(`store.sqlite.reader.SqliteReader`). Both return the shapes of `store.rows`, so the
commands (`commands.query`, `commands.report`) never branch on the backend.

Never: hold SQL or connections of its own, create or migrate a store, or name a store in a
message with its password (`describe_target`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from types import TracebackType
from typing import Protocol

from store.backend import import_postgres, is_postgres_url
from store.connection_options import BUSY_TIMEOUT_MS
from store.errors import StoreError
from store.rows import ScanRow, StoredDeadLetter, StoreStats
from store.sqlite.reader import SqliteReader


class StoreReader(Protocol):
    """A connection to an existing, current store; read-only unless opened `writable`."""

    where: str  # the store, for messages: a file path, or a URL without its password

    def find_scans(
        self,
        *,
        ip: str | None = None,
        port: int | None = None,
        service: str | None = None,
        since: int | None = None,
        limit: int | None = None,
    ) -> Iterator[ScanRow]:
        """Rows matching every given filter, in key order; `since` keeps last_scanned >=
        since. Values are matched exactly as stored (canonical IP text, upper-case service)."""
        ...

    def read_stats(self, top_services: int = 10, *, full: bool = False) -> StoreStats:
        """Counts and ranges of the whole store, all from one snapshot: from the kept counts
        alone (rows, services, newest scan; distinct IPs estimated where the database keeps
        statistics), or with `full` from reading every row as well (distinct IPs, oldest
        scan, data versions: minutes on 100M rows)."""
        ...

    def count_by_reason(self) -> list[tuple[str, int]]: ...

    def list_dead_letters(
        self,
        *,
        reason: str | None = None,
        ids: Iterable[int] = (),
        after_id: int = 0,
        limit: int | None = None,
    ) -> list[StoredDeadLetter]: ...

    def get_dead_letter(self, letter_id: int) -> StoredDeadLetter | None: ...

    def delete_dead_letters(self, ids: Sequence[int]) -> int:
        """Delete these rows in one short transaction (a `writable` reader only)."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> StoreReader: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


def open_store_reader(
    target: str | os.PathLike[str],
    *,
    writable: bool = False,
    busy_timeout_ms: int = BUSY_TIMEOUT_MS,
) -> StoreReader:
    """A reader of the store `target` names. Never creates or migrates: a missing SQLite file
    is DatabaseMissing, missing or older PostgreSQL tables a SchemaError."""
    if is_postgres_url(target):
        return import_postgres().reader.PostgresReader.open(
            target, writable=writable, busy_timeout_ms=busy_timeout_ms
        )
    return SqliteReader.open(target, writable=writable, busy_timeout_ms=busy_timeout_ms)


def describe_target(target: str | os.PathLike[str]) -> str:
    """How messages name the store: a path as given, a URL without password or options."""
    if is_postgres_url(target):
        try:
            return import_postgres().connection.describe(target)
        except StoreError:  # no psycopg, or a URL libpq cannot parse: show none of it
            return "the PostgreSQL URL given"
    return os.fspath(target)
