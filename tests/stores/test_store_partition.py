"""`miniscan partition` against a real PostgreSQL: every row moves into hash partitions of
ip with the layout, the stamp, the kept counts' triggers and the grants; the writer then
applies the same rules as on a plain table (newest wins, new keys counted once, also by two
writers at once), including a writer that was running when the table was partitioned; and
what is refused (partitioned already, a SQLite file, a count out of range, no tables).

The writer's and the readers' shared rules run on a partitioned table too, in
tests/stores/test_store_conformance.py and tests/stores/test_store_postgres.py."""

from __future__ import annotations

import random
import re
import threading
import uuid

import psycopg
import pytest
from click.testing import CliRunner, Result
from postgres_server import sql
from test_store_postgres import InThread, expected_table, scan, table

from commands import partition as partition_cli
from commands.miniscan import main
from contracts.records import ScanRecord
from store.errors import SchemaError
from store.filters import find_scans_sql
from store.postgres import partition, schema
from store.postgres import writer as postgres_writer
from store.postgres.connection import connect, connect_existing, describe
from store.postgres.writer import PostgresStore
from store.reader import open_store_reader
from store.rows import StoreStats
from testkit.waiting import wait_until

SERVICES = ("HTTP", "SSH", "HTTPS", "FTP")


def records(n: int, ts: int = 100, start: int = 0) -> list[ScanRecord]:
    return [ScanRecord(f"10.{i >> 8 & 255}.{i & 255}.1", 80 + i % 3, SERVICES[i % 4], ts,
                       f"r{i}", 1) for i in range(start, start + n)]  # fmt: skip


def run_partition(target: str, *args: str) -> Result:
    return CliRunner().invoke(main, ["partition", *args], env={"MINISCAN_DB": target})


def kept(url: str) -> tuple[int, dict[str, int]]:
    """Rows and rows per service, as `stats` reads them from the kept counts."""
    with open_store_reader(url) as reader:
        stats = reader.read_stats(top_services=100)
    return stats.scan_rows, dict(stats.services)


def counted(url: str) -> tuple[int, dict[str, int]]:
    """The same figures, counted from the rows themselves."""
    rows = sql(url, "SELECT service, count(*) FROM scans GROUP BY service")
    return sum(n for _, n in rows), dict(rows)


def test_partition_moves_every_row_and_keeps_the_layout(postgres_url) -> None:
    with PostgresStore.open(postgres_url) as store:
        for start in range(0, 500, 100):
            store.write_batch(records(100, start=start))
    before, columns = table(postgres_url), "SELECT * FROM information_schema.columns"
    layout = sql(postgres_url, f"{columns} WHERE table_name = 'scans' ORDER BY ordinal_position")
    result = run_partition(postgres_url, "--partitions", "8")
    assert result.exit_code == 0, result.output
    where = describe(postgres_url)
    assert result.output == f"{where}: scans holds 500 rows in 8 partitions by hash of ip\n"
    with connect_existing(postgres_url) as conn:
        assert partition.partition_count(conn) == 8 and partition.scans_partitioned(conn)
        assert schema.read_schema_version(conn, where) == schema.CURRENT_VERSION
    spread = sql(postgres_url, "SELECT tableoid::regclass::text, count(*) FROM scans GROUP BY 1")
    assert sorted(name for name, _ in spread) == [f"scans_p{r:02d}" for r in range(8)]
    assert sum(n for _, n in spread) == 500 and min(n for _, n in spread) > 30
    assert table(postgres_url) == before
    assert sql(postgres_url, f"{columns} WHERE table_name = 'scans' ORDER BY ordinal_position") == (
        layout
    )
    assert sql(postgres_url, "SELECT to_regclass('scans_unpartitioned')") == [(None,)]
    triggers = sql(postgres_url, "SELECT tgname FROM pg_trigger WHERE tgrelid = 'scans'::regclass")
    assert sorted(triggers) == [("scans_count_deleted",), ("scans_count_truncated",)]
    assert kept(postgres_url) == counted(postgres_url) == (500, {s: 125 for s in SERVICES})
    with PostgresStore.open(postgres_url) as again:
        assert again.migrated_from is None and again.row_count() == 500


def test_the_writer_does_on_partitions_what_it_does_on_a_plain_table(
    postgres_url, partitioned_postgres_url
) -> None:
    """The same batches give the same results, table and counts on both layouts: new keys,
    newer and older scans, a key twice in one batch, dead letters."""
    batches = [
        records(200),
        [scan(ts=50, ip="10.0.0.2"), scan(ts=60, ip="10.0.0.2")],
        [scan(ts=70, response="newer", ip="10.0.0.2"), scan(ts=10, ip="10.0.0.2", port=22)],
        [scan(ts=20, response="older", ip="10.0.0.2")],  # first_seen only
        [*records(50, ts=300, start=150), *records(50, ts=1, start=10)],
        [scan(ts=ts, port=9, response=text) for ts, text in ((5, "a"), (7, "b"), (6, "c"))],
        [scan(ts=7, port=9, response="b")],  # the same again: nothing changes
    ]
    outcomes = {}
    for url in (postgres_url, partitioned_postgres_url):
        with PostgresStore.open(url) as store:
            results = [store.write_batch(batch) for batch in batches]
            outcomes[url] = (results, store.row_count(), table(url), kept(url))
    assert outcomes[postgres_url] == outcomes[partitioned_postgres_url]
    results, rows, final, counts = outcomes[partitioned_postgres_url]
    assert [r.new_keys for r in results] == [200, 1, 1, 0, 0, 1, 0]
    assert [r.changed_keys for r in results] == [200, 1, 2, 1, 100, 1, 0]
    assert rows == 203 and counts == counted(partitioned_postgres_url)
    assert ("10.0.0.2", 80, "HTTP", 70, "newer", 1, 20) in final
    assert ("10.0.0.1", 9, "HTTP", 7, "b", 1, 5) in final


def test_two_writers_inserting_the_same_new_keys_count_each_once(
    postgres_url, partitioned_postgres_url, caplog
) -> None:
    rng = random.Random(26)
    clashes = [scan(rng.randrange(50), ip=f"10.9.0.{n % 40}", port=n % 3) for n in range(200)]
    everything = [*records(300, ts=100), *records(150, ts=200, start=100), *clashes]
    start = threading.Barrier(2)

    def write_all(seed: int) -> int:
        order = random.Random(seed)
        mine = everything[:]
        order.shuffle(mine)
        new_keys = 0
        with PostgresStore.open(partitioned_postgres_url, synchronous="OFF") as store:
            start.wait()
            while mine:
                size = order.randint(20, 120)
                new_keys += store.write_batch(mine[:size]).new_keys
                mine = mine[size:]
        return new_keys

    writers = [InThread(lambda seed=seed: write_all(seed)) for seed in (1, 2)]
    inserted = sum(writer.result(timeout=120) for writer in writers)
    with PostgresStore.open(postgres_url) as alone:
        alone.write_batch(everything)
    keys = len({r.key for r in everything})
    assert inserted == keys  # every new key counted by exactly one of the two writers
    assert table(partitioned_postgres_url) == table(postgres_url) == expected_table(everything)
    assert kept(partitioned_postgres_url) == counted(partitioned_postgres_url) == kept(postgres_url)
    assert "retrying it whole" not in caplog.text  # rows locked in key order: no deadlock


def test_deleting_by_hand_keeps_the_counts_right(partitioned_postgres_url) -> None:
    url = partitioned_postgres_url
    with PostgresStore.open(url) as store:
        store.write_batch([*records(100), scan(ts=900, ip="10.7.7.7")])
    sql(url, "DELETE FROM scans WHERE service = 'SSH'")
    assert kept(url) == counted(url) == (76, {"HTTP": 26, "HTTPS": 25, "FTP": 25})
    sql(url, "DELETE FROM scans WHERE ip = '10.7.7.7'")  # the row of the newest scan
    with open_store_reader(url) as reader:
        assert reader.read_stats().newest_scan is None  # unknown, never wrong
    sql(url, "TRUNCATE scans")
    assert kept(url) == (0, {})


def test_partitioning_twice_or_out_of_range_is_refused_and_changes_nothing(
    partitioned_postgres_url,
) -> None:
    url = partitioned_postgres_url
    PostgresStore.open(url).close()
    before = sql(url, "SELECT relname, relkind FROM pg_class ORDER BY relname")
    again = run_partition(url, "--partitions", "8")
    assert again.exit_code == 3 and "partitioned already; nothing was changed" in again.output
    for count in ("1", "1025"):
        assert run_partition(url, "--partitions", count).exit_code == 2
    assert partition_cli.MAX_PARTITIONS == partition.MAX_PARTITIONS
    with psycopg.connect(url) as conn, pytest.raises(SchemaError, match="2 to 1024"):
        partition.partition_scans(conn, 1, describe(url))
    assert sql(url, "SELECT relname, relkind FROM pg_class ORDER BY relname") == before


def test_a_store_without_tables_or_a_sqlite_file_is_refused(postgres_url, tmp_path) -> None:
    missing = run_partition(postgres_url, "--partitions", "8")
    assert missing.exit_code == 3 and "no miniscan tables" in missing.output
    assert sql(postgres_url, "SELECT to_regclass('scans')") == [(None,)]
    sqlite = tmp_path / "scans.db"
    refused = run_partition(str(sqlite), "--partitions", "8")
    assert refused.exit_code == 2 and "needs a postgresql:// URL" in refused.output
    assert not sqlite.exists()


def test_grants_on_scans_survive_partitioning(postgres_url) -> None:
    PostgresStore.open(postgres_url).close()
    role = f"reader_{uuid.uuid4().hex[:8]}"
    sql(postgres_url, f"CREATE ROLE {role}")
    sql(postgres_url, f"GRANT SELECT ON scans TO {role}")
    assert run_partition(postgres_url, "--partitions", "4").exit_code == 0
    held = "SELECT has_table_privilege(%s, 'scans', %s)"
    assert sql(postgres_url, held, (role, "SELECT")) == [(True,)]
    assert sql(postgres_url, held, (role, "DELETE")) == [(False,)]


def test_a_writer_running_while_scans_is_partitioned_loses_nothing(
    postgres_url, monkeypatch
) -> None:
    """Its next batch is refused (0A000: the upsert's xmax on partitions); the writer looks
    again on a new session and applies the batch in two statements. Batches keep coming
    throughout, and none fails."""
    written: list[ScanRecord] = []
    new_keys, stop = [], threading.Event()
    sessions = []
    monkeypatch.setattr(postgres_writer, "connect", lambda *a: sessions.append(a) or connect(*a))

    def keep_writing() -> None:
        with PostgresStore.open(postgres_url) as store:
            batch = 0
            while not stop.is_set() or batch < 3:
                chunk = [*records(40, ts=batch, start=batch * 20)]  # half new, half updates
                new_keys.append(store.write_batch(chunk).new_keys)
                written.extend(chunk)
                batch += 1
            assert store._partitioned

    writer = InThread(keep_writing)
    wait_until(lambda: len(new_keys) >= 5, 30, "batches on the plain table")
    assert run_partition(postgres_url, "--partitions", "4").exit_code == 0
    done_before = len(new_keys)
    wait_until(lambda: len(new_keys) >= done_before + 5, 30, "batches on the partitions")
    stop.set()
    writer.result(timeout=60)
    keys = len({r.key for r in written})
    assert sum(new_keys) == keys and kept(postgres_url) == counted(postgres_url)
    assert table(postgres_url) == expected_table(written)
    assert len(sessions) == 2  # the open's, and the one that found the partitions


def test_stats_and_query_read_a_partitioned_scans(partitioned_postgres_url) -> None:
    """Sizes are the partitions' (the parent has no storage); the distinct IPs come from the
    partitions' statistics (autovacuum never analyzes the parent), scaled to every row;
    a query by ip reads one partition."""
    url = partitioned_postgres_url
    with PostgresStore.open(url) as store:
        store.write_batch(records(400))  # 400 addresses

    def stats() -> StoreStats:
        with open_store_reader(url) as reader:
            return reader.read_stats()

    assert stats().estimates == {}  # nothing analyzed yet
    leaves = "SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree('scans')"
    assert stats().file_bytes > sql(url, f"{leaves} WHERE isleaf")[0][0] > 0
    sql(url, "ANALYZE scans_p00")  # one partition of four, as autovacuum may leave it
    assert stats().estimates == {"distinct_ips": 400}
    sql(url, "ANALYZE scans")  # the parent's own statistics, by hand
    assert stats().estimates == {"distinct_ips": 400} and stats().scan_rows == 400
    query, params = find_scans_sql("*", "%s", "10.0.7.1", None, None, None, None)
    plan = "\n".join(row[0] for row in sql(url, f"EXPLAIN {query}", tuple(params)))
    assert len(set(re.findall(r"scans_p\d\d", plan))) == 1, plan
    with open_store_reader(url) as reader:
        assert [row.ip for row in reader.find_scans(ip="10.0.7.1")] == ["10.0.7.1"]
