"""The kept counts of a SQLite file's `scans` (schema version 4, issue 26): the table, its
trigger, and the statements that keep and read it.

Owns: `scan_counts` (rows and newest scan time per service, one slot: SQLite has one
writer), the trigger that keeps it right when rows are deleted by hand, building it (at
creation, at the 3 -> 4 migration, and in `recount_scans` after a bulk load), and the SQL
the writer keeps it with in each batch's transaction and readers read it with.
`store.kept_counts` holds the arithmetic both stores share.

Never: open connections, commit, or count `scans` anywhere but in `build` (one full scan,
at the open that creates or migrates, or for a bulk load): the writer and `stats` read only
this table and the new rows of a batch.
"""

from __future__ import annotations

import apsw

# One row per (slot, service); the slot is always 0 here, and is kept so that both stores
# share one design of the table (PostgreSQL's writers each add to one of 64 slots).
# newest_scan NULL: not known since the row that held it was deleted by hand.
SCAN_COUNTS_DDL = """
CREATE TABLE scan_counts (
    slot        INTEGER NOT NULL CHECK (typeof(slot) = 'integer' AND slot >= 0),
    service     TEXT    NOT NULL CHECK (typeof(service) = 'text'),
    row_count   INTEGER NOT NULL CHECK (typeof(row_count) = 'integer'),
    newest_scan INTEGER CHECK (newest_scan IS NULL OR typeof(newest_scan) = 'integer'),
    PRIMARY KEY (slot, service)
)
"""
# Rows deleted by hand (an operator, a test) leave the counts right; deleting the row that
# held a service's newest time makes that time unknown, unless it was the service's last row
# (0: no time, which the next batch's max() replaces). The writer never deletes, so the
# trigger costs its upserts nothing. A row never changes service (it is part of the key).
COUNT_DELETIONS = """
CREATE TRIGGER scans_count_deleted AFTER DELETE ON scans
BEGIN
    UPDATE scan_counts SET
        row_count = row_count - 1,
        newest_scan = CASE WHEN row_count = 1 THEN 0
                           WHEN old.last_scanned >= newest_scan THEN NULL
                           ELSE newest_scan END
    WHERE slot = 0 AND service = old.service;
END
"""
COUNT_EXISTING_ROWS = """
INSERT INTO scan_counts (slot, service, row_count, newest_scan)
SELECT 0, service, count(*), max(last_scanned) FROM scans GROUP BY service
"""

# The writer, in each batch's transaction: new rows always get a rowid above the previous
# maximum, so this reads only the rows the batch inserted, never the whole table.
NEW_KEYS_BY_SERVICE = "SELECT service, count(*) FROM scans WHERE rowid > ? GROUP BY service"
# SQLite's max() of a NULL is NULL: an unknown newest time stays unknown. The WHERE skips a
# service whose figures this batch does not change.
KEEP_COUNTS = """
INSERT INTO scan_counts (slot, service, row_count, newest_scan) VALUES (0, ?, ?, ?)
ON CONFLICT (slot, service) DO UPDATE SET
    row_count = row_count + excluded.row_count,
    newest_scan = max(newest_scan, excluded.newest_scan)
WHERE excluded.row_count <> 0 OR excluded.newest_scan > newest_scan
"""
READ_ROW_COUNT = "SELECT coalesce(sum(row_count), 0) FROM scan_counts"
# What store.kept_counts.read_kept_counts takes.
READ_BY_SERVICE = (
    "SELECT service, sum(row_count), max(newest_scan), count(*) - count(newest_scan)"
    " FROM scan_counts GROUP BY service"
)


def build(conn: apsw.Connection) -> None:
    """Create `scan_counts` and its trigger and count the rows of scans into it: one full
    scan, in the caller's transaction."""
    for statement in (SCAN_COUNTS_DDL, COUNT_DELETIONS, COUNT_EXISTING_ROWS):
        conn.execute(statement)


def replace_version_3(conn: apsw.Connection) -> None:
    """Drop version 3's `scan_counts` and trigger where there are any, then `build`."""
    conn.execute("DROP TRIGGER IF EXISTS scans_count_deleted")
    conn.execute("DROP TABLE IF EXISTS scan_counts")
    build(conn)


def recount(conn: apsw.Connection) -> None:
    """Set the kept counts from the rows of scans (one full scan, the caller's transaction);
    unknown newest times become known again."""
    conn.execute("DELETE FROM scan_counts")
    conn.execute(COUNT_EXISTING_ROWS)
