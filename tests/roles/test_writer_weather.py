"""The writer role through a database it cannot write (issue 25), in-process against a real
SQLite file whose write lock another connection holds: it keeps its batch, heartbeats the
reason instead of crashing, commits and acks once the lock is gone, and stops without acking
if told to during the outage. Also: a dead letter the database refuses is isolated like a
refused record, never crashing the writer.
"""

from __future__ import annotations

import threading
from multiprocessing import Pipe

import apsw
import pytest
from role_doubles import pulled, read_sent, record, rows, writer_settings

from contracts import messages, metrics
from contracts.records import DeadLetter
from store import outage
from store.errors import BatchDataError, StoreUnavailable
from store.sqlite.writer import ScanStore
from store.writer_process import WriterRole
from testkit.waiting import wait_until
from workers.pulled import decode_pulled


@pytest.fixture
def locked_file(tmp_path):
    """A store file and another connection holding its write lock until released."""
    path = tmp_path / "w.db"
    ScanStore.open(path).close()
    other = apsw.Connection(str(path))
    other.execute("BEGIN IMMEDIATE")
    yield path, other
    if not other.get_autocommit():
        other.execute("ROLLBACK")
    other.close()


def database_errors() -> float:
    return sum(s.value for s in metrics.DATABASE_ERRORS.collect()[0].samples
               if s.name.endswith("_total"))  # fmt: skip


def test_a_lock_past_the_busy_timeout_is_waited_out_with_heartbeats_then_acked(
    locked_file, monkeypatch
):
    monkeypatch.setattr(outage, "MAX_DELAY_S", 0.2)
    path, other = locked_file
    supervisor_end, theirs = Pipe()
    role = WriterRole.open(theirs, writer_settings(path, busy_timeout_ms=50))
    errors_before = database_errors()
    role.handle(decode_pulled(0, pulled(3), 0.0))
    flushing = threading.Thread(target=role.flush)
    flushing.start()
    beats: list[object] = []

    def heard_the_reason() -> bool:
        beats.extend(read_sent(supervisor_end))
        return any(isinstance(m, messages.Heartbeat) and "locked" in m.database_problem
                   for m in beats)  # fmt: skip

    wait_until(heard_the_reason, 10, "a heartbeat naming the lock", every=0.05)
    assert flushing.is_alive(), "the writer gave up its batch"
    assert not any(isinstance(m, messages.AckBatch) for m in beats), "acked before the commit"
    assert database_errors() > errors_before
    other.execute("ROLLBACK")  # the lock goes away: the kept batch commits
    flushing.join(timeout=10)
    assert not flushing.is_alive()
    sent = beats + read_sent(supervisor_end, wait_s=0.1)
    acks = [m for m in sent if isinstance(m, messages.AckBatch)]
    assert [a.ack_ids for a in acks] == [["ack-0", "ack-1", "ack-2"]]
    assert len(rows(path)) == 3 and role.outage.reason == ""
    role.shutdown()


def test_told_to_stop_during_an_outage_the_writer_acks_nothing(locked_file, monkeypatch):
    monkeypatch.setattr(outage, "MAX_DELAY_S", 0.2)
    path, _ = locked_file
    stop = threading.Event()
    supervisor_end, theirs = Pipe()
    role = WriterRole.open(theirs, writer_settings(path, busy_timeout_ms=50), stop.is_set)
    role.handle(decode_pulled(0, pulled(2), 0.0))
    flushing = threading.Thread(target=role.flush)
    flushing.start()
    wait_until(lambda: role.outage.failures >= 2, 10, "the writer to retry", every=0.05)
    stop.set()  # SIGTERM, as drive_role reports it
    flushing.join(timeout=10)
    assert not flushing.is_alive() and role.finished
    sent = read_sent(supervisor_end)
    assert not any(isinstance(m, messages.AckBatch) for m in sent), "acked without a commit"
    role.shutdown()


def drive(role: WriterRole) -> None:
    while role.run_once():
        pass


def test_a_stop_during_an_outage_is_seen_at_once_and_acks_nothing(locked_file, monkeypatch):
    # Without reading the pipe while waiting, the Stop went unseen until the supervisor's
    # shutdown timeout forced the stop (exit 5).
    monkeypatch.setattr(outage, "MAX_DELAY_S", 0.2)
    path, _ = locked_file
    supervisor_end, theirs = Pipe()
    role = WriterRole.open(theirs, writer_settings(path, busy_timeout_ms=50))
    supervisor_end.send(decode_pulled(0, pulled(2), 0.0))
    running = threading.Thread(target=lambda: drive(role), daemon=True)
    running.start()
    wait_until(lambda: role.outage.failures >= 1, 10, "the writer to retry", every=0.05)
    supervisor_end.send(decode_pulled(1, pulled(1), 0.0))  # waits for the next commit
    supervisor_end.send(messages.Stop())
    running.join(timeout=10)
    assert not running.is_alive() and role.finished
    sent = read_sent(supervisor_end)
    assert any(isinstance(m, messages.Stopped) for m in sent)
    assert not any(isinstance(m, messages.AckBatch) for m in sent), "acked without a commit"
    role.shutdown()


def test_a_dead_letter_the_database_refuses_raises_instead_of_vanishing(tmp_path):
    refused = DeadLetter(b"x", "", "m-empty-reason", 0.0)  # CHECK (length(reason) > 0)
    with ScanStore.open(tmp_path / "w.db") as store, pytest.raises(BatchDataError):
        store.write_batch([], [refused])  # INSERT OR IGNORE skipped it without a word


def test_a_refused_dead_letter_is_isolated_and_the_rest_acked(tmp_path):
    path = tmp_path / "w.db"
    supervisor_end, theirs = Pipe()
    role = WriterRole.open(theirs, writer_settings(path))
    batch = messages.DecodedBatch(
        slot=0, records=[record(ip="1.1.1.1"), record(ip="2.2.2.2")],
        record_ack_ids=["a0", "a1"], record_publish_times=[1.0, 1.0],
        dead_letters=[DeadLetter(b"{", "invalid_json", "m1", 0.0),
                      DeadLetter(b"x", "", "m2", 0.0)],
        dead_letter_ack_ids=["d1", "d2"],
    )  # fmt: skip
    role.handle(batch)
    role.flush()  # no crash: the refused letter goes back to its decoder, as a refused record
    [ack] = [m for m in read_sent(supervisor_end) if isinstance(m, messages.AckBatch)]
    assert sorted(ack.ack_ids) == ["a0", "a1", "d1"]
    ((ack_id, why),) = ack.rejected
    assert ack_id == "d2" and "CHECK constraint failed" in why
    assert len(rows(path)) == 2
    conn = apsw.Connection(str(path))
    assert [r for (r,) in conn.execute("SELECT reason FROM dead_letters")] == ["invalid_json"]
    conn.close()
    role.shutdown()


def test_an_idle_writer_notices_the_database_come_back(tmp_path, monkeypatch):
    # Unreachable at start and no batch since: DATABASE_UP and /readyz's reason used to stay
    # stale until a batch committed (issue 25).
    monkeypatch.setattr(outage, "MAX_DELAY_S", 0.2)
    real_open, down = WriterRole._open_store, threading.Event()
    down.set()

    def open_while_up(role: WriterRole):
        if down.is_set():
            raise StoreUnavailable("cannot connect: the server is starting up")
        return real_open(role)

    monkeypatch.setattr(WriterRole, "_open_store", open_while_up)
    supervisor_end, theirs = Pipe()
    role = WriterRole.open(theirs, writer_settings(tmp_path / "w.db"))
    role.run_once(timeout=0)
    assert role.store is None and role.outage.reason and metrics.DATABASE_UP._value.get() == 0
    down.clear()
    wait_until(lambda: role.run_once(timeout=0.05) and not role.outage.reason, 10,
               "the idle writer to reach the database", every=0.05)  # fmt: skip
    assert role.store is not None and metrics.DATABASE_UP._value.get() == 1
    read_sent(supervisor_end)
    role.shutdown()


def test_a_stop_whose_flush_meets_an_outage_hands_the_batch_back(locked_file, monkeypatch):
    # The Stop is already in hand: waiting the outage out would only end in a forced stop.
    monkeypatch.setattr(outage, "MAX_DELAY_S", 0.2)
    path, _ = locked_file
    supervisor_end, theirs = Pipe()
    role = WriterRole.open(theirs, writer_settings(path, busy_timeout_ms=50))
    role.handle(decode_pulled(0, pulled(2), 0.0))
    role.handle(messages.Stop())
    assert role.finished
    sent = read_sent(supervisor_end)
    assert any(isinstance(m, messages.Stopped) for m in sent)
    assert not any(isinstance(m, messages.AckBatch) for m in sent), "acked without a commit"
    role.shutdown()
