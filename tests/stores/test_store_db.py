"""ScanStore: opening, the newest-wins upsert across batches, counts, dead letters, and every
failure path for real (lock held past the busy timeout, constraint, disk full, I/O error)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import apsw
import pytest

from contracts.records import DeadLetter, ScanRecord
from store.db import (
    WAL_AUTOCHECKPOINT_PAGES,
    WRITER_CACHE_KIB,
    BatchDataError,
    ScanStore,
    StoreUnavailable,
    WriteResult,
)
from store.query import find_scans, open_reader
from store.schema import APPLICATION_ID, CURRENT_VERSION


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
def store(db_path) -> Iterator[ScanStore]:
    with ScanStore.open(db_path) as opened:
        yield opened


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


def test_synchronous_can_be_relaxed_and_is_validated(tmp_path) -> None:
    with ScanStore.open(tmp_path / "n.db", synchronous="normal") as relaxed:
        assert relaxed.synchronous == "NORMAL"
    with pytest.raises(ValueError, match="synchronous"):
        ScanStore.open(tmp_path / "x.db", synchronous="sometimes")


def test_newer_scan_replaces_and_older_never_does(db_path, store) -> None:
    store.write_batch([scan(ts=100, response="first")])
    store.write_batch([scan(ts=90, response="older")])
    assert rows(db_path) == [("10.0.0.1", 80, "HTTP", 100, "first", 1, 90)]
    store.write_batch([scan(ts=110, response="newer", v=2)])
    assert rows(db_path) == [("10.0.0.1", 80, "HTTP", 110, "newer", 2, 90)]


@pytest.mark.parametrize(
    ("low", "high"),
    [
        (scan(response="HTTP/1.0"), scan(response="HTTP/1.1")),
        (scan(response="a"), scan(response="a\x00")),
        (scan(response="\uffff"), scan(response="\U00010000")),  # UTF-8 and code points agree
        (scan(response="same", v=1), scan(response="same", v=2)),
    ],
)
def test_equal_timestamp_ties_resolve_the_same_in_either_order(tmp_path, low, high) -> None:
    for order in ((low, high), (high, low)):
        path = str(tmp_path / f"{order[0].response!r}{order[0].data_version}.db")
        with ScanStore.open(path, synchronous="OFF") as separate_batches:
            for record in order:
                separate_batches.write_batch([record])
        assert rows(path) == [("10.0.0.1", 80, "HTTP", 100, high.response, high.data_version, 100)]


def test_write_result_and_row_count_follow_the_table(db_path, store) -> None:
    first = store.write_batch([scan(ts=1), scan(ts=2), scan(port=22, service="SSH")])
    assert first == WriteResult(scans=3, new_keys=2, dead_letters=0, changed_keys=2)
    assert store.row_count() == 2
    second = store.write_batch([scan(ts=0), scan(ts=5, port=22, service="SSH"), scan(port=443)])
    # ts=0 moves first_seen (a change, no new key); 443 is new; SSH gets newer.
    assert second == WriteResult(scans=3, new_keys=1, dead_letters=0, changed_keys=3)
    stale = store.write_batch([scan(ts=1)])
    assert stale == WriteResult(scans=1, new_keys=0, dead_letters=0, changed_keys=0)
    assert store.row_count() == 3 == len(rows(db_path))
    store.close()
    with ScanStore.open(db_path) as reopened:
        assert reopened.row_count() == 3


def test_empty_batch_writes_nothing(store) -> None:
    assert store.write_batch([]) == WriteResult(scans=0, new_keys=0, dead_letters=0)


def test_dead_letters_keep_exact_bytes_and_collapse_only_true_duplicates(db_path, store) -> None:
    binary = b"\x00\xff{\x80 not json"
    result = store.write_batch(
        [],
        [letter(binary, message_id="m1"), letter(b"", "empty", message_id=""),
         letter(binary, message_id="m1"), letter(b"", "empty", message_id="")],
    )  # fmt: skip
    assert result.dead_letters == 3  # m1 twice -> once; unknown ('') ids are never merged
    # A redelivery (same id, same bytes) collapses; a new message that reuses the id (an
    # emulator restarted, a database reused across topics) is a different letter and is kept.
    again = store.write_batch(
        [scan()], [letter(binary, message_id="m1"), letter(b"new poison", message_id="m1")]
    )
    assert again.dead_letters == 1 and again.new_keys == 1
    stored = dead_letter_rows(db_path)
    assert stored[0] == (binary, "invalid_json", "detail", "m1", 1_700_000_000.25)
    assert [row[0] for row in stored] == [binary, b"", b"", b"new poison"]
    assert all(isinstance(row[0], bytes) for row in stored)


@pytest.mark.parametrize(
    "bad",
    [scan(port=70000), scan(service=""), scan(ts=-1), scan(ip="")],
    ids=["port-range", "empty-service", "negative-time", "empty-ip"],
)
def test_constraint_violation_rolls_back_the_whole_batch(db_path, store, bad) -> None:
    store.write_batch([scan(ts=10, response="kept")])
    batch = [scan(ts=20, response="lost"), scan(port=443), bad]
    with pytest.raises(BatchDataError, match="CHECK constraint failed"):
        store.write_batch(batch, [letter()])
    assert rows(db_path) == [("10.0.0.1", 80, "HTTP", 10, "kept", 1, 10)]
    assert dead_letter_rows(db_path) == []
    assert store.row_count() == 1
    store.write_batch([scan(port=443)])  # the store is still usable
    assert len(rows(db_path)) == 2


@pytest.mark.parametrize(
    "bad",
    [scan(ts=2**70), scan(response="lone \udc80 surrogate"), scan(ts="soon")],  # type: ignore[arg-type]
    ids=["int-over-64-bits", "lone-surrogate", "wrong-type"],
)
def test_values_sqlite_cannot_take_are_batch_data_errors(db_path, store, bad) -> None:
    with pytest.raises(BatchDataError):
        store.write_batch([scan(port=1), bad])
    assert rows(db_path) == []


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


def test_unwritable_location_is_unavailable(tmp_path) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    with pytest.raises(StoreUnavailable, match="cannot create the folder"):
        ScanStore.open(not_a_folder / "scan_results.db")


def test_new_database_files_are_not_world_readable(tmp_path) -> None:
    path = tmp_path / "private" / "scan_results.db"
    with ScanStore.open(path) as store:
        store.write_batch([scan()])
        for name in ("scan_results.db", "scan_results.db-wal"):
            mode = (path.parent / name).stat().st_mode
            assert mode & 0o007 == 0, f"{name} is {oct(mode)}"
    assert (path.parent.stat().st_mode & 0o007) == 0
