"""Spread PostgreSQL's `scans` over hash partitions of ip (`miniscan partition`).

Owns: replacing a plain `scans` by a table of the same layout (columns, key, checks, comments,
the version stamp, the kept counts' triggers, the grants readers rely on) partitioned by hash
of ip, moving every row into it in one transaction under an exclusive lock
(`partition_scans`, or `partition_database` on a connection of its own, its errors
translated, for the command); telling whether `scans` is partitioned (`scans_partitioned`:
the writer picks its statements by it, see `store.postgres.upsert`) and into how many
partitions (`partition_count`).

Never: change the public layout (the columns and the key (ip, port, service) stay), touch
`scan_counts` (the rows move; what they count does not change), partition twice, or leave
anything half done: any failure rolls the whole transaction back and `scans` is as it was.

Why hash of ip: the key starts with ip and `miniscan query --ip` filters on it, so such a
read touches one partition; hashing spreads the rows evenly whatever the address ranges
scanned, and each partition is vacuumed and reindexed on its own.
"""

from __future__ import annotations

import psycopg

from store.errors import SchemaError
from store.postgres import scan_counts
from store.postgres.connection import connect, describe, translate_error
from store.postgres.schema import CURRENT_VERSION, require_current, stamp

MAX_PARTITIONS = 1024
# The kept counts' statement-level delete and truncate triggers, made again on the new table
# (DROP TABLE takes the old table's with it; their functions stay). They fire for statements
# on `scans`; a statement on one partition (scans_p03) bypasses them, as SQL has it.
_TRIGGERS = tuple(s for s in scan_counts.COUNT_DELETIONS if s.startswith("CREATE TRIGGER"))
# LIKE copies no privileges: the old table's grants (a readers' role with SELECT on scans)
# are given again, owner's implicit ones aside.
_GRANTS = """
SELECT a.privilege_type, a.is_grantable,
       CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END
FROM pg_class c CROSS JOIN aclexplode(c.relacl) a LEFT JOIN pg_roles r ON r.oid = a.grantee
WHERE c.oid = 'scans_unpartitioned'::regclass AND a.grantee <> c.relowner
ORDER BY 3, 1
"""
_PARTITIONED = """
SELECT c.relkind = 'p' FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND c.relname = 'scans'
"""


def scans_partitioned(conn: psycopg.Connection) -> bool:
    """Whether the default schema's `scans` is a partitioned table (False when missing)."""
    found = conn.execute(_PARTITIONED).fetchone()
    return bool(found and found[0])


def partition_count(conn: psycopg.Connection) -> int:
    """The partitions of `scans` (0: a plain table)."""
    return conn.execute(
        "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhparent"
        " WHERE c.oid = 'scans'::regclass"
    ).fetchone()[0]


def partition_scans(conn: psycopg.Connection, partitions: int, where: str) -> int:
    """Replace `scans` by a table partitioned by hash of ip into `partitions`, moving every
    row; the rows moved. In the caller's transaction, which must commit or roll back the
    whole (the table is locked ACCESS EXCLUSIVE until then: writers wait, then retry).

    SchemaError, before anything changed: a count out of 2..MAX_PARTITIONS, no current
    miniscan tables, or `scans` partitioned already.
    """
    if not 2 <= partitions <= MAX_PARTITIONS:
        raise SchemaError(
            f"{where}: cannot partition scans into {partitions}: 2 to {MAX_PARTITIONS}"
            " partitions; nothing was changed"
        )
    require_current(conn, where)
    conn.execute("LOCK TABLE scans IN ACCESS EXCLUSIVE MODE")
    if partition_count(conn) or scans_partitioned(conn):
        raise SchemaError(f"{where}: scans is partitioned already; nothing was changed")
    conn.execute("ALTER TABLE scans RENAME TO scans_unpartitioned")
    # The key's index keeps its name with the table; the new table's own is scans_pkey.
    conn.execute(
        "ALTER TABLE scans_unpartitioned RENAME CONSTRAINT scans_pkey TO scans_unpartitioned_pkey"
    )
    conn.execute(
        "CREATE TABLE scans (LIKE scans_unpartitioned INCLUDING ALL) PARTITION BY HASH (ip)"
    )
    for remainder in range(partitions):
        conn.execute(
            f"CREATE TABLE scans_p{remainder:02d} PARTITION OF scans"
            f" FOR VALUES WITH (MODULUS {partitions}, REMAINDER {remainder})"
        )
    grants = conn.execute(_GRANTS).fetchall()
    moved = conn.execute("INSERT INTO scans SELECT * FROM scans_unpartitioned").rowcount
    conn.execute("DROP TABLE scans_unpartitioned")
    for statement in _TRIGGERS:
        conn.execute(statement)
    for privilege, grantable, grantee in grants:
        option = " WITH GRANT OPTION" if grantable else ""
        conn.execute(f"GRANT {privilege} ON scans TO {grantee}{option}")
    conn.execute(f"COMMENT ON TABLE scans IS '{stamp(CURRENT_VERSION)}'")
    return moved


def partition_database(url: str, partitions: int) -> tuple[str, int]:
    """`partition_scans` on a connection of its own, in one transaction: (the store's
    description for messages, the rows moved). SchemaError, StoreUnavailable or StoreError
    (the psycopg error translated, never with the password); nothing changed on any."""
    where = describe(url)
    conn = connect(url, where)
    try:
        with conn.transaction():
            moved = partition_scans(conn, partitions, where)
    except psycopg.Error as exc:
        raise translate_error(exc, f"cannot partition scans of {where}") from None
    finally:
        conn.close()
    return where, moved
