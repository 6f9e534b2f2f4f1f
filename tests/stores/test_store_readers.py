"""SQLite's readers and the writer side by side (WAL): a reader sees whole batches only, and
neither side blocks the other. What the read API returns, on both stores, is in
tests/test_store_conformance.py."""

from __future__ import annotations

from collections.abc import Iterator

import apsw
import pytest

from contracts.records import ScanRecord
from store.sqlite.reader import open_reader, read_snapshot
from store.sqlite.writer import ScanStore


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
