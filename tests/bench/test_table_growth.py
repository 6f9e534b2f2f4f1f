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
    table_load.sqlite_helpers(conn)
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
         "--rounds", "1", "--warmup", "1", "--bloat-rows", "2K", "--dir", str(tmp_path / "db"),
         "--json", str(out_json), "--plot", ""],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(out_json.read_text())
    assert [(r["store"], r["rows"]) for r in results["sizes"]] == [
        ("sqlite", 3000), ("postgres", 3000)]
    for r in results["sizes"]:
        assert r["writer_msgs_per_s"] > 0 and r["raw_msgs_per_s"] > 0 and r["disk_bytes"] > 0
        assert len(r["warmup_msgs_per_s"]) == 1 and len(r["writer_runs_msgs_per_s"]) == 1
    assert results["bloat"]["after"]["disk_bytes"] >= results["bloat"]["before"]["disk_bytes"]
    assert "verdicts (issue 26):" in done.stdout
    assert "NOT MEASURED postgres: drain at 100,000,000 rows" in done.stdout
    assert not (tmp_path / "db").exists()  # its databases are gone without --keep


def _size(store: str, size: int, rate: float, peak: float, stats: float = 0.01) -> dict:
    return {"store": store, "size": size, "rows": max(size, 40_000), "writer_msgs_per_s": rate,
            "raw_msgs_per_s": rate, "writer_open_s": 0.1, "writer_peak_mib": peak,
            "stats_s": stats, "stats_in_process_s": stats, "query_cli_s": 0.2,
            "query_p50_ms": 0.1, "query_p99_ms": 0.5, "disk_bytes": 100 * max(size, 1),
            "bytes_per_row": 100.0, "load_s": 1.0}  # fmt: skip


def test_verdicts_of_merged_runs_say_met_missed_and_not_measured(capsys) -> None:
    import table_growth_report as report

    sqlite = {"machine": "m", "started": "t1", "seconds": 1.0, "sizes": [
        _size("sqlite", 0, 1000.0, 100.0), _size("sqlite", 10_000_000, 700.0, 120.0),
        _size("sqlite", 100_000_000, 650.0, 200.0, stats=1.5)]}  # fmt: skip
    bloat = {"rows": 10, "rounds": 3, "fillfactor": 90, "vacuum_scale_factor": 0.02,
             "seconds": 1.0, "before": {"disk_bytes": 100, "table_bytes": 80, "index_bytes": 20},
             "after": {"disk_bytes": 120, "table_bytes": 95, "index_bytes": 25}, "ratio": 1.2}
    postgres = {"machine": "m", "started": "t2", "seconds": 2.0, "bloat": bloat, "sizes": [
        _size("postgres", 0, 1000.0, 50.0), _size("postgres", 10_000_000, 900.0, 60.0)]}
    found = {what: (met, figure) for what, met, figure in report.verdicts(report.merge(
        [sqlite, postgres]))}  # fmt: skip
    assert found["sqlite: drain at 10,000,000 rows >= 0.8x the near-empty table's"] == (
        False, "0.70x")
    assert found["sqlite: drain at 100,000,000 rows >= 0.6x the near-empty table's"] == (
        True, "0.65x")
    assert found["postgres: drain at 100,000,000 rows >= 0.6x the near-empty table's"] == (
        None, "not measured")
    assert found["sqlite: writer's peak memory at 100,000,000 rows within +50 MiB of empty"][0] \
        is False
    assert found["sqlite: miniscan stats < 1 s at 100,000,000 rows"] == (False, "1.50 s")
    bloat_verdict = [v for k, v in found.items() if k.startswith("postgres: size after")]
    assert bloat_verdict == [(True, "1.20x")]
    assert report.print_report(report.merge([sqlite, postgres])) == 3
    assert "NOT MEASURED postgres: drain at 100,000,000" in capsys.readouterr().out
