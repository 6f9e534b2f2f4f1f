"""The writer role in-process, one step at a time (`contracts.lifecycle`: open, run_once,
shutdown) against a real SQLite file: group commit, batch bounds, isolating bad records,
stopping."""

from __future__ import annotations

import time
from multiprocessing import Pipe

import apsw
import pytest
from role_doubles import (
    pulled,
    read_sent,
    record,
    rows,
    without_heartbeats,
    writer_settings,
)

from contracts import messages, metrics
from contracts.lifecycle import CannotStart
from contracts.records import DeadLetter
from store import writer_process
from store.errors import StoreError
from store.isolation import isolate_bad_records
from store.writer_process import WriterRole
from workers.pulled import decode_pulled


@pytest.fixture
def writer(tmp_path):
    ours, theirs = Pipe()
    role = WriterRole.open(
        theirs, writer_settings(tmp_path / "w.db", batch_size=5, batch_timeout_s=60)
    )
    yield role, ours, tmp_path / "w.db"
    role.store.close()  # closing twice is harmless; most tests never shut down


def test_writer_commits_a_full_batch_then_acks_each_slot(writer):
    role, supervisor_end, path = writer
    role.handle(decode_pulled(0, pulled(2), 0.0))
    assert not supervisor_end.poll(0), "acked before the commit"
    assert rows(path) == []
    supervisor_end.send(decode_pulled(1, pulled(3, start=2), 0.0))  # 5 messages: batch full
    role.run_once(timeout=0)  # full: committed although the 60 s linger has not passed
    acks = {}
    for ack in without_heartbeats(read_sent(supervisor_end)):
        acks[ack.slot] = ack.ack_ids
    assert acks == {0: ["ack-0", "ack-1"], 1: ["ack-2", "ack-3", "ack-4"]}
    assert len(rows(path)) == 5


def test_writer_counts_every_committed_records_latency_once(writer):
    role, _, _ = writer
    counted = {s.name: s.value for s in metrics.END_TO_END_LATENCY.collect()[0].samples}
    batch = decode_pulled(0, pulled(3), 0.0)
    batch.record_publish_times = [time.time() - 0.03, time.time() - 0.2, time.time() + 5]
    role.handle(batch)
    role.flush()
    after = {s.name: s.value for s in metrics.END_TO_END_LATENCY.collect()[0].samples}
    name = "miniscan_end_to_end_latency_seconds"
    assert after[f"{name}_count"] - counted[f"{name}_count"] == 3
    # a clock that runs behind the broker's counts 0, not a negative latency
    assert 0.2 < after[f"{name}_sum"] - counted[f"{name}_sum"] < 0.4


def test_writer_flushes_on_stop_and_says_stopped(writer):
    role, supervisor_end, path = writer
    role.handle(decode_pulled(0, pulled(1), 0.0))
    role.handle(messages.Stop())
    assert isinstance(supervisor_end.recv(), messages.AckBatch)
    assert isinstance(supervisor_end.recv(), messages.Stopped)
    assert role.finished and len(rows(path)) == 1


def test_one_bad_record_is_isolated_and_the_rest_committed(writer):
    role, supervisor_end, path = writer
    good = [record(ip=f"1.1.1.{i}") for i in range(7)]
    bad = record(ip="9.9.9.9", port=70000)  # the decoder never emits this; the CHECK refuses it
    batch = messages.DecodedBatch(
        slot=0, records=[*good[:3], bad, *good[3:]],
        record_ack_ids=[f"a{i}" for i in range(8)], record_publish_times=[1.0] * 8,
        dead_letters=[DeadLetter(b"x", "invalid_json", "m1", 0.0)], dead_letter_ack_ids=["d1"],
    )  # fmt: skip
    role.handle(batch)
    role.flush()
    assert sorted(r[0] for r in rows(path)) == sorted(r.ip for r in good)
    conn = apsw.Connection(str(path))
    reasons = sorted(r for (r,) in conn.execute("SELECT reason FROM dead_letters"))
    conn.close()
    assert reasons == ["invalid_json"]  # the refused record goes back to its decoder ...
    ack = supervisor_end.recv()
    assert sorted(ack.ack_ids) == sorted([f"a{i}" for i in range(8) if i != 3] + ["d1"])
    ((ack_id, why),) = ack.rejected  # ... which holds its bytes and dead-letters them
    assert ack_id == "a3" and "CHECK constraint failed" in why


def test_isolation_costs_few_writes():
    writes = []

    def write(part):
        writes.append(len(part))
        if any(r.port > 65535 for r in part):
            from store.errors import BatchDataError

            raise BatchDataError("CHECK constraint failed")

    records = [(record(ip=f"1.1.{i // 250}.{i % 250}"), (0, f"a{i}")) for i in range(1024)]
    records[700] = (record(port=70000), (1, "bad"))
    refused = isolate_bad_records(write, records)
    assert [tag for tag, _ in refused] == [(1, "bad")]
    assert len(writes) <= 2 * 10 + 1


# --- the writer's lifecycle: open, run_once, shutdown ---------------------------------------


def test_writer_open_refuses_a_foreign_file_and_an_unusable_folder(tmp_path):
    foreign = tmp_path / "notes.db"
    foreign.write_bytes(b"these are my notes, not a database" * 10)
    _, theirs = Pipe()
    with pytest.raises(CannotStart):  # a restart would not help: the tree halts
        WriterRole.open(theirs, writer_settings(foreign))
    (tmp_path / "a-file").write_text("x")
    # A setting that waiting cannot fix at start-up (issue 25): exit 3, not a wait.
    with pytest.raises(CannotStart, match="cannot create the folder"):
        WriterRole.open(theirs, writer_settings(tmp_path / "a-file" / "w.db"))
    (tmp_path / "a-file").unlink()
    role = WriterRole.open(theirs, writer_settings(tmp_path / "a-file" / "w.db"))
    role.handle(decode_pulled(0, pulled(1), 0.0))
    role.flush()
    assert rows(tmp_path / "a-file" / "w.db") and role.outage.reason == ""
    role.shutdown()


def test_writer_run_once_takes_one_message_and_flushes_only_when_the_batch_is_due(writer):
    role, supervisor_end, path = writer
    supervisor_end.send(decode_pulled(0, pulled(2), 0.0))
    assert role.run_once(timeout=0) is True
    assert role.pending_count == 2
    assert without_heartbeats(read_sent(supervisor_end)) == [], "acked before the commit"
    assert rows(path) == []
    role.flush_due -= 60  # as if the 60 s batch timeout had passed
    assert role.run_once(timeout=0) is True
    assert without_heartbeats(read_sent(supervisor_end)) == [
        messages.AckBatch(slot=0, ack_ids=["ack-0", "ack-1"])
    ]
    assert len(rows(path)) == 2 and role.flush_due is None


def test_group_commit_takes_what_waits_in_the_pipe_and_commits_once_it_is_idle(tmp_path):
    supervisor_end, theirs = Pipe()
    role = WriterRole.open(
        theirs, writer_settings(tmp_path / "w.db", batch_size=100)
    )  # no linger: group commit
    try:
        for slot in range(3):  # arrived while the previous commit ran
            supervisor_end.send(decode_pulled(slot, pulled(2, start=2 * slot), 0.0))
        assert role.run_once(timeout=0) is True
        acks = without_heartbeats(read_sent(supervisor_end))
        assert [(a.slot, a.ack_ids) for a in acks] == [
            (0, ["ack-0", "ack-1"]), (1, ["ack-2", "ack-3"]), (2, ["ack-4", "ack-5"])
        ]  # fmt: skip
        assert len(rows(tmp_path / "w.db")) == 6 and role.pending == []
        supervisor_end.send(decode_pulled(0, pulled(1, start=9), 0.0))
        role.run_once(timeout=0)  # one message, pipe idle: committed at once, no timer
        assert [a.ack_ids for a in without_heartbeats(read_sent(supervisor_end))] == [["ack-9"]]
    finally:
        role.shutdown()


def test_under_a_flood_the_writer_lets_the_batch_grow_and_a_trickle_commits_at_once(tmp_path):
    supervisor_end, theirs = Pipe()
    # A 0.2 s load linger: 100 joiners expected within it (store.linger) means 500 msgs/s.
    role = WriterRole.open(
        theirs, writer_settings(tmp_path / "w.db", batch_size=10_000, load_linger_s=0.2)
    )
    try:
        sent = [decode_pulled(0, pulled(1), 0.0)]
        supervisor_end.send(sent[0])
        role.run_once(timeout=0)  # one message, pipe idle, no flood: committed at once
        assert [a.ack_ids for a in without_heartbeats(read_sent(supervisor_end))] == [["ack-0"]]
        for slot in range(3):  # 30 more at once: 600 msgs/s as the writer sees it, a flood
            sent.append(decode_pulled(slot, pulled(10, start=1 + 10 * slot), 0.0))
            supervisor_end.send(sent[-1])
        role.run_once(timeout=0)
        assert role.pending_count == 30 and read_sent(supervisor_end) == [], (
            "committed at once although more were expected within the load linger"
        )
        sent.append(decode_pulled(1, pulled(5, start=5000), 0.0))
        supervisor_end.send(sent[-1])
        started = time.monotonic()
        while role.pending and time.monotonic() - started < 5:
            role.run_once(timeout=1.0)  # waits no longer than the linger's end
        assert 0.1 < time.monotonic() - started < 2.0
        acks = without_heartbeats(read_sent(supervisor_end))
        assert sorted(len(a.ack_ids) for a in acks) == [10, 10, 15]  # one commit
        assert len(rows(tmp_path / "w.db")) == len({r.key for b in sent for r in b.records})
    finally:
        role.shutdown()


def test_a_batch_is_bounded_in_bytes_and_the_rest_waits_for_the_next_commit(tmp_path):
    supervisor_end, theirs = Pipe()
    role = WriterRole.open(
        theirs, writer_settings(tmp_path / "w.db", batch_size=1000, batch_bytes=250)
    )
    try:
        for slot in range(3):  # each about 100 bytes of payload per message, 2 messages
            supervisor_end.send(decode_pulled(slot, pulled(2, start=2 * slot), 0.0))
        role.run_once(timeout=0)
        first = without_heartbeats(read_sent(supervisor_end))
        assert [a.slot for a in first] == [0, 1], "the batch went past its byte bound"
        role.run_once(timeout=0)
        assert [a.slot for a in without_heartbeats(read_sent(supervisor_end))] == [2]
    finally:
        role.shutdown()


def test_writer_run_once_waits_no_longer_than_the_pending_batch(tmp_path):
    supervisor_end, theirs = Pipe()
    role = WriterRole.open(
        theirs, writer_settings(tmp_path / "w.db", batch_size=100, batch_timeout_s=0.05)
    )
    try:
        supervisor_end.send(decode_pulled(3, pulled(1), 0.0))
        role.run_once(timeout=0)
        started = time.monotonic()
        role.run_once(timeout=30)  # nothing arrives: the flush deadline ends the wait
        assert time.monotonic() - started < 10
        assert isinstance(without_heartbeats(read_sent(supervisor_end))[0], messages.AckBatch)
    finally:
        role.shutdown()


def test_writer_heartbeats_once_per_interval(writer, monkeypatch):
    role, supervisor_end, _ = writer
    monkeypatch.setattr(writer_process, "HEARTBEAT_INTERVAL_S", 3600.0)
    role.run_once(timeout=0)
    role.run_once(timeout=0)
    assert read_sent(supervisor_end) == [messages.Heartbeat(role="writer")]


def test_writer_run_once_on_stop_flushes_then_says_stopped_and_finishes(writer):
    role, supervisor_end, path = writer
    supervisor_end.send(decode_pulled(0, pulled(1), 0.0))
    supervisor_end.send(messages.Stop())
    assert role.run_once(timeout=0) is False  # both were waiting: taken in one turn
    sent = without_heartbeats(read_sent(supervisor_end))
    assert [type(m) for m in sent] == [messages.AckBatch, messages.Stopped]
    assert role.finished and len(rows(path)) == 1
    role.shutdown()
    with pytest.raises(StoreError, match="closed"):
        role.store.write_batch([record()])


@pytest.mark.parametrize("how", ["signal", "closed link"])
def test_writer_stopped_by_a_signal_or_a_lost_link_exits_without_committing(writer, how):
    role, supervisor_end, path = writer
    supervisor_end.send(decode_pulled(0, pulled(2), 0.0))
    role.run_once(timeout=0)
    if how == "signal":
        role.handle_stop_signal()
    else:
        supervisor_end.close()
        assert role.run_once(timeout=0) is False
    assert role.finished
    role.shutdown()
    assert rows(path) == [], "committed on the way out"
    if how == "signal":
        assert without_heartbeats(read_sent(supervisor_end)) == [], "acked without a commit"
    with pytest.raises(StoreError, match="closed"):
        role.store.write_batch([record()])
