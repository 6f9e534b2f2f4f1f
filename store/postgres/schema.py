"""The PostgreSQL layout (a public contract, like store/sqlite/schema.py) and its version stamp.

Owns: the DDL of `scans` and `dead_letters` in the connection's default schema
(`current_schema()`), the version stamp (a COMMENT on both tables: "miniscan schema N"),
recognising those tables before touching them, and creating or migrating them in one
transaction under an advisory lock, so that many writers starting at once create them once.

Never: write scan data, open connections, or alter anything it refuses. Other applications'
tables in the same schema are never read beyond the catalog, nor changed. A table named
`scans` or `dead_letters` without miniscan's stamp is refused (`SchemaError`) before any
write, and the refusing transaction is rolled back.

Version 3 added `scan_counts` (as SQLite's version 3), which carries no stamp of its own:
the stamp on the two tables above names the layout, scan_counts included. Version 4 keeps
rows and the newest scan time per service there (`store.postgres.scan_counts`, as SQLite's
version 4); its migration replaces version 3's table and counts the rows once.

Same layout as SQLite, with two deliberate differences:
  - `response` is `bytea` holding the UTF-8 of the text. PostgreSQL `text` cannot hold NUL
    (SQLite stores it happily), and compares by collation (ICU "en-US" puts "a" before "B");
    bytea holds any Python str losslessly and compares byte by byte (memcmp, then length),
    which is SQLite's BINARY order and, for UTF-8, Python's code point order: the tie-break
    of the newest-wins rule. Readers decode it (`decode_response`).
  - `ip` and `service` are `text COLLATE "C"`: key order (the lock order of every upsert and
    the readers' ORDER BY) is byte order whatever the database's default collation. The
    decoders only ever produce printable ASCII there, so text's NUL ban costs nothing.
The version numbers are SQLite's (one design of the tables for both stores): a SQLite
migration that changes the layout needs its PostgreSQL twin here (a test checks they agree).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import psycopg
from psycopg import errors as pg_errors

from store.errors import SchemaError
from store.postgres import scan_counts
from store.schema_version import CURRENT_VERSION, require_readable

TABLES = ("scans", "dead_letters")
STAMP = "miniscan schema {version}"
_STAMP_PATTERN = re.compile(r"miniscan schema (\d+)\b")
# Key of the advisory lock held while checking and creating the tables: "mscn" (SQLite's
# application id, which fits an int4) and a hash of the schema, so that schemas of one
# database do not wait on each other.
_LOCK_CLASS = int.from_bytes(b"mscn", "big")

SCANS_DDL = """
CREATE TABLE scans (
    ip           text COLLATE "C" NOT NULL CHECK (length(ip) > 0),
    port         integer NOT NULL CHECK (port BETWEEN 0 AND 65535),
    service      text COLLATE "C" NOT NULL CHECK (length(service) > 0),
    last_scanned bigint  NOT NULL CHECK (last_scanned >= 0),
    response     bytea   NOT NULL,
    data_version bigint  NOT NULL CHECK (data_version >= 0),
    first_seen   bigint  NOT NULL CHECK (first_seen BETWEEN 0 AND last_scanned),
    PRIMARY KEY (ip, port, service)
) WITH (fillfactor = 90, autovacuum_vacuum_scale_factor = 0.02)
"""
# Storage settings, not layout (issue 26): every row is updated again and again, and only
# last_scanned, response and data_version change, none indexed. With room left on each page
# (fillfactor 90) those updates are HOT (no index entry) and pages prune themselves; with an
# autovacuum that starts at 2% dead rows instead of 20%, the space is reused soon. Measured
# with bench/table_growth.py on 10M rows updated three times over: 1.04x the loaded size
# (2,260 -> 2,343 MiB) against 1.26x with PostgreSQL's defaults (2,076 -> 2,622 MiB), and the
# updates took 799 s against 910 s. Tables created before keep theirs: docs/operations.md
# gives the ALTER TABLE.
DEAD_LETTERS_DDL = """
CREATE TABLE dead_letters (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    payload        bytea  NOT NULL,
    reason         text   NOT NULL CHECK (length(reason) > 0),
    detail         text   NOT NULL DEFAULT '',
    message_id     text   NOT NULL DEFAULT '',
    received_at    double precision NOT NULL,
    payload_sha256 bytea  NOT NULL DEFAULT ''::bytea
)
"""
# An identity, like SQLite's AUTOINCREMENT: a sequence never hands out an id twice, so an id
# once shown to an operator never names another message after a replay deleted rows.
DEAD_LETTERS_INDEXES = (
    # Only a true duplicate (a redelivery: same id and same bytes) collapses, as on SQLite
    # version 2; ON CONFLICT DO NOTHING on this index keeps storing dead letters idempotent.
    "CREATE UNIQUE INDEX dead_letters_by_identity ON dead_letters (message_id, payload_sha256)"
    " WHERE message_id <> ''",
    "CREATE INDEX dead_letters_by_reason ON dead_letters (reason, id)",
)
COLUMN_COMMENTS = (
    "COMMENT ON COLUMN scans.response IS 'the response text as UTF-8 bytes (it may hold NUL,"
    " which text cannot); read it with convert_from(response, ''UTF8'') where it has no NUL'",
)


def stamp(version: int) -> str:
    return STAMP.format(version=version)


def read_schema_version(conn: psycopg.Connection, where: str) -> int | None:
    """The version of miniscan's tables in the default schema, None when neither exists.

    Reads the catalog only. Raises SchemaError for tables of these names that are not
    miniscan's, or a version newer than this code.
    """
    schema = _default_schema(conn, where)
    found = conn.execute(
        "SELECT c.relname, c.relkind, obj_description(c.oid, 'pg_class')"
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relname = ANY(%s)",
        (schema, list(TABLES)),
    ).fetchall()
    if not found:
        return None
    unchanged = "; nothing was changed"
    versions = set()
    for name, kind, comment in found:
        match = _STAMP_PATTERN.match(comment or "")
        if kind not in ("r", "p") or match is None:
            raise SchemaError(
                f"{where}: schema {schema} already has a {_KINDS.get(kind, 'relation')} named"
                f" {name} that is not miniscan's (no '{stamp(CURRENT_VERSION)}' comment)"
                f"{unchanged}"
            )
        versions.add(int(match.group(1)))
    names = {name for name, _, _ in found}
    if names != set(TABLES) or len(versions) != 1:
        raise SchemaError(
            f"{where}: schema {schema} holds an incomplete or mixed miniscan layout (tables"
            f" {', '.join(sorted(names))}, versions {sorted(versions)}){unchanged}"
        )
    version = versions.pop()
    if version > CURRENT_VERSION:
        raise SchemaError(
            f"{where} has schema version {version}, newer than this miniscan understands"
            f" (up to {CURRENT_VERSION}): upgrade miniscan{unchanged}"
        )
    return version


_KINDS = {"r": "table", "p": "table", "v": "view", "m": "materialized view",
          "f": "foreign table", "S": "sequence", "i": "index"}  # fmt: skip


def _default_schema(conn: psycopg.Connection, where: str) -> str:
    schema = conn.execute("SELECT current_schema()").fetchone()[0]
    if schema is None:
        raise SchemaError(f"{where}: no schema of the search_path exists to hold miniscan's tables")
    return schema


def ensure_current(conn: psycopg.Connection, where: str) -> int | None:
    """Create the tables or migrate older ones, in one transaction; the version found before.

    The caller's connection must not be in autocommit. Concurrent callers serialise on an
    advisory lock, so the second one finds the tables the first created. On any failure the
    transaction is rolled back and the schema is as it was.
    """
    try:
        conn.execute(
            "SELECT pg_advisory_xact_lock(%s::int4, hashtext(coalesce(current_schema(), '')))",
            (_LOCK_CLASS,),
        )
        found = read_schema_version(conn, where)
        if found is None:
            _create_current(conn, where)
        else:
            _migrate(conn, where, found)
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    return found


def require_current(conn: psycopg.Connection, where: str) -> None:
    """For readers: the tables must exist with this code's layout (readers never migrate)."""
    missing = f"{where} has no miniscan tables yet: start the supervisor once"
    require_readable(read_schema_version(conn, where), where, missing)


def recount_scans(conn: psycopg.Connection) -> None:
    """Set everything the writers keep (`scan_counts`: rows and newest scan per service)
    from the rows of scans: one full scan, in the caller's transaction. For rows loaded
    behind the writers' backs (bench/table_growth.py's bulk load); never on a writer's
    path."""
    scan_counts.recount(conn)


def _create_current(conn: psycopg.Connection, where: str) -> None:
    try:
        for ddl in (SCANS_DDL, DEAD_LETTERS_DDL, *DEAD_LETTERS_INDEXES, *COLUMN_COMMENTS):
            conn.execute(ddl)
        scan_counts.build(conn)
        _set_stamp(conn, CURRENT_VERSION)
    except (pg_errors.DuplicateTable, pg_errors.DuplicateObject,
            pg_errors.DuplicateFunction) as exc:  # fmt: skip
        # Another application owns an index or sequence of one of these names.
        raise SchemaError(
            f"{where}: cannot create miniscan's tables ({exc.diag.message_primary});"
            " nothing was changed"
        ) from None


def _set_stamp(conn: psycopg.Connection, version: int) -> None:
    for table in TABLES:
        conn.execute(f"COMMENT ON TABLE {table} IS '{stamp(version)}'")


def _migrate(conn: psycopg.Connection, where: str, found: int) -> None:
    version = found
    while version < CURRENT_VERSION:
        migration = MIGRATIONS.get(version)
        if migration is None:
            raise SchemaError(
                f"{where} has schema version {version}, which no PostgreSQL store ever had;"
                " nothing was changed"
            )
        migration(conn)
        version += 1
    if version != found:
        _set_stamp(conn, version)


def _migrate_2_to_3(conn: psycopg.Connection) -> None:
    """Nothing: version 3's scan_counts is rebuilt by the next step, so a version-2 store
    counts its rows once, not twice."""


def _migrate_3_to_4(conn: psycopg.Connection) -> None:
    """Replace scan_counts with the counts per service, the rows of scans counted now: the
    one full count, under the advisory lock of the open that migrates; from then on the
    writers keep them."""
    # The advisory lock holds back only writers of this version: an old writer still running
    # could commit rows the count misses. SHARE ROW EXCLUSIVE waits for their transactions
    # and blocks their writes until this one commits (issue 25); the docs still ask for old
    # writers to be stopped first, as they do not keep the counts per service.
    conn.execute("LOCK TABLE scans IN SHARE ROW EXCLUSIVE MODE")
    scan_counts.replace_version_3(conn)


# Version 2 is the first PostgreSQL layout; later layouts add their steps here, keyed by the
# version they migrate from, each run inside the transaction of `ensure_current`.
MIGRATIONS: dict[int, Callable[[psycopg.Connection], None]] = {
    2: _migrate_2_to_3,
    3: _migrate_3_to_4,
}


def decode_response(stored: bytes | memoryview) -> str:
    """The response text of a stored `scans.response` (the writer stored its UTF-8)."""
    return bytes(stored).decode("utf-8")
