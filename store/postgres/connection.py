"""Connections to a PostgreSQL store, and what their errors mean to a caller.

Owns: turning a libpq URL into a connection (with miniscan's application name and a
connect timeout unless the URL sets them), a password-free description of the URL for
messages, `connect_existing` for readers and admin commands, and `translate_error`: the one
mapping from psycopg exceptions to the store.errors classes (store.sqlite.connection holds
SQLite's).

Never: create or migrate tables (store.postgres.schema, called by the writer's open), write
data, log, or retry.
"""

from __future__ import annotations

import psycopg
from psycopg.conninfo import conninfo_to_dict

from store.errors import BatchDataError, StoreError, StoreUnavailable
from store.postgres import schema

CONNECT_TIMEOUT_S = 10
DEFAULT_PARAMS = (("application_name", "miniscan"), ("connect_timeout", str(CONNECT_TIMEOUT_S)))

# SQLSTATE classes and codes: the database cannot be written now (connection, resources,
# object in use or lock timeout, operator intervention, system error, a read-only standby,
# a conflict that outlasted its retries), or the data itself was refused.
_UNAVAILABLE_CLASSES = ("08", "53", "55", "57", "58")
_UNAVAILABLE_STATES = ("25006", "40001", "40P01")
_BAD_DATA_CLASSES = ("22", "23")


def describe(url: str) -> str:
    """The URL without its password or options: safe for logs and error messages."""
    params = _parse(url)
    user = f"{params['user']}@" if params.get("user") else ""
    port = f":{params['port']}" if params.get("port") else ""
    return f"postgresql://{user}{params.get('host', '')}{port}/{params.get('dbname', '')}"


def connect(url: str, where: str) -> psycopg.Connection:
    """A new connection (not in autocommit); StoreUnavailable when the server cannot be
    reached (refused, timed out, unknown database, authentication failed)."""
    params = _parse(url)
    extra = {key: value for key, value in DEFAULT_PARAMS if key not in params}
    try:
        return psycopg.connect(url, autocommit=False, **extra)
    except psycopg.Error as exc:
        raise translate_error(exc, f"cannot connect to {where}") from None


def connect_existing(url: str, *, writable: bool = False) -> psycopg.Connection:
    """A connection for readers and admin commands to tables that must exist and be current.

    Never creates or migrates. Read-only unless `writable`. Raises SchemaError,
    StoreUnavailable or StoreError. Readers decode `scans.response` with
    `store.postgres.schema.decode_response`.
    """
    where = describe(url)
    conn = connect(url, where)
    try:
        schema.require_current(conn, where)
        conn.commit()
        conn.read_only = not writable
    except BaseException as exc:
        conn.close()
        if isinstance(exc, psycopg.Error):
            raise translate_error(exc, f"cannot open {where}") from None
        raise
    return conn


def _parse(url: str) -> dict[str, str]:
    try:
        return {key: str(value) for key, value in conninfo_to_dict(url).items()}
    except psycopg.ProgrammingError as exc:
        raise StoreError(f"invalid PostgreSQL URL: {_describe(exc)}") from None


def translate_error(exc: psycopg.Error, action: str) -> StoreError:
    """Classify a psycopg exception; `action` says what failed ("cannot write batch to X")."""
    state = exc.sqlstate or ""
    detail = _describe(exc)
    if state == "55P03":
        return StoreUnavailable(f"{action}: locked by another connection ({detail})")
    if state in _UNAVAILABLE_STATES or state[:2] in _UNAVAILABLE_CLASSES:
        return StoreUnavailable(f"{action}: {detail}")
    if state[:2] in _BAD_DATA_CLASSES:
        return BatchDataError(f"{action}: {detail}")
    if state == "42501":
        return StoreError(f"{action}: permission denied ({detail})")
    if not state and isinstance(exc, psycopg.DataError):  # refused before sending (a NUL)
        return BatchDataError(f"{action}: {detail}")
    if not state and isinstance(exc, psycopg.OperationalError):  # connection refused or lost
        return StoreUnavailable(f"{action}: {detail}")
    return StoreError(f"{action}: {detail}")


def _describe(exc: psycopg.Error) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{text} [{exc.sqlstate}]" if exc.sqlstate else text
