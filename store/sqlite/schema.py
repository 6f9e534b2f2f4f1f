"""The SQLite layout (a public contract: users read this file directly) and its migrations.

Owns: the DDL of every table (that of `scan_counts` is in `store.sqlite.scan_counts`), the
schema version stamp (`PRAGMA application_id` says "this is miniscan's file", `PRAGMA
user_version` says which layout), recognising a file before touching it, and migrating an
older layout in place, inside one transaction.

Never: write scan data or open connections. Never alter a file it refuses: the refusal
(`SchemaError`) happens on reads alone, before the caller's first write.

Versions:
  0  the bare layout of the issue, before versioning (no application id, user_version 0):
     scans(ip, port, service, last_scanned, response), dead_letters(payload, reason,
     received_at, message_id). Recognised by its tables and columns.
  1  adds scans.first_seen and scans.data_version, NOT NULL/CHECK constraints on every
     column, and dead_letters.id/detail with a unique index on non-empty message ids.
  2  dead_letters.payload_sha256; the unique index is on (message_id, payload_sha256), so
     that only a true duplicate (a redelivery: same id and same bytes) collapses. Message ids
     are not unique across emulator restarts (it numbers from 1 again), topics or projects,
     and v1 silently dropped a new poison message whose id matched an old one (issue 12).
  3  scan_counts(slot, row_count): the number of rows in scans, kept by the writer in the
     transaction of each batch (issue 26), so that the rows gauge and the writer's open never
     count the whole table. The migration counted the existing rows once.
  4  scan_counts(slot, service, row_count, newest_scan): rows and newest scan time per
     service, kept the same way (`store.sqlite.scan_counts`), so that `stats` answers from
     them too. The migration from 3 (or 2: version 3's table is rebuilt anyway, so a
     version-2 file goes straight to 4's) counts the existing rows once, a full scan at that
     one open.
"""

from __future__ import annotations

from collections.abc import Callable

import apsw

from store.errors import SchemaError
from store.rows import payload_digest
from store.schema_version import CURRENT_VERSION, require_readable
from store.sqlite import scan_counts

# "mscn" in ASCII: marks the file as miniscan's, so a foreign SQLite file is never mistaken
# for an empty or old one.
APPLICATION_ID = int.from_bytes(b"mscn", "big")

SCANS_DDL = """
CREATE TABLE scans (
    ip           TEXT    NOT NULL CHECK (typeof(ip) = 'text' AND length(ip) > 0),
    port         INTEGER NOT NULL CHECK (typeof(port) = 'integer' AND port BETWEEN 0 AND 65535),
    service      TEXT    NOT NULL CHECK (typeof(service) = 'text' AND length(service) > 0),
    last_scanned INTEGER NOT NULL CHECK (typeof(last_scanned) = 'integer' AND last_scanned >= 0),
    response     TEXT    NOT NULL CHECK (typeof(response) = 'text'),
    data_version INTEGER NOT NULL CHECK (typeof(data_version) = 'integer' AND data_version >= 0),
    first_seen   INTEGER NOT NULL
                 CHECK (typeof(first_seen) = 'integer' AND first_seen BETWEEN 0 AND last_scanned),
    PRIMARY KEY (ip, port, service)
)
"""
# A rowid table, not WITHOUT ROWID: with responses of a few hundred bytes, random-key upserts
# into a WITHOUT ROWID table measured at less than half the speed (36k vs 76k rows/s).
# The rowid also lets the writer count new keys cheaply (rows with rowid > the old maximum).

DEAD_LETTERS_DDL = """
CREATE TABLE dead_letters (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    payload     BLOB    NOT NULL CHECK (typeof(payload) = 'blob'),
    reason      TEXT    NOT NULL CHECK (typeof(reason) = 'text' AND length(reason) > 0),
    detail      TEXT    NOT NULL DEFAULT '',
    message_id  TEXT    NOT NULL DEFAULT '',
    received_at REAL    NOT NULL,
    payload_sha256 BLOB NOT NULL DEFAULT x''
)
"""
# AUTOINCREMENT so that an id, once shown to an operator, never names another message after
# a replay deleted the highest ones.
DEAD_LETTERS_INDEXES = (
    # At-least-once delivery can bring one poison message twice: INSERT OR IGNORE on this
    # index keeps storing dead letters idempotent. The digest of the bytes is part of the
    # identity because a message id alone is not unique (see version 2 above).
    "CREATE UNIQUE INDEX dead_letters_by_identity ON dead_letters (message_id, payload_sha256)"
    " WHERE message_id <> ''",
    "CREATE INDEX dead_letters_by_reason ON dead_letters (reason, id)",
)

# The version-1 dead_letters, which migration 0 -> 1 builds (migration 1 -> 2 then extends it).
DEAD_LETTERS_DDL_V1 = DEAD_LETTERS_DDL.replace(
    ",\n    payload_sha256 BLOB NOT NULL DEFAULT x''", ""
)
DEAD_LETTERS_INDEXES_V1 = (
    "CREATE UNIQUE INDEX dead_letters_by_message_id ON dead_letters (message_id)"
    " WHERE message_id <> ''",
    DEAD_LETTERS_INDEXES[1],
)

# The version-0 layout, as the issue first described it. Kept to recognise such files and
# for tests that build one.
LEGACY_V0_DDL = (
    "CREATE TABLE scans (ip TEXT, port INTEGER, service TEXT, last_scanned INTEGER,"
    " response TEXT, PRIMARY KEY (ip, port, service))",
    "CREATE TABLE dead_letters (payload BLOB, reason TEXT, received_at REAL, message_id TEXT)",
)
_V0_COLUMNS = {
    "scans": {"ip", "port", "service", "last_scanned", "response"},
    "dead_letters": {"payload", "reason", "received_at", "message_id"},
}


def read_schema_version(conn: apsw.Connection, path: str) -> int | None:
    """The file's layout version, or None for an empty database. Reads only.

    Raises SchemaError for a foreign file or one newer than this code.
    """
    app_id = conn.pragma("application_id")
    version = conn.pragma("user_version")
    unchanged = "; the file was not changed"
    if app_id == APPLICATION_ID:
        if version > CURRENT_VERSION:
            raise SchemaError(
                f"{path} has schema version {version}, newer than this miniscan understands"
                f" (up to {CURRENT_VERSION}): upgrade miniscan{unchanged}"
            )
        if version < 1:
            raise SchemaError(f"{path} has miniscan's id but no schema version{unchanged}")
        return version
    if app_id != 0:
        raise SchemaError(
            f"{path} is not a miniscan database (application_id {app_id:#x}){unchanged}"
        )
    if version != 0:
        raise SchemaError(
            f"{path} is not a miniscan database (user_version {version} without miniscan's"
            f" application id){unchanged}"
        )
    objects = conn.execute(
        "SELECT type, name FROM sqlite_schema WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
    ).fetchall()
    if not objects:
        return None
    if _looks_like_v0(conn, objects):
        return 0
    names = ", ".join(sorted(name for kind, name in objects if kind == "table")) or "none"
    raise SchemaError(f"{path} is not a miniscan database (tables: {names}){unchanged}")


def _looks_like_v0(conn: apsw.Connection, objects: list[tuple[str, str]]) -> bool:
    if any(kind not in ("table", "index") for kind, _ in objects):
        return False
    tables = {name for kind, name in objects if kind == "table"}
    if "scans" not in tables or not tables <= set(_V0_COLUMNS):
        return False
    return all(_V0_COLUMNS[table] <= _column_names(conn, table) for table in tables)


def _column_names(conn: apsw.Connection, table: str) -> set[str]:
    return {row[0] for row in conn.execute("SELECT name FROM pragma_table_info(?)", (table,))}


def ensure_current(conn: apsw.Connection, path: str) -> int | None:
    """Create the layout in an empty file or migrate an older one, in one transaction.

    Returns the version the file had before (None when it was empty). On any failure the
    transaction is rolled back, so the file is as it was.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        found = read_schema_version(conn, path)
        if found is None:
            _create_current(conn)
        else:
            _migrate(conn, path, found)
        conn.pragma("application_id", APPLICATION_ID)
        conn.pragma("user_version", CURRENT_VERSION)
        conn.execute("COMMIT")
    except BaseException:
        if not conn.get_autocommit():
            conn.execute("ROLLBACK")
        raise
    return found


def require_current(conn: apsw.Connection, path: str) -> None:
    """For readers: the file must already have this code's layout (they never migrate)."""
    missing = f"{path} is empty: not a miniscan database yet"
    require_readable(read_schema_version(conn, path), path, missing)


def recount_scans(conn: apsw.Connection) -> None:
    """Set everything the writer keeps (`scan_counts`: rows and newest scan per service)
    from the rows of scans: one full scan, in the caller's transaction. For rows loaded
    behind the writer's back (bench/table_growth.py's bulk load); never on the writer's
    path."""
    scan_counts.recount(conn)


def _create_current(conn: apsw.Connection) -> None:
    conn.execute(SCANS_DDL)
    conn.execute(DEAD_LETTERS_DDL)
    for ddl in DEAD_LETTERS_INDEXES:
        conn.execute(ddl)
    scan_counts.build(conn)


def _migrate(conn: apsw.Connection, path: str, found: int) -> None:
    version = found
    while version < CURRENT_VERSION:
        try:
            MIGRATIONS[version](conn)
        except (apsw.ConstraintError, apsw.MismatchError) as exc:
            raise SchemaError(
                f"cannot migrate {path} from schema version {version} to {version + 1}:"
                f" a row breaks the new constraints ({exc}); the file was not changed"
            ) from None
        version += 1


def _migrate_0_to_1(conn: apsw.Connection) -> None:
    """Rebuild both tables with constraints; a v0 row's first_seen is its last_scanned and
    its data_version 0 (unknown)."""
    conn.execute("ALTER TABLE scans RENAME TO scans_v0")
    conn.execute(SCANS_DDL)
    conn.execute(
        "INSERT INTO scans (ip, port, service, last_scanned, response, data_version, first_seen)"
        " SELECT ip, port, service, last_scanned, response, 0, last_scanned FROM scans_v0"
    )
    conn.execute("DROP TABLE scans_v0")
    had_dead_letters = conn.table_exists("main", "dead_letters")
    if had_dead_letters:
        conn.execute("ALTER TABLE dead_letters RENAME TO dead_letters_v0")
    conn.execute(DEAD_LETTERS_DDL_V1)
    for ddl in DEAD_LETTERS_INDEXES_V1:
        conn.execute(ddl)
    if had_dead_letters:
        # OR IGNORE: v0 had no unique message id, so duplicates collapse here.
        conn.execute(
            "INSERT OR IGNORE INTO dead_letters (payload, reason, message_id, received_at)"
            " SELECT coalesce(CAST(payload AS BLOB), x''), coalesce(nullif(reason, ''),"
            " 'unknown'), coalesce(message_id, ''), coalesce(received_at, 0)"
            " FROM dead_letters_v0 ORDER BY rowid"
        )
        conn.execute("DROP TABLE dead_letters_v0")


def _migrate_1_to_2(conn: apsw.Connection) -> None:
    """Add the payload digest, fill it for every letter, and widen the unique index to
    (message_id, payload_sha256). No row is dropped: v1 rows were unique by id already."""
    conn.execute("ALTER TABLE dead_letters ADD COLUMN payload_sha256 BLOB NOT NULL DEFAULT x''")
    conn.create_scalar_function("miniscan_sha256", payload_digest, 1, deterministic=True)
    conn.execute("UPDATE dead_letters SET payload_sha256 = miniscan_sha256(payload)")
    conn.execute("DROP INDEX IF EXISTS dead_letters_by_message_id")
    conn.execute(DEAD_LETTERS_INDEXES[0])


def _migrate_2_to_3(conn: apsw.Connection) -> None:
    """Nothing: version 3's scan_counts is rebuilt by the next step, so a version-2 file
    counts its rows once, not twice."""


def _migrate_3_to_4(conn: apsw.Connection) -> None:
    """Replace scan_counts with the counts per service, the rows of scans counted now: the
    one full scan, at the open that migrates; from then on the writer keeps them."""
    scan_counts.replace_version_3(conn)


MIGRATIONS: dict[int, Callable[[apsw.Connection], None]] = {
    0: _migrate_0_to_1,
    1: _migrate_1_to_2,
    2: _migrate_2_to_3,
    3: _migrate_3_to_4,
}
