"""The counts the writers keep per service (schema version 4, issue 26), on both stores: right
after inserts, updates, deletes and truncates by hand, after a bulk load and `recount_scans`,
and after the migration from a real version-3 file or database (its DDL below is version 3's,
as miniscan 9030d57 created it)."""

from __future__ import annotations

from collections.abc import Iterator

import apsw
import psycopg
import pytest

from contracts.records import ScanRecord
from store.backend import open_store
from store.errors import SchemaError
from store.postgres import schema as postgres_schema
from store.reader import open_store_reader
from store.sqlite import schema as sqlite_schema


def scan(ip: str, service: str = "HTTP", ts: int = 100, port: int = 80) -> ScanRecord:
    return ScanRecord(ip, port, service, ts, f"banner {ts}", 1)


class Target:
    """One store under test and a plain connection to change it by hand."""

    def __init__(self, name: str, target: str) -> None:
        self.name, self.target = name, target

    def run(self, *statements: str) -> None:
        if self.name == "sqlite":
            conn = apsw.Connection(self.target)
            with conn:
                for statement in statements:
                    conn.execute(statement)
            conn.close()
        else:
            with psycopg.connect(self.target, autocommit=True) as conn:
                for statement in statements:
                    conn.execute(statement)

    def kept(self) -> tuple[int, list[tuple[str, int]], int | None]:
        """Rows, services and newest scan as `stats` reads them by default."""
        with open_store_reader(self.target) as reader:
            stats = reader.read_stats()
        return stats.scan_rows, stats.services, stats.newest_scan

    def recount(self) -> None:
        if self.name == "sqlite":
            conn = apsw.Connection(self.target)
            with conn:
                sqlite_schema.recount_scans(conn)
            conn.close()
        else:
            with psycopg.connect(self.target) as conn:
                postgres_schema.recount_scans(conn)


@pytest.fixture(params=["sqlite", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path) -> Target:
    if request.param == "sqlite":
        return Target("sqlite", str(tmp_path / "scan_results.db"))
    return Target("postgres", request.getfixturevalue("postgres_url"))


@pytest.fixture
def written(target: Target) -> Iterator[Target]:
    """Three HTTP rows and one SSH row, newest scan 300 (HTTP) and 250 (SSH)."""
    with open_store(target.target) as store:
        store.write_batch([scan("10.0.0.1"), scan("10.0.0.2", ts=300), scan("10.0.0.3", ts=200),
                           scan("10.0.0.1", "SSH", 250, 22)])  # fmt: skip
    yield target


def test_inserts_count_per_service_and_updates_change_no_count(written) -> None:
    assert written.kept() == (4, [("HTTP", 3), ("SSH", 1)], 300)
    with open_store(written.target) as store:
        result = store.write_batch([scan("10.0.0.1", ts=400), scan("10.0.0.2", ts=50),
                                    scan("10.0.0.9", "DNS", 10, 53)])  # fmt: skip
        assert (result.new_keys, store.row_count()) == (1, 5)
    assert written.kept() == (5, [("HTTP", 3), ("DNS", 1), ("SSH", 1)], 400)


def test_deletes_by_hand_follow_the_service_and_the_newest_scan(written) -> None:
    written.run("DELETE FROM scans WHERE ip = '10.0.0.3'")  # an old HTTP row
    assert written.kept() == (3, [("HTTP", 2), ("SSH", 1)], 300)
    written.run("DELETE FROM scans WHERE ip = '10.0.0.2'")  # the row of the newest scan
    rows, services, newest = written.kept()
    assert (rows, services, newest) == (2, [("HTTP", 1), ("SSH", 1)], None)
    with open_store_reader(written.target) as reader:
        stats = reader.read_stats()
        assert "newest_scan" not in stats.exact  # unknown, not 300 and not a guess
        assert reader.read_stats(full=True).newest_scan == 250
    with open_store(written.target) as store:  # later batches cannot make it known again...
        store.write_batch([scan("10.0.0.4", ts=500)])
    assert written.kept()[2] is None
    written.recount()  # ...recount_scans does
    assert written.kept() == (3, [("HTTP", 2), ("SSH", 1)], 500)


def test_deleting_a_services_last_rows_keeps_the_newest_scan_known(written) -> None:
    written.run("DELETE FROM scans WHERE service = 'HTTP'")
    assert written.kept() == (1, [("SSH", 1)], 250)
    with open_store(written.target) as store:
        store.write_batch([scan("10.0.0.5", ts=120)])
        assert store.row_count() == 2
    assert written.kept() == (2, [("HTTP", 1), ("SSH", 1)], 250)


def test_emptying_the_table_by_hand_empties_the_counts(written) -> None:
    written.run("TRUNCATE scans" if written.name == "postgres" else "DELETE FROM scans")
    assert written.kept() == (0, [], None)
    with open_store(written.target) as store:
        assert store.row_count() == 0
        store.write_batch([scan("10.0.0.6", "SSH", 70, 22)])
    assert written.kept() == (1, [("SSH", 1)], 70)


def test_recount_scans_rebuilds_every_kept_figure_after_a_bulk_load(written) -> None:
    response = "'x'" if written.name == "sqlite" else "'x'::bytea"
    written.run(
        "INSERT INTO scans (ip, port, service, last_scanned, response, data_version, first_seen)"
        f" VALUES ('10.1.0.1', 53, 'DNS', 900, {response}, 1, 900)"
    )
    assert written.kept() == (4, [("HTTP", 3), ("SSH", 1)], 300)  # behind the writer's back
    written.recount()
    assert written.kept() == (5, [("HTTP", 3), ("DNS", 1), ("SSH", 1)], 900)
    with open_store(written.target) as store:
        assert store.row_count() == 5


def test_writers_on_different_slots_add_up(postgres_url) -> None:
    stores = [open_store(postgres_url) for _ in range(2)]
    stores[0]._count_slot, stores[1]._count_slot = 3, 40
    try:
        stores[0].write_batch([scan("10.0.0.1"), scan("10.0.0.2", "SSH", 700, 22)])
        stores[1].write_batch([scan("10.0.0.1", ts=800), scan("10.0.0.3"), scan("10.0.0.4")])
        assert stores[1].row_count() == 4
    finally:
        for store in stores:
            store.close()
    assert Target("postgres", postgres_url).kept() == (4, [("HTTP", 3), ("SSH", 1)], 800)
    with psycopg.connect(postgres_url) as conn:
        slots = {slot for (slot,) in conn.execute("SELECT slot FROM scan_counts")}
    assert slots == {3, 40}


# Version 3, as miniscan 9030d57 created it: one row count, slot 0 (SQLite) or 64 slots.
SQLITE_V3_COUNTS = (
    "CREATE TABLE scan_counts (slot INTEGER PRIMARY KEY,"
    " row_count INTEGER NOT NULL CHECK (typeof(row_count) = 'integer'))",
    "INSERT INTO scan_counts (slot, row_count) SELECT 0, count(*) FROM scans",
    "CREATE TRIGGER scans_count_deleted AFTER DELETE ON scans"
    " BEGIN UPDATE scan_counts SET row_count = row_count - 1 WHERE slot = 0; END",
)
POSTGRES_V3_COUNTS = (
    "CREATE TABLE scan_counts (slot integer PRIMARY KEY CHECK (slot >= 0),"
    " row_count bigint NOT NULL)",
    "INSERT INTO scan_counts (slot, row_count) SELECT 0, count(*) FROM scans",
    """CREATE FUNCTION miniscan_count_deleted_scans() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO scan_counts (slot, row_count) SELECT 0, -count(*) FROM deleted_scans
        ON CONFLICT (slot) DO UPDATE SET row_count = scan_counts.row_count + excluded.row_count;
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
V3_ROWS = (
    "INSERT INTO scans (ip, port, service, last_scanned, response, data_version, first_seen)"
    " VALUES ('10.0.0.1', 80, 'HTTP', 100, {r}, 1, 100), ('10.0.0.2', 80, 'HTTP', 300, {r}, 1,"
    " 300), ('10.0.0.1', 22, 'SSH', 200, {r}, 2, 150)"
)


def make_v3(target: Target) -> None:
    if target.name == "sqlite":
        s = sqlite_schema
        target.run(
            s.SCANS_DDL,
            s.DEAD_LETTERS_DDL,
            *s.DEAD_LETTERS_INDEXES,
            V3_ROWS.format(r="'banner'"),
            *SQLITE_V3_COUNTS,
            f"PRAGMA application_id = {s.APPLICATION_ID}",
            "PRAGMA user_version = 3",
        )
    else:
        p = postgres_schema
        target.run(
            p.SCANS_DDL,
            p.DEAD_LETTERS_DDL,
            *p.DEAD_LETTERS_INDEXES,
            *p.COLUMN_COMMENTS,
            V3_ROWS.format(r="'banner'::bytea"),
            *POSTGRES_V3_COUNTS,
            *(f"COMMENT ON TABLE {t} IS 'miniscan schema 3'" for t in p.TABLES),
        )


def test_version_3_is_migrated_to_counts_per_service(target) -> None:
    make_v3(target)
    with pytest.raises(SchemaError, match="older than this miniscan"):
        open_store_reader(target.target)  # readers never migrate
    with open_store(target.target) as store:
        assert (store.migrated_from, store.row_count()) == (3, 3)
        store.write_batch([scan("10.0.0.3", "SSH", 400, 22)])
    assert target.kept() == (4, [("HTTP", 2), ("SSH", 2)], 400)
    target.run("DELETE FROM scans WHERE ip = '10.0.0.1' AND port = 80")  # version 4's trigger
    assert target.kept() == (3, [("SSH", 2), ("HTTP", 1)], 400)
    with open_store(target.target) as again:
        assert (again.migrated_from, again.row_count()) == (None, 3)
    with open_store_reader(target.target) as reader:
        stats = reader.read_stats(full=True)
    assert (stats.schema_version, stats.distinct_ips) == (4, 3)
    assert stats.data_versions == [(1, 2), (2, 1)]
