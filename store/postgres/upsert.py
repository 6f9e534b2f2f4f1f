"""The PostgreSQL writer's statements: how a batch reaches `scans` and `dead_letters`.

Owns: the staging table and its COPY, the one upsert that applies the newest-wins rule of
`store.merge` in PostgreSQL's SQL and tells the keys it inserted per service (which
`store.postgres.scan_counts` keeps, issue 26), its two-statement twin for a `scans`
partitioned by `miniscan partition` (`UPSERTS` holds both: the writer picks one), and the
dead-letter insert with its conflict target. `store.postgres.writer` runs them.

Never: open connections, run a statement, or hold the rule in any other form.
"""

from __future__ import annotations

# Fast path: COPY (binary) into a temporary table, then one INSERT ... SELECT ... ORDER BY
# ... ON CONFLICT. Measured against a local PostgreSQL 15 on 2 vCPUs (100-400-byte
# responses, random keys, 1,000 rows per batch): 86-114k rows/s, against 45-54k for one
# INSERT over unnest() of arrays and 36-44k for executemany in pipeline mode (at 5,000 rows
# per batch: 134k / 49k / 31k). This store, through write_batch with synchronous_commit on,
# made 102-106k rows/s with one writer (0.95x the raw COPY path) and 162-173k with 2 or 3.
INCOMING_DDL = """
CREATE TEMPORARY TABLE IF NOT EXISTS miniscan_incoming (
    ip text COLLATE "C", port bigint, service text COLLATE "C", last_scanned bigint,
    response bytea, data_version bigint, first_seen bigint
) ON COMMIT DELETE ROWS
"""
# port is staged as bigint on purpose: psycopg's binary int4 dumper wraps a port of 2**40 to
# 0 without a word (seen here), while int8 refuses what it cannot hold (OverflowError), and
# INSERT then refuses a bigint outside integer's range ("integer out of range"), so a bad
# port is a BatchDataError as on SQLite, never a silently different key.
_COLUMNS = "ip, port, service, last_scanned, response, data_version, first_seen"
COPY_INCOMING = f"COPY miniscan_incoming ({_COLUMNS}) FROM STDIN (FORMAT BINARY)"
COPY_TYPES = ("text", "int8", "text", "int8", "bytea", "int8", "int8")

# The newest-wins rule of store.merge, as in store.sqlite.writer: a row value compared
# lexicographically; response is bytea, so the tie-break is by UTF-8 bytes, never by
# collation. The WHERE skips rows that would not change, so only real changes come back.
# `xmax = 0` is true of a row this statement inserted and false of one it updated (the
# update leaves this transaction's id there): that is how new keys are told from changed
# ones in the same statement, with no second look at the table that another writer could
# change in between. Per service, for the kept counts: (service, inserted, changed).
_NEWER = (
    "(excluded.last_scanned, excluded.response, excluded.data_version)"
    " > (scans.last_scanned, scans.response, scans.data_version)"
)
UPSERT_FROM_INCOMING = f"""
WITH upserted AS (
    INSERT INTO scans ({_COLUMNS})
    SELECT {_COLUMNS} FROM miniscan_incoming ORDER BY ip, port, service
    ON CONFLICT (ip, port, service) DO UPDATE SET
        last_scanned = greatest(scans.last_scanned, excluded.last_scanned),
        response     = CASE WHEN {_NEWER} THEN excluded.response ELSE scans.response END,
        data_version = CASE WHEN {_NEWER} THEN excluded.data_version
                            ELSE scans.data_version END,
        first_seen   = least(scans.first_seen, excluded.first_seen)
    WHERE {_NEWER} OR excluded.first_seen < scans.first_seen
    RETURNING service, xmax = 0 AS inserted
)
SELECT service, count(*) FILTER (WHERE inserted), count(*) FROM upserted GROUP BY service
"""

# On a partitioned `scans` (store.postgres.partition) PostgreSQL 15 refuses `xmax` in the
# upsert's RETURNING ("cannot retrieve a system column in this context", 0A000), so a batch
# there is two statements in its one transaction, each giving (service, inserted, changed):
# 1. the new keys: an upsert whose DO UPDATE never updates (WHERE false), so what comes back
#    is exactly the keys it inserted, while every key that existed is locked all the same
#    (PostgreSQL locks a conflicting row before it looks at the WHERE), in key order as the
#    upsert does. A key another writer is inserting at the same time makes it wait for that
#    commit, then conflict: counted once, by the writer that inserted it.
# 2. the upsert itself, minus `xmax`: every key exists now, locked by this transaction, so it
#    only updates (a delete by hand cannot slip in between: it waits on those locks) and
#    never waits; the keys statement 1 inserted compare equal and are skipped.
# No join: an UPDATE ... FROM the staged rows in its place made 0.26x the plain table's
# rows/s (on 50k rows the planner merge-joined the whole table for each batch), and it locks
# rows in its join's order, not key order. bench/partition_cost.py measures these two.
INSERT_NEW_FROM_INCOMING = f"""
WITH inserted AS (
    INSERT INTO scans ({_COLUMNS})
    SELECT {_COLUMNS} FROM miniscan_incoming ORDER BY ip, port, service
    ON CONFLICT (ip, port, service) DO UPDATE SET last_scanned = scans.last_scanned WHERE false
    RETURNING service
)
SELECT service, count(*), count(*) FROM inserted GROUP BY service
"""
UPDATE_LOCKED_FROM_INCOMING = UPSERT_FROM_INCOMING.replace(
    "RETURNING service, xmax = 0 AS inserted", "RETURNING service, false AS inserted"
)
# What a batch runs on `scans`, by whether it is partitioned: the plain table keeps its one
# measured upsert.
UPSERTS = {
    False: (UPSERT_FROM_INCOMING,),
    True: (INSERT_NEW_FROM_INCOMING, UPDATE_LOCKED_FROM_INCOMING),
}

# Dead letters are few: one statement over arrays, in identity order (after the scans, so
# every writer takes its locks in one global order). Ids follow that order within a batch.
INSERT_DEAD_LETTERS = """
INSERT INTO dead_letters (payload, reason, detail, message_id, received_at, payload_sha256)
SELECT * FROM unnest(%s::bytea[], %s::text[], %s::text[], %s::text[], %s::float8[], %s::bytea[])
    AS letter(payload, reason, detail, message_id, received_at, payload_sha256)
ORDER BY message_id COLLATE "C", payload_sha256
ON CONFLICT (message_id, payload_sha256) WHERE message_id <> '' DO NOTHING
"""
