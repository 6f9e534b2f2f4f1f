"""The store's `miniscan` subcommands, run through the real `miniscan` group: formats,
filters, exit codes, and that read commands never create, migrate or block the database."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
from pathlib import Path

import apsw
import pytest
from click.testing import CliRunner

from commands.miniscan import main as miniscan
from contracts.records import DeadLetter, ScanRecord
from store.sqlite.schema import LEGACY_V0_DDL
from store.sqlite.writer import ScanStore

BINARY_PAYLOAD = b'\x00\xff{"ip": "1.1.1.7"'


@pytest.fixture
def db(tmp_path) -> Path:
    path = tmp_path / "scan_results.db"
    with ScanStore.open(path) as store:
        store.write_batch(
            [
                ScanRecord("1.1.1.7", 80, "HTTP", 1_714_560_000, "HTTP/1.1 200 OK\r\nServer: x", 2),
                ScanRecord("1.1.1.7", 22, "SSH", 1_714_563_600, "SSH-2.0-OpenSSH_9.6", 1),
                ScanRecord("1.1.1.8", 443, "HTTPS", 1_714_500_000, 'tls, "quoted"', 1),
            ],
            [
                DeadLetter(BINARY_PAYLOAD, "invalid_json", "m1", 1_714_560_000.5, "bad"),
                DeadLetter(b'{"port": 70000}', "bad_port", "m2", 1_714_560_001.0),
                DeadLetter(b"{", "invalid_json", "m3", 1_714_560_002.0),
            ],
        )
    return path


def run(*args: str, db: Path | None = None):
    extra = ["--db", str(db)] if db is not None else []
    return CliRunner().invoke(miniscan, [*args, *extra], catch_exceptions=False)


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def test_query_prints_json_lines_when_not_on_a_terminal(db) -> None:
    result = run("query", db=db)
    assert result.exit_code == 0, result.output
    found = json_lines(result.stdout)
    assert [(r["ip"], r["port"], r["service"]) for r in found] == [
        ("1.1.1.7", 22, "SSH"),
        ("1.1.1.7", 80, "HTTP"),
        ("1.1.1.8", 443, "HTTPS"),
    ]
    assert found[1] == {
        "ip": "1.1.1.7", "port": 80, "service": "HTTP", "last_scanned": 1_714_560_000,
        "first_seen": 1_714_560_000, "response": "HTTP/1.1 200 OK\r\nServer: x",
        "data_version": 2,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("args", "expected_ports"),
    [
        (["--ip", "1.1.1.7"], [22, 80]),
        (["--ip", "1.1.1.7", "--port", "80"], [80]),
        (["--service", "ssh"], [22]),  # any case
        (["--since", "1714560000"], [22, 80]),
        (["--since", "2024-05-01T11:00Z"], [22]),
        (["--since", "2024-05-01T09:00:00"], [22, 80]),  # naive means UTC
        (["--ip", "9.9.9.9"], []),
    ],
)
def test_query_filters(db, args, expected_ports) -> None:
    result = run("query", *args, db=db)
    assert result.exit_code == 0, result.output
    assert [r["port"] for r in json_lines(result.stdout)] == expected_ports


def test_query_since_accepts_an_age(db) -> None:
    # Everything in the fixture is years old: an age of one hour finds nothing, 100 weeks all.
    assert run("query", "--since", "1h", db=db).stdout == ""
    assert len(json_lines(run("query", "--since", "5200w", db=db).stdout)) == 3


def test_query_csv_and_table(db) -> None:
    as_csv = list(
        csv.reader(io.StringIO(run("query", "--format", "csv", db=db).stdout_bytes.decode()))
    )
    assert as_csv[0] == ["ip", "port", "service", "last_scanned", "first_seen", "response",
                         "data_version"]  # fmt: skip
    assert as_csv[2][5] == "HTTP/1.1 200 OK\r\nServer: x"  # exact, quoted
    assert as_csv[3][5] == 'tls, "quoted"'
    table = run("query", "--format", "table", db=db).stdout.splitlines()
    assert table[0].split() == ["IP", "PORT", "SERVICE", "LAST", "SCANNED", "FIRST", "SEEN",
                                "V", "RESPONSE"]  # fmt: skip
    assert "2024-05-01T10:40:00Z" in table[2] and "HTTP/1.1 200 OK\\r\\nServer: x" in table[2]
    assert len(table) == 4


def test_query_limit_says_when_rows_were_left_out(db) -> None:
    result = run("query", "--limit", "2", db=db)
    assert len(json_lines(result.stdout)) == 2
    assert "showing the first 2 rows" in result.stderr
    full = run("query", "--limit", "0", db=db)
    assert len(json_lines(full.stdout)) == 3 and full.stderr == ""


def test_missing_database_is_one_line_and_exit_3_and_nothing_is_created(tmp_path) -> None:
    missing = tmp_path / "scan_results.db"  # its folder exists: the store says it is missing
    for command in (["query"], ["stats"], ["dead-letters", "list"], ["dead-letters", "show", "1"]):
        result = run(*command, db=missing)
        assert result.exit_code == 3
        assert result.stderr == f"miniscan: no database at {missing}\n"
        assert result.stdout == ""
    assert not missing.exists()


def test_db_path_comes_from_the_environment(db) -> None:
    result = CliRunner().invoke(miniscan, ["query", "--port", "443"], env={"MINISCAN_DB": str(db)})
    assert [r["port"] for r in json_lines(result.stdout)] == [443]


def test_read_commands_do_not_migrate_an_old_database(tmp_path) -> None:
    path = tmp_path / "v0.db"
    conn = apsw.Connection(str(path))
    for ddl in LEGACY_V0_DDL:
        conn.execute(ddl)
    conn.close()
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    result = run("query", db=path)
    assert result.exit_code == 3
    assert result.stderr.startswith("miniscan: ") and "older than this miniscan" in result.stderr
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_bad_option_values_are_usage_errors(db) -> None:
    assert run("query", "--ip", "1.2.3", db=db).exit_code == 2
    assert run("query", "--port", "70000", db=db).exit_code == 2
    bad_since = run("query", "--since", "yesterday", db=db)
    assert bad_since.exit_code == 2 and "ISO 8601" in bad_since.stderr


def test_query_works_while_a_write_transaction_is_open(db) -> None:
    writer = apsw.Connection(str(db))
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("DELETE FROM scans")
    try:
        result = run("query", db=db)
        assert result.exit_code == 0 and len(json_lines(result.stdout)) == 3
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_stats_by_default_say_which_figures_are_exact(db) -> None:
    """Rows, services and the newest scan come from the kept counts; the rest is null in
    JSON, `?` in the table, and both say so (issue 26)."""
    summary = json_lines(run("stats", db=db).stdout)[0]
    assert summary["scan_rows"] == 3 and summary["services"] == {"HTTP": 1, "HTTPS": 1, "SSH": 1}
    assert summary["newest_scan"] == 1_714_563_600
    assert summary["distinct_ips"] is None and summary["oldest_scan"] is None
    assert summary["data_versions"] is None
    assert summary["exact"] == ["scan_rows", "newest_scan", "services"]
    assert summary["estimates"] == {}
    assert summary["dead_letters_by_reason"] == {"invalid_json": 2, "bad_port": 1}
    table = run("stats", "--format", "table", db=db).stdout
    assert "3 rows, ? IPs" in table and "? .. 2024-05-01T11:40:00Z" in table
    assert "3 (invalid_json 2, bad_port 1)" in table
    assert "IPs, oldest scan, data versions: not read (?); --full reads every row" in table


def test_stats_full_reads_every_row_for_exact_figures(db) -> None:
    summary = json_lines(run("stats", "--full", db=db).stdout)[0]
    assert summary["scan_rows"] == 3 and summary["distinct_ips"] == 2
    assert (summary["oldest_scan"], summary["newest_scan"]) == (1_714_500_000, 1_714_563_600)
    assert summary["data_versions"] == {"1": 2, "2": 1}
    assert summary["exact"] == [
        "scan_rows", "distinct_ips", "oldest_scan", "newest_scan", "services", "data_versions"
    ]  # fmt: skip
    table = run("stats", "--full", "--format", "table", db=db).stdout
    assert "3 rows, 2 IPs" in table and "data versions  v1 2, v2 1" in table
    assert "note" not in table and "?" not in table
    assert "--full" in run("stats", "--help").stdout


def test_stats_show_the_planners_estimate_as_one(db) -> None:
    conn = apsw.Connection(str(db))
    conn.execute("ANALYZE")
    conn.close()
    summary = json_lines(run("stats", db=db).stdout)[0]
    assert summary["distinct_ips"] is None and summary["estimates"]["distinct_ips"] >= 1
    table = run("stats", "--format", "table", db=db).stdout
    assert f"3 rows, ~{summary['estimates']['distinct_ips']} IPs" in table
    assert "IPs: the query planner's estimate (~); oldest scan, data versions: not read" in table


def test_dead_letters_list_filters_and_counts(db) -> None:
    listed = json_lines(run("dead-letters", "list", db=db).stdout)
    assert [d["reason"] for d in listed] == ["invalid_json", "bad_port", "invalid_json"]
    assert base64.b64decode(listed[0]["payload_base64"]) == BINARY_PAYLOAD
    only = json_lines(run("dead-letters", "list", "--reason", "bad_port", db=db).stdout)
    assert [d["message_id"] for d in only] == ["m2"]
    counts = json_lines(run("dead-letters", "list", "--counts", db=db).stdout)
    assert counts == [{"reason": "invalid_json", "count": 2}, {"reason": "bad_port", "count": 1}]
    table = run("dead-letters", "list", "--format", "table", db=db).stdout
    assert "invalid_json" in table and "\\x00" in table


def test_dead_letters_show(db) -> None:
    raw = run("dead-letters", "show", "1", "--format", "raw", db=db)
    assert raw.exit_code == 0 and raw.stdout_bytes == BINARY_PAYLOAD
    shown = json_lines(run("dead-letters", "show", "2", "--format", "json", db=db).stdout)[0]
    assert shown["reason"] == "bad_port"
    assert base64.b64decode(shown["payload_base64"]) == b'{"port": 70000}'
    text = run("dead-letters", "show", "2", db=db).stdout
    assert "bad_port" in text and '{"port": 70000}' in text
    missing = run("dead-letters", "show", "99", db=db)
    assert missing.exit_code == 1 and missing.stderr.startswith("miniscan: no dead letter")


def test_replay_needs_a_selection_and_dry_run_changes_nothing(db) -> None:
    assert run("dead-letters", "replay", db=db).exit_code == 2
    assert run("dead-letters", "replay", "--all", "--reason", "x", db=db).exit_code == 2
    dry = run("dead-letters", "replay", "--reason", "invalid_json", "--dry-run", db=db)
    assert dry.exit_code == 0
    assert "would replay 2 dead letters" in dry.stdout and "ids 1, 3" in dry.stdout
    assert len(json_lines(run("dead-letters", "list", db=db).stdout)) == 3


def test_query_by_an_ipv4_mapped_address_finds_what_the_decoder_stored(tmp_path):
    """The decoder stores ::ffff:1.2.3.4 as 1.2.3.4; --ip must look up the same key."""
    from click.testing import CliRunner

    from commands.query import query_command
    from contracts.records import ScanRecord
    from store.sqlite.writer import ScanStore

    db = tmp_path / "q.db"
    with ScanStore.open(db) as store:
        store.write_batch([ScanRecord("1.2.3.4", 22, "SSH", 5, "banner", 2)])
    result = CliRunner().invoke(
        query_command, ["--db", str(db), "--ip", "::ffff:1.2.3.4", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    assert '"ip": "1.2.3.4"' in result.output or '"ip":"1.2.3.4"' in result.output
