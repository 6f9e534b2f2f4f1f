"""ScanStore, what only SQLite has: the file and its pragmas at open, its permissions, and
every failure path of a file for real (lock held past the busy timeout, disk full, I/O
error, an unwritable folder). The rules both stores share (newest wins, counts, dead
letters, refused data) are in tests/test_store_conformance.py."""

from __future__ import annotations

import os
from collections.abc import Iterator

import apsw
import pytest

from contracts.records import DeadLetter, ScanRecord
from store.errors import StoreInaccessible, StoreUnavailable
from store.sqlite.connection import WAL_AUTOCHECKPOINT_PAGES, WRITER_CACHE_KIB
from store.sqlite.reader import find_scans, open_reader
from store.sqlite.schema import APPLICATION_ID, CURRENT_VERSION
from store.sqlite.writer import ScanStore


def scan(ts: int = 100, response: str = "r", v: int = 1, *, ip: str = "10.0.0.1",
         port: int = 80, service: str = "HTTP") -> ScanRecord:  # fmt: skip
    return ScanRecord(ip, port, service, ts, response, v)


def letter(payload: bytes = b"{", reason: str = "invalid_json", message_id: str = "m1"):
    return DeadLetter(payload, reason, message_id, 1_700_000_000.25, "detail")


def rows(path: str) -> list[tuple]:
    """The scans table read through a separate, read-only connection."""
    conn = open_reader(path)
    try:
        return [
            (r.ip, r.port, r.service, r.last_scanned, r.response, r.data_version, r.first_seen)
            for r in find_scans(conn)
        ]
    finally:
        conn.close()


def dead_letter_rows(path: str) -> list[tuple]:
    conn = open_reader(path)
    try:
        return conn.execute(
            "SELECT payload, reason, detail, message_id, received_at FROM dead_letters ORDER BY id"
        ).fetchall()
    finally:
        conn.close()


@pytest.fixture
def db_path(tmp_path) -> str:
    return str(tmp_path / "data" / "scan_results.db")


@pytest.fixture
def new_connections() -> Iterator[list[apsw.Connection]]:
    """Every apsw connection opened during the test, through apsw's public hook list:
    lets a test set a pragma or a commit hook on the store's own connection."""
    opened: list[apsw.Connection] = []
    apsw.connection_hooks.append(opened.append)
    yield opened
    apsw.connection_hooks.remove(opened.append)


def test_open_creates_folder_and_a_wal_database_with_full_sync(db_path, new_connections) -> None:
    store = ScanStore.open(db_path)
    writer = new_connections[-1]
    assert os.path.isfile(db_path)
    assert store.synchronous == "FULL"
    assert writer.pragma("wal_autocheckpoint") == WAL_AUTOCHECKPOINT_PAGES
    assert writer.pragma("cache_size") == -WRITER_CACHE_KIB
    store.close()
    conn = apsw.Connection(db_path, flags=apsw.SQLITE_OPEN_READONLY)
    assert conn.pragma("journal_mode") == "wal"
    assert conn.pragma("user_version") == CURRENT_VERSION
    assert conn.pragma("application_id") == APPLICATION_ID
    conn.close()


def test_lock_held_past_busy_timeout_is_unavailable_and_writes_nothing(db_path) -> None:
    with ScanStore.open(db_path, busy_timeout_ms=50) as store:
        store.write_batch([scan(ts=1)])
        other = apsw.Connection(db_path)
        other.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(StoreUnavailable, match="locked"):
                store.write_batch([scan(ts=2), scan(port=22)], [letter()])
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert rows(db_path) == [("10.0.0.1", 80, "HTTP", 1, "r", 1, 1)]
        assert dead_letter_rows(db_path) == []
        store.write_batch([scan(ts=2)])  # once the lock is gone, the retry succeeds
        assert rows(db_path)[0][3] == 2


def test_disk_full_mid_batch_is_unavailable_and_rolls_back(db_path, new_connections) -> None:
    with ScanStore.open(db_path) as store:
        store.write_batch([scan()])
        writer = new_connections[-1]
        # A hard page limit is SQLite's own way to hit SQLITE_FULL, just like a full disk.
        writer.pragma("max_page_count", writer.pragma("page_count") + 3)
        big = [scan(port=p, response="x" * 500) for p in range(1000, 3000)]
        with pytest.raises(StoreUnavailable, match="full"):
            store.write_batch(big)
        assert len(rows(db_path)) == 1
        assert store.row_count() == 1
        writer.pragma("max_page_count", 1_000_000)
        assert store.write_batch(big).new_keys == len(big)


class FailingSync(apsw.VFSFile):
    """A file of the default VFS whose fsync fails while `failing` is set."""

    failing = False

    def xSync(self, flags: int) -> None:
        if FailingSync.failing:
            raise apsw.IOError("injected fsync failure")
        super().xSync(flags)


class FailingSyncVFS(apsw.VFS):
    """Made the default, so the store uses it without knowing; files come from `base`."""

    def __init__(self, base: str) -> None:
        self.base = base
        super().__init__("failing-sync", base, makedefault=True)

    def xOpen(self, name, flags):
        return FailingSync(self.base, name, flags)


@pytest.fixture
def failing_sync_vfs() -> Iterator[type[FailingSync]]:
    default = apsw.vfs_names()[0]
    vfs = FailingSyncVFS(base=default)
    yield FailingSync
    FailingSync.failing = False
    vfs.unregister()
    assert apsw.vfs_names()[0] == default


def test_io_error_at_commit_is_unavailable_and_nothing_is_visible(
    db_path, failing_sync_vfs
) -> None:
    with ScanStore.open(db_path) as store:
        store.write_batch([scan(ts=1)])
        failing_sync_vfs.failing = True
        with pytest.raises(StoreUnavailable, match=r"injected fsync failure|I/O"):
            store.write_batch([scan(ts=2), scan(port=22)])
        failing_sync_vfs.failing = False
        assert rows(db_path) == [("10.0.0.1", 80, "HTTP", 1, "r", 1, 1)]
        store.write_batch([scan(ts=3)])
        assert rows(db_path)[0][3] == 3


def test_unwritable_location_is_inaccessible(tmp_path) -> None:
    # Weather while running (a StoreUnavailable), a refusal at start-up (issue 25).
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    with pytest.raises(StoreInaccessible, match="cannot create the folder"):
        ScanStore.open(not_a_folder / "scan_results.db")


def test_new_database_files_are_not_world_readable(tmp_path) -> None:
    path = tmp_path / "private" / "scan_results.db"
    with ScanStore.open(path) as store:
        store.write_batch([scan()])
        for name in ("scan_results.db", "scan_results.db-wal"):
            mode = (path.parent / name).stat().st_mode
            assert mode & 0o007 == 0, f"{name} is {oct(mode)}"
    assert (path.parent.stat().st_mode & 0o007) == 0


def test_the_kept_row_count_follows_rows_deleted_by_hand(tmp_path) -> None:
    path = tmp_path / "w.db"
    with ScanStore.open(path) as store:
        store.write_batch([scan(ip="10.0.0.1"), scan(ip="10.0.0.2")])
        other = apsw.Connection(str(path))
        other.execute("DELETE FROM scans WHERE ip = '10.0.0.1'")
        other.close()
        store.write_batch([scan(ip="10.0.0.3")])
        assert store.row_count() == 2
