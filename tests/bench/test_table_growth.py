"""The table-growth benchmark's parts: its three spellings of one row agree, its bulk loads
leave the tables as the writer keeps them, and a tiny run prints every figure and verdict.

The figures of a tiny run mean nothing; bench/table_growth.py at full size is a benchmark,
never part of `make test` (issue 26)."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
from pathlib import Path

import apsw
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import table_keys  # noqa: E402
import table_load  # noqa: E402

# Both slots of the first hosts, IPv6 hosts (h % 16 == 0), large numbers near the top of
# the preload's range, and a backlog's new key.
SAMPLE_KEYS = [*range(64), 99_999_999, 12_345_678, 2_000_000_001,
               (table_keys.NEW_HOSTS_FROM + 5) * 2 + 1]  # fmt: skip


def _expected(k: int, pool: list[str]) -> tuple:
    r = table_keys.row_of(k, pool)
    return (r.ip, r.port, r.service, r.timestamp, r.response, r.data_version,
            table_keys.first_seen_of(k))  # fmt: skip


def test_python_rows_are_canonical_and_unique() -> None:
    pool = table_keys.responses()
    rows = [table_keys.row_of(k, pool) for k in range(50_000)]
    assert len({r.key for r in rows}) == len(rows)
    assert all(str(ipaddress.ip_address(r.ip)) == r.ip for r in rows)
    assert abs(sum(":" in r.ip for r in rows) - len(rows) / table_keys.IPV6_EVERY) <= 2
    assert all(table_keys.first_seen_of(k) <= rows[k].timestamp for k in range(len(rows)))
    new = table_keys.backlog(rows=1000, messages=200, run=3, pool=pool)
    assert len(new) == 200 and sum(r.timestamp >= table_keys.UPDATE_TS for r in new) == 200


def test_sqlite_sql_spells_the_same_rows() -> None:
    pool = table_keys.responses()
    conn = apsw.Connection(":memory:")
    conn.execute("CREATE TEMP TABLE pairs (i INTEGER PRIMARY KEY, port INTEGER, service TEXT)")
    conn.executemany("INSERT INTO temp.pairs VALUES (?, ?, ?)", table_load._pairs_rows())
    conn.execute("CREATE TEMP TABLE pool (id INTEGER PRIMARY KEY, response TEXT)")
    conn.executemany("INSERT INTO temp.pool VALUES (?, ?)", table_load._pool_rows())
    for k in SAMPLE_KEYS:
        got = conn.execute(f"SELECT {table_keys.sqlite_select(':k')}", {"k": k}).fetchall()[0]
        assert got == _expected(k, pool), k


def test_postgres_sql_spells_the_same_rows(postgres_url: str) -> None:
    psycopg = pytest.importorskip("psycopg")
    pool = table_keys.responses()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        table_load._postgres_helpers(conn)
        for k in SAMPLE_KEYS:
            got = conn.execute(f"SELECT {table_keys.postgres_select(f'{k}::bigint')}").fetchone()
            assert (*got[:4], bytes(got[4]).decode(), *got[5:]) == _expected(k, pool), k


def test_sqlite_bulk_load_keeps_the_writers_counts(tmp_path) -> None:
    from store.sqlite.reader import SqliteReader
    from store.sqlite.writer import ScanStore

    path = str(tmp_path / "grown.db")
    ScanStore.open(path).close()
    table_load.load_sqlite(path, 0, 3000, lambda line: None)
    table_load.load_sqlite(path, 3000, 5000, lambda line: None)
    with ScanStore.open(path) as store:
        assert store.row_count() == 5000
        assert store.synchronous == "FULL"
    assert apsw.Connection(path).pragma("journal_mode") == "wal"  # set back after the load
    with SqliteReader.open(path) as reader:
        assert reader.read_stats().scan_rows == 5000
        r = table_keys.row_of(4321, table_keys.responses())
        assert [row.response for row in reader.find_scans(ip=r.ip, port=r.port)] == [r.response]


def test_tiny_run_prints_every_figure_and_verdict(tmp_path) -> None:
    out_json = tmp_path / "growth.json"
    done = subprocess.run(
        [sys.executable, str(BENCH / "table_growth.py"), "--sizes", "3K", "--backlog", "400",
         "--rounds", "1", "--bloat-rows", "2K", "--dir", str(tmp_path / "db"),
         "--json", str(out_json), "--plot", ""],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(out_json.read_text())
    assert [(r["store"], r["rows"]) for r in results["sizes"]] == [
        ("sqlite", 3000), ("postgres", 3000)]
    for r in results["sizes"]:
        assert r["writer_msgs_per_s"] > 0 and r["raw_msgs_per_s"] > 0 and r["disk_bytes"] > 0
    assert results["bloat"]["after"]["disk_bytes"] >= results["bloat"]["before"]["disk_bytes"]
    assert "verdicts (issue 26):" in done.stdout
    assert "NOT MEASURED postgres: drain at 100,000,000 rows" in done.stdout
    assert not (tmp_path / "db").exists()  # its databases are gone without --keep
