"""The version of the tables, shared by both stores, and what a reader makes of an older one.

Owns: `CURRENT_VERSION` (one design of `scans` and `dead_letters` for SQLite and PostgreSQL:
a layout change bumps it here and needs a migration in each backend's schema module), and
`require_readable`, the rule every reader applies: no tables yet, or tables older than this
code, is a `SchemaError` naming what to do (readers never migrate).

Never: read a database; each backend finds the version its own way.
"""

from __future__ import annotations

from store.errors import SchemaError

CURRENT_VERSION = 4


def require_readable(found: int | None, where: str, missing: str) -> None:
    """Raise SchemaError unless `found` is this code's version; `missing` is the message for
    a store without miniscan's tables."""
    if found is None:
        raise SchemaError(missing)
    if found < CURRENT_VERSION:
        raise SchemaError(
            f"{where} has schema version {found}, older than this miniscan ({CURRENT_VERSION}):"
            " start the supervisor once to migrate it"
        )
