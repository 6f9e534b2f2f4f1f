"""The kept counts of PostgreSQL's `scans` (schema version 4, issue 26), the twin of
`store.sqlite.scan_counts`: the table, its triggers, and the statements that keep and read it.

Owns: `scan_counts` (rows and newest scan time per slot and service), the statement-level
triggers that keep it right when rows are deleted or truncated by hand, building it (at
creation, at the 3 -> 4 migration, and in `recount_scans` after a bulk load), and the SQL
the writers keep it with in each batch's transaction and readers read it with.
`store.kept_counts` holds the arithmetic both stores share.

Never: open connections, commit, or count `scans` anywhere but in `build` and `recount`
(a full scan, at the open that creates or migrates, or for a bulk load): the writers learn
their new keys from their own upsert, and `stats` reads only this table.
"""

from __future__ import annotations

import psycopg

# A count(*) over hundreds of millions of rows takes minutes. Each writer adds to one slot
# it drew at open, so that many writers do not queue on one hot row; readers sum the slots.
COUNT_SLOTS = 64
# newest_scan NULL: not known since the row that held it was deleted by hand.
SCAN_COUNTS_DDL = """
CREATE TABLE scan_counts (
    slot        integer NOT NULL CHECK (slot >= 0),
    service     text COLLATE "C" NOT NULL,
    row_count   bigint  NOT NULL,
    newest_scan bigint,
    PRIMARY KEY (slot, service)
)
"""
# Rows deleted or truncated by hand (an operator, a test) leave the counts right:
# statement-level triggers, which cost nothing on the writers' inserts and updates. Deleting
# the row that held a service's newest time makes it unknown (NULL) in every slot, unless it
# was the service's last row (0: no time, which the next batch's greatest() replaces).
COUNT_DELETIONS = (
    """CREATE FUNCTION miniscan_count_deleted_scans() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO scan_counts (slot, service, row_count, newest_scan)
        SELECT 0, service, -count(*), 0 FROM deleted_scans GROUP BY service ORDER BY service
        ON CONFLICT (slot, service)
        DO UPDATE SET row_count = scan_counts.row_count + excluded.row_count;
        WITH deleted AS (
            SELECT service, max(last_scanned) AS gone FROM deleted_scans GROUP BY service
        ), left_over AS (
            SELECT service, sum(row_count) AS n, max(newest_scan) AS newest FROM scan_counts
            WHERE service IN (SELECT service FROM deleted) GROUP BY service
        )
        UPDATE scan_counts SET newest_scan = CASE WHEN left_over.n = 0 THEN 0 END
        FROM deleted JOIN left_over USING (service)
        WHERE scan_counts.service = deleted.service
            AND (left_over.n = 0 OR deleted.gone >= left_over.newest);
        RETURN NULL;
    END $$""",
    "CREATE TRIGGER scans_count_deleted AFTER DELETE ON scans REFERENCING OLD TABLE AS"
    " deleted_scans FOR EACH STATEMENT EXECUTE FUNCTION miniscan_count_deleted_scans()",
    """CREATE FUNCTION miniscan_count_truncated_scans() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        DELETE FROM scan_counts;
        RETURN NULL;
    END $$""",
    "CREATE TRIGGER scans_count_truncated AFTER TRUNCATE ON scans"
    " FOR EACH STATEMENT EXECUTE FUNCTION miniscan_count_truncated_scans()",
)
COUNT_EXISTING_ROWS = """
INSERT INTO scan_counts (slot, service, row_count, newest_scan)
SELECT 0, service, count(*), max(last_scanned) FROM scans GROUP BY service
"""
# What version 3 had (its functions were miniscan's own), dropped by the migration.
_VERSION_3 = (
    "DROP TRIGGER IF EXISTS scans_count_deleted ON scans",
    "DROP TRIGGER IF EXISTS scans_count_truncated ON scans",
    "DROP FUNCTION IF EXISTS miniscan_count_deleted_scans()",
    "DROP FUNCTION IF EXISTS miniscan_count_truncated_scans()",
    "DROP TABLE IF EXISTS scan_counts",
)

# A writer's batch, after its upsert (store.postgres.upsert gives the new keys per service):
# one row per service of the batch, into the writer's slot, in service order so that two
# writers that drew one slot lock its rows in one order. An unknown newest time stays
# unknown (greatest() would skip the NULL); the WHERE skips rows this batch leaves alone.
KEEP_COUNTS = """
INSERT INTO scan_counts (slot, service, row_count, newest_scan)
SELECT %s, service, row_count, newest_scan
FROM unnest(%s::text[], %s::bigint[], %s::bigint[]) AS kept(service, row_count, newest_scan)
ORDER BY service COLLATE "C"
ON CONFLICT (slot, service) DO UPDATE SET
    row_count = scan_counts.row_count + excluded.row_count,
    newest_scan = CASE WHEN scan_counts.newest_scan IS NULL THEN NULL
                       ELSE greatest(scan_counts.newest_scan, excluded.newest_scan) END
WHERE excluded.row_count <> 0 OR excluded.newest_scan > scan_counts.newest_scan
"""
# The sum of all slots: other writers' keys included.
READ_ROW_COUNT = "SELECT coalesce(sum(row_count), 0)::bigint FROM scan_counts"
# What store.kept_counts.read_kept_counts takes.
READ_BY_SERVICE = (
    "SELECT service, sum(row_count)::bigint, max(newest_scan),"
    " count(*) - count(newest_scan) FROM scan_counts GROUP BY service"
)


def build(conn: psycopg.Connection) -> None:
    """Create `scan_counts` and its triggers and count the rows of scans into it: one full
    scan, in the caller's transaction (which must keep writers of an older version out: see
    store.postgres.schema)."""
    for statement in (SCAN_COUNTS_DDL, *COUNT_DELETIONS, COUNT_EXISTING_ROWS):
        conn.execute(statement)


def replace_version_3(conn: psycopg.Connection) -> None:
    """Drop version 3's `scan_counts` and triggers where there are any, then `build`."""
    for statement in _VERSION_3:
        conn.execute(statement)
    build(conn)


def recount(conn: psycopg.Connection) -> None:
    """Set the kept counts from the rows of scans (one full scan, the caller's transaction);
    unknown newest times become known again."""
    conn.execute("DELETE FROM scan_counts")
    conn.execute(COUNT_EXISTING_ROWS)
