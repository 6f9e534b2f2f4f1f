"""Readers and the writer side by side (WAL): a reader sees whole batches only, neither side
blocks the other, and the read API filters and summarises correctly."""

from __future__ import annotations

from collections.abc import Iterator

import apsw
import pytest

from contracts.records import DeadLetter, ScanRecord
from store.db import ScanStore
from store.query import find_scans, open_reader, read_snapshot, read_stats
from store.schema import CURRENT_VERSION


def scan(port: int, ts: int = 100, ip: str = "10.0.0.1", service: str = "HTTP") -> ScanRecord:
    return ScanRecord(ip, port, service, ts, f"banner {port}", 1)


def count(conn: apsw.Connection) -> int:
    return conn.execute("SELECT count(*) FROM scans").get


@pytest.fixture
def db_path(tmp_path) -> str:
    return str(tmp_path / "scan_results.db")


@pytest.fixture
def writer_connections() -> Iterator[list[apsw.Connection]]:
    opened: list[apsw.Connection] = []
    apsw.connection_hooks.append(opened.append)
    yield opened
    apsw.connection_hooks.remove(opened.append)


def test_reader_sees_nothing_of_a_batch_until_its_commit_then_all(
    db_path, writer_connections
) -> None:
    store = ScanStore.open(db_path)
    store_connection = writer_connections[-1]
    store.write_batch([scan(1)])
    reader = open_reader(db_path)
    seen_at_commit: list[int] = []

    def look_before_commit() -> bool:
        # Runs inside the writer's COMMIT: the whole batch is written but not committed.
        seen_at_commit.append(count(reader))
        return False  # let the commit proceed

    store_connection.set_commit_hook(look_before_commit)
    store.write_batch([scan(p) for p in range(2, 502)])
    assert seen_at_commit == [1]
    assert count(reader) == 501
    reader.close()
    store.close()


def test_open_read_snapshot_does_not_block_the_writer_and_stays_consistent(db_path) -> None:
    store = ScanStore.open(db_path, busy_timeout_ms=50)
    store.write_batch([scan(1)])
    reader = open_reader(db_path)
    with read_snapshot(reader):
        assert count(reader) == 1
        # The writer commits while the reader holds its snapshot: no busy error...
        store.write_batch([scan(p) for p in range(2, 12)])
        # ...and the reader keeps seeing the state it started with.
        assert count(reader) == 1
    assert count(reader) == 11
    reader.close()
    store.close()


def test_an_open_write_transaction_does_not_block_readers(db_path) -> None:
    with ScanStore.open(db_path) as store:
        store.write_batch([scan(1)])
    writer = apsw.Connection(db_path)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO scans VALUES ('10.9.9.9', 1, 'X', 5, '', 1, 5)")
    reader = open_reader(db_path)
    reader.set_busy_timeout(0)  # must not even need to wait
    assert count(reader) == 1
    writer.execute("COMMIT")
    assert count(reader) == 2
    reader.close()
    writer.close()


@pytest.fixture
def filled(db_path) -> str:
    with ScanStore.open(db_path) as store:
        store.write_batch(
            [scan(80, ts=100), scan(22, ts=200, service="SSH"), scan(80, ts=300, ip="10.0.0.2"),
             scan(443, ts=50, ip="::1", service="HTTPS")],
            [DeadLetter(b"x", "invalid_json", "a", 1.0), DeadLetter(b"y", "bad_port", "b", 2.0),
             DeadLetter(b"z", "invalid_json", "c", 3.0)],
        )  # fmt: skip
    return db_path


def keys(found) -> list[tuple]:
    return [(r.ip, r.port, r.service) for r in found]


def test_find_scans_filters_combine(filled) -> None:
    conn = open_reader(filled)
    assert keys(find_scans(conn, ip="10.0.0.1")) == [
        ("10.0.0.1", 22, "SSH"),
        ("10.0.0.1", 80, "HTTP"),
    ]
    assert keys(find_scans(conn, port=80)) == [("10.0.0.1", 80, "HTTP"), ("10.0.0.2", 80, "HTTP")]
    assert keys(find_scans(conn, service="SSH")) == [("10.0.0.1", 22, "SSH")]
    assert keys(find_scans(conn, since=200)) == [("10.0.0.1", 22, "SSH"), ("10.0.0.2", 80, "HTTP")]
    assert keys(find_scans(conn, ip="10.0.0.1", port=22, service="SSH", since=201)) == []
    assert len(list(find_scans(conn, limit=2))) == 2
    conn.close()


def test_stats_summarise_scans_and_dead_letters(filled) -> None:
    conn = open_reader(filled)
    stats = read_stats(conn)
    conn.close()
    assert (stats.scan_rows, stats.distinct_ips) == (4, 3)
    assert (stats.oldest_scan, stats.newest_scan) == (50, 300)
    assert stats.services[0] == ("HTTP", 2)
    assert stats.data_versions == [(1, 4)]
    assert stats.dead_letters == 3
    assert stats.dead_letters_by_reason == [("invalid_json", 2), ("bad_port", 1)]
    assert stats.schema_version == CURRENT_VERSION and stats.file_bytes > 0
