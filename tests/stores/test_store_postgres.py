"""What only the PostgreSQL store has, against a real server: URLs, the schema in the
connection's default schema (created, versioned, refused untouched when foreign, neighbours
left alone), NUL and non-ASCII responses, lost connections and lock timeouts, conflicts
retried whole, and several writers at once on overlapping keys. The writer's tests run on
both layouts of `scans` (`writer_url`): plain, and spread over hash partitions of ip, where a
batch is two statements instead of one upsert (store.postgres.upsert).

The rules both stores share are in tests/test_store_conformance.py."""

from __future__ import annotations

import random
import socket
import threading
from collections.abc import Callable, Iterator

import psycopg
import pytest
from postgres_server import catalog, set_database_default, sql, writer_waits_on_a_lock

from contracts.records import DeadLetter, ScanRecord
from store.backend import is_postgres_url, open_store
from store.connection_options import BUSY_TIMEOUT_MS
from store.errors import SchemaError, StoreError, StoreUnavailable
from store.postgres import schema as postgres_schema
from store.postgres import writer as postgres_writer
from store.postgres.connection import DEFAULT_PARAMS, connect_existing, describe
from store.postgres.writer import PostgresStore
from store.sqlite import schema as sqlite_schema
from store.sqlite.writer import ScanStore
from testkit.waiting import wait_until


def scan(ts: int = 100, response: str = "r", v: int = 1, *, ip: str = "10.0.0.1",
         port: int = 80, service: str = "HTTP") -> ScanRecord:  # fmt: skip
    return ScanRecord(ip, port, service, ts, response, v)


def table(url: str) -> list[tuple]:
    return [
        (*row[:4], postgres_schema.decode_response(row[4]), *row[5:])
        for row in sql(url, "SELECT * FROM scans ORDER BY ip, port, service")
    ]


class InThread:
    """Run `call` in a thread; `result()` joins it and returns or re-raises."""

    def __init__(self, call: Callable[[], object]) -> None:
        self.outcome: list[object] = []
        self.thread = threading.Thread(target=self._run, args=(call,), daemon=True)
        self.thread.start()

    def _run(self, call: Callable[[], object]) -> None:
        try:
            self.outcome.append(call())
        except BaseException as exc:  # handed to the test thread by result()
            self.outcome.append(exc)

    def result(self, timeout: float = 30.0) -> object:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the writer thread did not finish"
        if isinstance(self.outcome[0], BaseException):
            raise self.outcome[0]
        return self.outcome[0]


@pytest.fixture(params=["plain", "partitioned"])
def writer_url(request: pytest.FixtureRequest) -> str:
    """A fresh database with no tables yet, or with `scans` partitioned already."""
    return request.getfixturevalue(
        "postgres_url" if request.param == "plain" else "partitioned_postgres_url"
    )


@pytest.fixture
def store(writer_url: str) -> Iterator[PostgresStore]:
    with PostgresStore.open(writer_url) as opened:
        yield opened


def test_open_store_picks_the_backend_by_its_target(postgres_url, tmp_path) -> None:
    assert is_postgres_url(postgres_url)
    assert not is_postgres_url(str(tmp_path / "postgresql.db"))
    with open_store(postgres_url) as pg:
        assert isinstance(pg, PostgresStore)
        pg.write_batch([scan()])
    short = "postgres://" + postgres_url.removeprefix("postgresql://")
    with open_store(short) as again:
        assert again.row_count() == 1
    with open_store(tmp_path / "scans.db") as lite:
        assert isinstance(lite, ScanStore)


def test_messages_never_show_the_password() -> None:
    url = "postgresql://miniscan:s3cret@db.example:6543/scans?sslmode=require"
    assert describe(url) == "postgresql://miniscan@db.example:6543/scans"
    with pytest.raises(StoreError, match="invalid PostgreSQL URL") as refused:
        open_store("postgresql://miniscan:s3cret@db.example/scans?no_such_option=1")
    assert "s3cret" not in str(refused.value)


def test_unreachable_server_or_database_is_unavailable(postgres_url) -> None:
    with socket.socket() as probe:  # a port with nobody listening once the probe closes
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    with pytest.raises(StoreUnavailable, match="cannot connect"):
        open_store(f"postgresql://postgres@127.0.0.1:{free_port}/miniscan")
    no_database = postgres_url.rsplit("/", 1)[0] + "/no_such_database"
    with pytest.raises(StoreUnavailable, match="no_such_database"):
        open_store(no_database)


def test_open_creates_versioned_tables_and_reopening_changes_nothing(postgres_url) -> None:
    # One design of the tables for both stores.
    assert postgres_schema.CURRENT_VERSION == sqlite_schema.CURRENT_VERSION
    with PostgresStore.open(postgres_url) as store:
        assert store.migrated_from is None
        store.write_batch([scan()], [DeadLetter(b"{", "invalid_json", "m1", 1.5)])
    created = catalog(postgres_url)
    stamp = f"miniscan schema {postgres_schema.CURRENT_VERSION}"
    comments = {name: comment for name, kind, comment, _ in created[:-3] if kind == "r"}
    assert comments == {"scans": stamp, "dead_letters": stamp, "scan_counts": None}
    columns = sql(
        postgres_url,
        "SELECT column_name, data_type, collation_name FROM information_schema.columns"
        " WHERE table_name = 'scans' ORDER BY ordinal_position",
    )
    assert columns == [
        ("ip", "text", "C"), ("port", "integer", None), ("service", "text", "C"),
        ("last_scanned", "bigint", None), ("response", "bytea", None),
        ("data_version", "bigint", None), ("first_seen", "bigint", None),
    ]  # fmt: skip
    with PostgresStore.open(postgres_url) as again:
        assert again.migrated_from is None and again.row_count() == 1
    assert catalog(postgres_url) == created


FOREIGN_LAYOUTS = {
    "foreign-scans": ["CREATE TABLE scans (id int PRIMARY KEY, note text)",
                      "INSERT INTO scans VALUES (1, 'theirs')"],
    "foreign-dead-letters": ["CREATE TABLE dead_letters (x int)",
                             "INSERT INTO dead_letters VALUES (7)"],
    "view-named-scans": ["CREATE VIEW scans AS SELECT 1 AS x"],
    "stamp-on-one-table": [postgres_schema.SCANS_DDL,
                           "COMMENT ON TABLE scans IS 'miniscan schema 2'"],
    "newer-version": ["MINISCAN",
                      "COMMENT ON TABLE scans IS 'miniscan schema 99'",
                      "COMMENT ON TABLE dead_letters IS 'miniscan schema 99'"],
    "index-of-our-name": ["CREATE TABLE other (x int)",
                          "CREATE INDEX dead_letters_by_reason ON other (x)"],
}  # fmt: skip


@pytest.mark.parametrize("layout", FOREIGN_LAYOUTS.values(), ids=FOREIGN_LAYOUTS.keys())
def test_tables_of_our_names_that_are_not_ours_are_refused_untouched(postgres_url, layout):
    for statement in layout:
        if statement == "MINISCAN":
            PostgresStore.open(postgres_url).close()
        else:
            sql(postgres_url, statement)
    before = catalog(postgres_url)
    with pytest.raises(SchemaError, match="nothing was changed"):
        PostgresStore.open(postgres_url)
    with pytest.raises(SchemaError):
        connect_existing(postgres_url)  # readers refuse too
    assert catalog(postgres_url) == before


def test_other_applications_tables_are_left_alone(postgres_url) -> None:
    sql(postgres_url, "CREATE TABLE users (id int PRIMARY KEY, name text)")
    sql(postgres_url, "CREATE INDEX users_by_name ON users (name)")
    sql(postgres_url, "INSERT INTO users VALUES (1, 'ada'), (2, 'grace')")
    theirs = [entry for entry in catalog(postgres_url)]
    with PostgresStore.open(postgres_url) as store:
        store.write_batch([scan()])
    after = catalog(postgres_url)
    assert all(entry in after for entry in theirs)
    assert sql(postgres_url, "SELECT * FROM users ORDER BY id") == [(1, "ada"), (2, "grace")]


def test_tables_go_to_the_connections_default_schema(postgres_url) -> None:
    sql(postgres_url, "CREATE SCHEMA tenant")
    in_tenant = postgres_url + "?options=-csearch_path%3Dtenant"
    with open_store(in_tenant) as store:
        store.write_batch([scan()])
    assert sql(postgres_url, "SELECT to_regclass('public.scans'), to_regclass('tenant.scans')")[
        0
    ] == (None, "tenant.scans")
    with pytest.raises(SchemaError, match="no schema"):
        open_store(postgres_url + "?options=-csearch_path%3Dmissing")


RESPONSES = ["", "\x00", "a\x00b\x00", "café", "日本語", "\U0001f600 emoji", "\uffff", "\r\n\t"]


def test_nul_and_non_ascii_responses_round_trip_as_utf8(writer_url, store) -> None:
    store.write_batch([scan(port=port, response=text) for port, text in enumerate(RESPONSES)])
    stored = sql(writer_url, "SELECT port, response FROM scans ORDER BY port")
    assert [bytes(raw) for _, raw in stored] == [text.encode("utf-8") for text in RESPONSES]
    with connect_existing(writer_url) as reader:
        rows = reader.execute("SELECT response FROM scans ORDER BY port").fetchall()
        assert [postgres_schema.decode_response(raw) for (raw,) in rows] == RESPONSES


def test_readers_need_current_tables_and_cannot_write(postgres_url) -> None:
    with pytest.raises(SchemaError, match="start the supervisor"):
        connect_existing(postgres_url)
    PostgresStore.open(postgres_url).close()
    with (
        connect_existing(postgres_url) as reader,
        pytest.raises(psycopg.errors.ReadOnlySqlTransaction),
    ):
        reader.execute("DELETE FROM scans")
    with connect_existing(postgres_url, writable=True) as admin:
        admin.execute("DELETE FROM dead_letters")


def test_writers_opening_at_once_create_the_tables_once(writer_url) -> None:
    start = threading.Barrier(4)

    def open_together() -> int:
        start.wait()
        with PostgresStore.open(writer_url) as store:
            return store.write_batch([scan(ts=random.randrange(100))]).scans

    writers = [InThread(open_together) for _ in range(4)]
    assert [w.result() for w in writers] == [1, 1, 1, 1]
    assert len(table(writer_url)) == 1


def test_lock_held_past_the_timeout_is_unavailable_and_writes_nothing(writer_url) -> None:
    with PostgresStore.open(writer_url, busy_timeout_ms=100) as store:
        store.write_batch([scan(ts=1)])
        with psycopg.connect(writer_url) as other:
            other.execute("SELECT * FROM scans FOR UPDATE")
            with pytest.raises(StoreUnavailable, match="locked"):
                store.write_batch([scan(ts=2), scan(port=22)])
            other.rollback()
        assert table(writer_url) == [("10.0.0.1", 80, "HTTP", 1, "r", 1, 1)]
        store.write_batch([scan(ts=2)])  # once the lock is gone, the retry succeeds
        assert table(writer_url)[0][3] == 2


def test_lost_connection_is_unavailable_then_the_next_batch_reconnects(writer_url, store):
    store.write_batch([scan(ts=1)])
    killed = sql(
        writer_url,
        "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = current_database() AND application_name = 'miniscan'",
    )
    assert [ok for _, ok in killed] == [True]
    gone = "SELECT 1 FROM pg_stat_activity WHERE pid = %s"
    wait_until(
        lambda: not sql(writer_url, gone, (killed[0][0],)), 10, "the backend to end", every=0.01
    )
    with pytest.raises(StoreUnavailable):
        store.write_batch([scan(ts=2)])
    assert store.write_batch([scan(ts=3)]).changed_keys == 1
    assert table(writer_url)[0][3] == 3
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.write_batch([scan(ts=4)])


@pytest.mark.parametrize(
    "retries", [postgres_writer.CONFLICT_RETRIES, 0], ids=["retried", "exhausted"]
)
def test_serialization_failure_retries_the_batch_whole(writer_url, monkeypatch, caplog, retries):
    # Under REPEATABLE READ (a database default another application may set), a row that a
    # concurrent transaction changed after our snapshot makes the upsert fail with 40001.
    set_database_default(writer_url, "default_transaction_isolation", "repeatable read")
    monkeypatch.setattr(postgres_writer, "CONFLICT_RETRIES", retries)
    with PostgresStore.open(writer_url) as store, psycopg.connect(writer_url) as other:
        store.write_batch([scan(ts=1)])
        other.execute("UPDATE scans SET last_scanned = 50")
        writing = InThread(lambda: store.write_batch([scan(ts=100, response="new"), scan(port=1)]))
        wait_until(
            lambda: writer_waits_on_a_lock(writer_url),
            10,
            "the writer to wait on the row",
            every=0.01,
        )
        other.commit()
        if retries == 0:
            with pytest.raises(StoreUnavailable, match="serialize"):
                writing.result()
            assert table(writer_url) == [("10.0.0.1", 80, "HTTP", 50, "r", 1, 1)]
            return
        assert writing.result().new_keys == 1
    assert table(writer_url) == [
        ("10.0.0.1", 1, "HTTP", 100, "r", 1, 100),
        ("10.0.0.1", 80, "HTTP", 100, "new", 1, 1),
    ]
    assert "SerializationFailure" in caplog.text


def test_deadlock_with_another_application_retries_the_batch_whole(writer_url, caplog):
    # The writer locks its keys in order (port 22, then 80); another session holds 80 and
    # then asks for 22. The writer waits first, so its deadlock check (after 1 s) finds
    # the cycle and the writer is the one aborted; the other session never checks.
    set_database_default(writer_url, "deadlock_timeout", "1s")
    with PostgresStore.open(writer_url) as store, psycopg.connect(writer_url) as other:
        store.write_batch([scan(ts=1, port=22), scan(ts=1, port=80)])
        other.execute("SET deadlock_timeout = '10min'")
        other.execute("UPDATE scans SET last_scanned = 50 WHERE port = 80")
        writing = InThread(lambda: store.write_batch([scan(ts=99, port=22), scan(ts=99, port=80)]))
        wait_until(
            lambda: writer_waits_on_a_lock(writer_url),
            10,
            "the writer to wait on port 80",
            every=0.01,
        )
        other.execute("UPDATE scans SET last_scanned = 60 WHERE port = 22")  # closes the cycle
        other.commit()
        assert writing.result().changed_keys == 2
    assert "DeadlockDetected" in caplog.text
    assert [row[3] for row in table(writer_url)] == [99, 99]


def test_a_batch_locks_its_rows_in_key_order_whatever_the_batch_or_the_heap_order(writer_url):
    # What makes concurrent writers deadlock-free: each locks the rows of its batch in key
    # order. Port 80 is stored first and comes first in the batch, and is held by another
    # session: the writer waits on it holding port 22 already, never the other way round.
    # Merge joins off: a statement joining scans to the batch (an UPDATE ... FROM) would
    # lock in key order by chance on so small a table, while on a big one the planner joins
    # by index or hash, in the batch's or the heap's order.
    set_database_default(writer_url, "enable_mergejoin", "off")
    with PostgresStore.open(writer_url) as store, psycopg.connect(writer_url) as other:
        store.write_batch([scan(ts=1, port=80)])
        store.write_batch([scan(ts=1, port=22)])
        other.execute("SELECT 1 FROM scans WHERE port = 80 FOR UPDATE")
        writing = InThread(lambda: store.write_batch([scan(ts=9, port=80), scan(ts=9, port=22)]))
        wait_until(lambda: writer_waits_on_a_lock(writer_url), 10, "the writer to wait on 80")
        with pytest.raises(psycopg.errors.LockNotAvailable):
            sql(writer_url, "SELECT 1 FROM scans WHERE port = 22 FOR UPDATE NOWAIT")
        other.commit()
        assert writing.result().changed_keys == 2
    assert [row[3] for row in table(writer_url)] == [9, 9]


def expected_table(records: list[ScanRecord]) -> list[tuple]:
    """Per key: the greatest (timestamp, response, data_version), the smallest timestamp."""
    rows = []
    for key in {r.key for r in records}:
        same = [r for r in records if r.key == key]
        ts, response, version = max((r.timestamp, r.response, r.data_version) for r in same)
        rows.append((*key, ts, response, version, min(r.timestamp for r in same)))
    return sorted(rows)


def test_concurrent_writers_on_overlapping_keys_end_in_the_newest_table(writer_url, caplog):
    rng = random.Random(14)
    texts = ["", "\x00", "a", "B", "é", "\U0001f600", "banner"]
    records = [
        scan(rng.randrange(20), rng.choice(texts), rng.randrange(1, 3),
             ip=f"10.0.0.{rng.randrange(8)}", port=rng.choice([22, 80, 443]))
        for _ in range(600)
    ]  # fmt: skip
    letters = [DeadLetter(bytes([n % 5]), "invalid_json", f"m{n % 7}", 1.0) for n in range(30)]
    start = threading.Barrier(3)

    def write_everything(seed: int) -> None:
        # Each writer delivers the whole set (at-least-once: all three overlap everywhere),
        # in its own order and its own batch sizes, all at the same time.
        order = random.Random(seed)
        mine, my_letters = records[:], letters[:]
        order.shuffle(mine)
        order.shuffle(my_letters)
        with PostgresStore.open(writer_url, synchronous="OFF") as store:
            start.wait()
            while mine:
                size = order.randint(1, 60)
                store.write_batch(mine[:size], my_letters[:2])
                mine, my_letters = mine[size:], my_letters[2:]
            store.write_batch([], my_letters)

    writers = [InThread(lambda seed=seed: write_everything(seed)) for seed in range(3)]
    for writer in writers:
        writer.result(timeout=120)
    assert table(writer_url) == expected_table(records)
    stored = sql(writer_url, "SELECT message_id, payload FROM dead_letters")
    assert sorted((m, bytes(p)) for m, p in stored) == sorted(
        {(d.message_id, d.payload) for d in letters}
    )
    # Keys locked in one order by every batch: no deadlock ever needed a retry.
    assert "retrying it whole" not in caplog.text


def test_every_writer_reports_the_shared_table_not_only_its_own_keys(writer_url, monkeypatch):
    """Replicas share one table: the rows gauge of each must count the others' keys too.
    Each batch reads the shared count back in its own transaction (no count of the table)."""
    with PostgresStore.open(writer_url) as first, PostgresStore.open(writer_url) as second:
        first.write_batch([ScanRecord(f"10.0.0.{i}", 80, "HTTP", 1, "a", 2) for i in range(5)])
        second.write_batch([ScanRecord(f"10.0.1.{i}", 80, "HTTP", 1, "b", 2) for i in range(3)])
        assert second.row_count() == 8
        first.write_batch([ScanRecord("10.0.0.1", 80, "HTTP", 2, "newer", 2)])  # no new key
        assert first.row_count() == 8


def test_a_read_only_session_is_dropped_so_the_retry_reconnects(writer_url, store):
    # A failover can leave the writer's session read-only (25006): the rollback succeeds,
    # and reusing that session would refuse every batch forever (issue 25).
    store.write_batch([scan(ts=1)])
    session = store._conn
    session.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
    session.commit()
    with pytest.raises(StoreUnavailable, match="25006"):
        store.write_batch([scan(ts=2)])
    assert store.write_batch([scan(ts=3)]).changed_keys == 1
    assert table(writer_url)[0][3] == 3
    store.close()


def test_connections_ask_for_a_read_write_session_unless_the_url_says_otherwise():
    assert ("target_session_attrs", "read-write") in DEFAULT_PARAMS


def test_connections_notice_a_dead_peer_in_seconds_unless_the_url_says_otherwise():
    params = dict(DEFAULT_PARAMS)
    assert params["keepalives"] == "1" and int(params["tcp_user_timeout"]) <= 10_000
    keys = ("keepalives_idle", "keepalives_interval", "keepalives_count")
    idle, every, count = (int(params[key]) for key in keys)
    assert idle + every * count <= 15


def test_statements_give_up_well_before_the_writer_would_be_killed_as_stalled(store):
    shown = store._conn.execute("SHOW statement_timeout").fetchone()[0]
    store._conn.commit()
    timeout_ms = int(shown.removesuffix("s")) * 1000
    assert 2 * BUSY_TIMEOUT_MS <= timeout_ms <= 20_000
    assert postgres_writer.statement_timeout_ms(20_000) == 40_000  # above the lock wait
