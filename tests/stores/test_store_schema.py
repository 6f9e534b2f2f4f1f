"""Recognising files before touching them: foreign and newer files are refused and left
byte-for-byte unchanged; a version-0 file is migrated in place; readers never migrate."""

from __future__ import annotations

import hashlib
from pathlib import Path

import apsw
import pytest

from contracts.records import DeadLetter, ScanRecord
from store.errors import DatabaseMissing, SchemaError
from store.sqlite.connection import connect_existing
from store.sqlite.reader import find_scans, open_reader
from store.sqlite.schema import (
    APPLICATION_ID,
    CURRENT_VERSION,
    DEAD_LETTERS_DDL_V1,
    DEAD_LETTERS_INDEXES_V1,
    LEGACY_V0_DDL,
    SCANS_DDL,
)
from store.sqlite.writer import ScanStore


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_sqlite(path: Path, *statements: str) -> Path:
    conn = apsw.Connection(str(path))
    for sql in statements:
        conn.execute(sql)
    conn.close()
    return path


def make_v0(path: Path, with_dead_letters: bool = True, extra: tuple[str, ...] = ()) -> Path:
    ddl = LEGACY_V0_DDL if with_dead_letters else LEGACY_V0_DDL[:1]
    return make_sqlite(path, *ddl, *extra)


V0_ROWS = (
    "INSERT INTO scans VALUES ('10.0.0.1', 80, 'HTTP', 100, 'old banner'),"
    " ('10.0.0.2', 22, 'SSH', 200, 'SSH-2.0')",
    "INSERT INTO dead_letters VALUES (x'00ff', 'invalid_json', 1.5, 'm1'),"
    " (x'00ff', 'invalid_json', 1.5, 'm1'), ('text', 'bad_port', 2.5, NULL)",
)


@pytest.mark.parametrize(
    "statements",
    [
        ("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)",),
        ("CREATE TABLE scans (ip TEXT, port INTEGER)", "PRAGMA user_version = 3"),
        (*LEGACY_V0_DDL, "PRAGMA application_id = 1234"),
        (*LEGACY_V0_DDL, "CREATE TABLE other (x)"),
    ],
    ids=["other-tables", "other-user-version", "other-application-id", "extra-table"],
)
def test_foreign_sqlite_file_is_refused_and_unchanged(tmp_path, statements) -> None:
    path = make_sqlite(tmp_path / "foreign.db", *statements)
    before = digest(path)
    with pytest.raises(SchemaError, match=r"not a miniscan database.*not changed"):
        ScanStore.open(path)
    assert digest(path) == before


def test_file_that_is_not_sqlite_is_refused_and_unchanged(tmp_path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are my notes, not a database\n" * 200)
    before = digest(path)
    with pytest.raises(SchemaError, match="not an SQLite database"):
        ScanStore.open(path)
    assert digest(path) == before


def test_newer_schema_is_refused_and_unchanged(tmp_path) -> None:
    path = tmp_path / "future.db"
    with ScanStore.open(path) as store:
        store.write_batch([ScanRecord("10.0.0.1", 80, "HTTP", 1, "r", 1)])
    make_sqlite(path, f"PRAGMA user_version = {CURRENT_VERSION + 1}")
    before = digest(path)
    with pytest.raises(SchemaError, match="newer than this miniscan"):
        ScanStore.open(path)
    with pytest.raises(SchemaError, match="newer than this miniscan"):
        connect_existing(path)
    assert digest(path) == before


def test_empty_file_becomes_a_new_database(tmp_path) -> None:
    path = tmp_path / "empty.db"
    path.touch()
    with ScanStore.open(path) as store:
        assert store.migrated_from is None
    connect_existing(path).close()


def test_version_0_is_migrated_in_place(tmp_path) -> None:
    path = make_v0(tmp_path / "v0.db", extra=V0_ROWS)
    with ScanStore.open(path) as store:
        assert store.migrated_from == 0
        assert store.row_count() == 2
        # Migrated rows take part in the rules: v0 rows have data_version 0, so an equal
        # scan with a real version wins the tie, and a newer one replaces.
        store.write_batch(
            [ScanRecord("10.0.0.1", 80, "HTTP", 100, "old banner", 2),
             ScanRecord("10.0.0.2", 22, "SSH", 150, "older", 1)]
        )  # fmt: skip
    conn = open_reader(path)
    assert conn.pragma("user_version") == CURRENT_VERSION
    assert conn.pragma("application_id") == APPLICATION_ID
    assert [(r.ip, r.last_scanned, r.response, r.data_version, r.first_seen)
            for r in find_scans(conn)] == [
        ("10.0.0.1", 100, "old banner", 2, 100),
        ("10.0.0.2", 200, "SSH-2.0", 0, 150),
    ]  # fmt: skip
    letters = conn.execute(
        "SELECT payload, reason, message_id, received_at, detail FROM dead_letters ORDER BY id"
    ).fetchall()
    assert letters == [
        (b"\x00\xff", "invalid_json", "m1", 1.5, ""),
        (b"text", "bad_port", "", 2.5, ""),
    ]
    conn.close()
    with ScanStore.open(path) as again:
        assert again.migrated_from is None
        again.write_batch([], [DeadLetter(b"\x00\xff", "invalid_json", "m1", 9.0)])
        assert again.row_count() == 2


def make_v1(path: Path) -> Path:
    """A version-1 file as miniscan 0.1 wrote it: dead letters unique by message id alone."""
    return make_sqlite(
        path, SCANS_DDL, DEAD_LETTERS_DDL_V1, *DEAD_LETTERS_INDEXES_V1,
        "INSERT INTO dead_letters (payload, reason, message_id, received_at) VALUES"
        " (x'00ff', 'invalid_json', '1', 1.5), (x'01', 'bad_port', '', 2.5)",
        f"PRAGMA application_id = {APPLICATION_ID}", "PRAGMA user_version = 1",
    )  # fmt: skip


def test_version_1_is_migrated_to_dead_letters_unique_by_id_and_bytes(tmp_path) -> None:
    path = make_v1(tmp_path / "v1.db")
    with ScanStore.open(path) as store:
        assert store.migrated_from == 1
        # The emulator restarted and numbers from 1 again: a new poison message reusing id
        # "1" is kept; a redelivery of the old one (same id, same bytes) still collapses.
        result = store.write_batch(
            [], [DeadLetter(b"new poison", "invalid_json", "1", 9.0),
                 DeadLetter(b"\x00\xff", "invalid_json", "1", 9.5)]
        )  # fmt: skip
        assert result.dead_letters == 1
    conn = open_reader(path)
    assert conn.pragma("user_version") == CURRENT_VERSION
    letters = conn.execute(
        "SELECT payload, message_id, payload_sha256 FROM dead_letters ORDER BY id"
    ).fetchall()
    conn.close()
    assert [(payload, mid) for payload, mid, _ in letters] == [
        (b"\x00\xff", "1"), (b"\x01", ""), (b"new poison", "1"),
    ]  # fmt: skip
    assert all(sha == hashlib.sha256(payload).digest() for payload, _, sha in letters)


def test_version_0_without_dead_letters_table_is_migrated(tmp_path) -> None:
    path = make_v0(tmp_path / "v0.db", with_dead_letters=False, extra=V0_ROWS[:1])
    with ScanStore.open(path) as store:
        assert store.migrated_from == 0
        result = store.write_batch([], [DeadLetter(b"x", "invalid_json", "m9", 1.0)])
        assert result.dead_letters == 1


def test_failed_migration_leaves_the_file_unchanged(tmp_path) -> None:
    path = make_v0(tmp_path / "v0.db", extra=(
        *V0_ROWS, "INSERT INTO scans VALUES ('10.0.0.3', 70000, 'HTTP', 5, 'bad port')",
    ))  # fmt: skip
    before = digest(path)
    with pytest.raises(SchemaError, match=r"cannot migrate .* from schema version 0"):
        ScanStore.open(path)
    assert digest(path) == before
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    assert conn.pragma("user_version") == 0
    assert conn.execute("SELECT count(*) FROM scans").get == 3
    conn.close()


def test_readers_never_migrate_or_create(tmp_path) -> None:
    path = make_v0(tmp_path / "v0.db", extra=V0_ROWS)
    before = digest(path)
    with pytest.raises(SchemaError, match=r"older than this miniscan .* start the supervisor"):
        connect_existing(path)
    with pytest.raises(SchemaError, match="older"):
        connect_existing(path, writable=True)
    assert digest(path) == before
    missing = tmp_path / "missing.db"
    with pytest.raises(DatabaseMissing, match=f"no database at {missing}"):
        open_reader(missing)
    assert not missing.exists()
    empty = tmp_path / "empty.db"
    empty.touch()
    with pytest.raises(SchemaError, match="empty"):
        open_reader(empty)
    assert empty.stat().st_size == 0
