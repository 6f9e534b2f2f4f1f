"""One-iteration tests of the process roles, run in-process without spawning anything.

Each role has the lifecycle of `contracts.lifecycle` (open, run_once, shutdown), driven in a
child by `supervisor.children.drive_role`; here a test calls each step itself, and calls the
driver too (it exits with SystemExit, which a test catches). The writer runs against a real
SQLite file; the decoder against a recording stand-in for its subscription (the real one is
covered end to end in test_pipeline_e2e.py, in the lease test of test_supervisor_cli.py and
in `DecoderRole.open` below, against the emulator).
"""

from __future__ import annotations

import pickle
import threading
import time
from multiprocessing import Pipe

import apsw
import pytest

from broker.subscription import PulledMessage
from contracts import messages, metrics
from contracts.lifecycle import CannotStart, NotAvailableYet
from contracts.messages import split_batch_frame
from contracts.records import DeadLetter, ScanRecord
from store import writer_process
from store.errors import StoreError
from store.writer_process import WriterRole, isolate_bad_records
from supervisor.children import drive_role
from supervisor.exit_codes import EXIT_ERROR, EXIT_OK, EXIT_STARTUP
from supervisor.restarts import RestartPolicy
from workers import decoder_process
from workers.decoder_process import PULL_HUNG_AFTER_S, DecoderRole, decode_pulled

V2 = b'{"ip":"1.1.1.%d","port":80,"service":"http","timestamp":%d,"data_version":2,"data":{"response_str":"r%d"}}'  # noqa: E501


def pulled(n: int, start: int = 0) -> list[PulledMessage]:
    return [
        PulledMessage(ack_id=f"ack-{i}", data=V2 % (i % 250, 1000 + i, i), message_id=str(i),
                      publish_time=1.0)
        for i in range(start, start + n)
    ]  # fmt: skip


def record(ip: str = "1.1.1.1", port: int = 80, ts: int = 1, response: str = "r") -> ScanRecord:
    return ScanRecord(ip, port, "HTTP", ts, response, 2)


def read_sent(supervisor_end, wait_s: float = 0.0) -> list[object]:
    """Everything a role has sent so far, batch frames unframed; waits up to `wait_s` for the
    first message."""
    sent: list[object] = []
    while supervisor_end.poll(0 if sent else wait_s):
        frame = supervisor_end.recv_bytes()
        batch = split_batch_frame(frame)
        sent.append(pickle.loads(batch[1] if batch else frame))
    return sent


def without_heartbeats(sent: list[object]) -> list[object]:
    return [m for m in sent if not isinstance(m, messages.Heartbeat)]


# --- restart policy -------------------------------------------------------------------------


def test_restart_backoff_doubles_and_intensity_limit_gives_up():
    policy = RestartPolicy(max_restarts=3, window_s=30)
    assert [policy.record_crash("writer", t) for t in (0, 1, 2)] == [0.25, 0.5, 1.0]
    assert policy.record_crash("writer", 3) is None
    assert policy.record_crash("decoder-0", 3) == 0.25  # counted per child


def test_restarts_outside_the_window_are_forgotten():
    policy = RestartPolicy(max_restarts=2, window_s=10)
    for t in (0, 1):
        policy.record_crash("writer", t)
    assert policy.record_crash("writer", 20) == 0.25


# --- messages ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        messages.DecodedBatch(slot=1, records=[record()], record_ack_ids=["a"],
                              record_publish_times=[1.0]),
        messages.AckBatch(slot=2, ack_ids=["a", "b"]),
        messages.Heartbeat(role="writer"),
        messages.StartupFailed(role="writer", reason="nope"),
        messages.EndOfStream(slot=0),
        messages.WriterLost(),
    ],
)  # fmt: skip
def test_messages_survive_pickle(message):
    assert pickle.loads(pickle.dumps(message)) == message


# --- decoding a pull --------------------------------------------------------------------------


def test_decode_pulled_keeps_every_message_as_a_record_or_a_dead_letter():
    messages_in = [*pulled(3), PulledMessage("ack-bad", b"{nope", "m-bad", 2.0)]
    batch = decode_pulled(slot=4, messages=messages_in, received_at=99.0)
    assert batch.slot == 4
    assert [r.ip for r in batch.records] == ["1.1.1.0", "1.1.1.1", "1.1.1.2"]
    assert batch.record_ack_ids == ["ack-0", "ack-1", "ack-2"]
    assert batch.dead_letter_ack_ids == ["ack-bad"]
    (letter,) = batch.dead_letters
    assert (letter.payload, letter.reason, letter.message_id) == (b"{nope", "invalid_json", "m-bad")


def test_a_decoder_bug_dead_letters_the_message_instead_of_crashing():
    def broken_decode(payload: bytes) -> ScanRecord:
        raise KeyError("bug")

    batch = decode_pulled(0, pulled(1), received_at=0.0, decode=broken_decode)
    assert batch.records == []
    assert batch.dead_letters[0].reason == "decoder_error"


# --- the writer -------------------------------------------------------------------------------


@pytest.fixture
def writer(tmp_path):
    ours, theirs = Pipe()
    role = WriterRole.open(theirs, tmp_path / "w.db", batch_size=5, batch_timeout_s=60)
    yield role, ours, tmp_path / "w.db"
    role.store.close()  # closing twice is harmless; most tests never shut down


def rows(path) -> list[tuple]:
    conn = apsw.Connection(str(path))
    try:
        return list(conn.execute("SELECT ip, port, last_scanned, response FROM scans ORDER BY ip"))
    finally:
        conn.close()


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


def test_writer_open_refuses_a_foreign_file_and_waits_out_an_unusable_folder(tmp_path):
    foreign = tmp_path / "notes.db"
    foreign.write_bytes(b"these are my notes, not a database" * 10)
    _, theirs = Pipe()
    with pytest.raises(CannotStart):  # a restart would not help: the tree halts
        WriterRole.open(theirs, foreign)
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(NotAvailableYet, match="cannot create the folder"):
        WriterRole.open(theirs, tmp_path / "a-file" / "w.db")


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
    role = WriterRole.open(theirs, tmp_path / "w.db", batch_size=100)  # no linger: group commit
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
    role = WriterRole.open(theirs, tmp_path / "w.db", batch_size=10_000, load_linger_s=0.2)
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
    role = WriterRole.open(theirs, tmp_path / "w.db", batch_size=1000, batch_bytes=250)
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
    role = WriterRole.open(theirs, tmp_path / "w.db", batch_size=100, batch_timeout_s=0.05)
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


# --- the decoder ------------------------------------------------------------------------------


class RecordingSubscription:
    """Stands in for broker.subscription.Subscription: serves queued pulls, records settlements."""

    def __init__(self, pulls: list[list[PulledMessage]]):
        self.pulls = pulls
        self.pull_calls = 0
        self.acked: list[str] = []
        self.nacked: list[str] = []
        self.extended: list[str] = []

        self.closed = threading.Event()

    def pull(self, max_messages: int, timeout: float = 0) -> list[PulledMessage]:
        self.pull_calls += 1
        if self.pulls:
            return self.pulls.pop(0)[:max_messages]
        self.closed.wait(0.02)  # an idle long poll, shortened (a real one lasts up to 10 s)
        return []

    def acknowledge(self, ack_ids, deadline=None):
        self.acked += ack_ids

    def nack(self, ack_ids, deadline=None):
        self.nacked += ack_ids

    def modify_deadline(self, ack_ids, seconds, deadline=None):
        self.extended += ack_ids

    def close(self):
        self.closed.set()


class HangingSubscription(RecordingSubscription):
    """A subscription whose pull does not return until the test releases it."""

    def __init__(self):
        super().__init__([])
        self.entered = threading.Event()
        self.released = threading.Event()

    def pull(self, max_messages: int, timeout: float = 0) -> list[PulledMessage]:
        self.entered.set()
        self.released.wait(30)
        return []


def received_batch(supervisor_end) -> messages.DecodedBatch:
    """Read what a decoder sent: batches come framed, for the supervisor to forward as-is."""
    count, batch_pickle = split_batch_frame(supervisor_end.recv_bytes())
    batch = pickle.loads(batch_pickle)
    assert len(batch) == count
    return batch


def decoder(pulls, max_in_flight=10, **settings):
    subscription = RecordingSubscription(pulls)
    ours, theirs = Pipe()
    role = DecoderRole(
        0, subscription, theirs, max_in_flight=max_in_flight, pull_batch=10, **settings
    )
    return role, subscription, ours


def settled(role: DecoderRole) -> None:
    """Wait until the settler performed every ack, nack and extension asked for so far."""
    assert role.settler.wait_idle(10), "settle calls did not finish"


def held(role: DecoderRole) -> set[str]:
    return set(role.held.messages)


def test_decoder_holds_what_it_sent_until_the_writer_acks_it():
    role, subscription, supervisor_end = decoder([pulled(4)])
    assert role.pull_once() == 4
    batch = received_batch(supervisor_end)
    assert isinstance(batch, messages.DecodedBatch) and len(batch) == 4
    assert held(role) == {"ack-0", "ack-1", "ack-2", "ack-3"}
    assert subscription.acked == []
    role.handle(messages.AckBatch(slot=0, ack_ids=["ack-0", "ack-1"]))
    settled(role)
    assert subscription.acked == ["ack-0", "ack-1"]
    assert held(role) == {"ack-2", "ack-3"}


def test_decoder_stops_pulling_when_its_in_flight_budget_is_spent():
    role, subscription, _ = decoder([pulled(10), pulled(5, start=10)], max_in_flight=10)
    role.pull_once()
    calls = subscription.pull_calls
    assert role.pull_once() == 0
    assert subscription.pull_calls == calls, "pulled beyond the in-flight budget"


def test_writer_lost_hands_everything_back_for_redelivery():
    role, subscription, _ = decoder([pulled(3)])
    role.pull_once()
    role.handle(messages.WriterLost())
    settled(role)
    assert sorted(subscription.nacked) == ["ack-0", "ack-1", "ack-2"]
    assert held(role) == set()


def test_stop_pulling_sends_end_of_stream_and_nacks_a_late_pull():
    role, subscription, supervisor_end = decoder([pulled(2)])
    role.handle(messages.StopPulling())
    assert isinstance(supervisor_end.recv(), messages.EndOfStream)
    role.pulling = True  # a pull that was already open when the stop arrived ...
    subscription_pull = subscription.pull

    def pull_then_stop(max_messages, timeout=0):
        got = subscription_pull(max_messages)
        role.pulling = False  # ... returns after the stop
        return got

    subscription.pull = pull_then_stop
    assert role.pull_once() == 0
    settled(role)
    assert sorted(subscription.nacked) == ["ack-0", "ack-1"]
    assert not supervisor_end.poll(0), "a batch was sent after EndOfStream"


def test_leases_about_to_run_out_are_extended():
    role, subscription, _ = decoder([pulled(2)])
    role.pull_once()
    soon = time.monotonic() + 1.0  # as if the leases were about to run out
    for message in role.held.messages.values():
        message.lease_end = soon
    role.extend_leases_if_due()
    settled(role)
    assert sorted(subscription.extended) == ["ack-0", "ack-1"]
    assert all(m.lease_end > soon + 5 for m in role.held.messages.values())


def test_a_pull_that_never_returns_is_reported_as_a_crash():
    role, _, _ = decoder([])
    assert not role.pull_is_hung()
    role.pull_started_at = 100.0
    assert not role.pull_is_hung(now=110.0)
    assert role.pull_is_hung(now=100.0 + 31)
    assert "pull hung" in role.crash_reason


# --- the decoder's lifecycle: open, run_once, shutdown --------------------------------------


@pytest.mark.emulator
def test_decoder_open_refuses_a_missing_subscription_and_finds_an_existing_one(pubsub_target):
    supervisor_end, theirs = Pipe()
    with pytest.raises(CannotStart, match="no-such-sub does not exist"):
        DecoderRole.open(0, theirs, pubsub_target.project, "no-such-sub")
    role = DecoderRole.open(2, theirs, pubsub_target.project, pubsub_target.subscription)
    assert role.slot == 2 and not role.finished
    role.shutdown()
    assert read_sent(supervisor_end) == [messages.Stopped(role="decoder-2")]


def test_decoder_run_once_extends_the_leases_that_are_due_and_heartbeats(monkeypatch):
    monkeypatch.setattr(decoder_process, "HEARTBEAT_INTERVAL_S", 3600.0)
    role, subscription, supervisor_end = decoder([])
    now = time.monotonic()
    far = now + 60
    role.held.add("due", b"x", "1", now, now + 1.0)  # "due" is about to run out
    role.held.add("fresh", b"y", "2", now, far)
    assert role.run_once(timeout=0) is True
    settled(role)
    assert subscription.extended == ["due"]
    assert role.held.get("due").lease_end > time.monotonic() + role.lease_s - 5
    assert role.held.get("fresh").lease_end == far
    assert role.run_once(timeout=0) is True
    settled(role)
    assert subscription.extended == ["due"], "extended a lease that was not due"
    assert read_sent(supervisor_end) == [messages.Heartbeat(role="decoder-0")]
    role.shutdown()


def test_decoder_run_once_acts_on_one_supervisor_message_per_turn():
    role, subscription, supervisor_end = decoder([])
    supervisor_end.send(messages.AckBatch(slot=0, ack_ids=["a"]))
    supervisor_end.send(messages.AckBatch(slot=0, ack_ids=["b"]))
    role.run_once(timeout=0)
    settled(role)
    assert subscription.acked == ["a"]
    role.run_once(timeout=0)
    settled(role)
    assert subscription.acked == ["a", "b"]
    supervisor_end.send(messages.Stop())
    assert role.run_once(timeout=0) is False and role.finished
    role.shutdown()


def test_decoder_run_once_reports_a_hung_pull_instead_of_heartbeating(monkeypatch):
    monkeypatch.setattr(decoder_process, "HEARTBEAT_INTERVAL_S", 0.0)  # every turn, if alive
    subscription = HangingSubscription()
    supervisor_end, theirs = Pipe()
    role = DecoderRole(0, subscription, theirs)
    assert role.run_once(timeout=0) is True  # starts the puller, which enters the pull
    assert subscription.entered.wait(10), "the first run_once did not start pulling"
    assert role.run_once(timeout=0) is True, "a pull that just began is not hung"
    assert read_sent(supervisor_end) == [messages.Heartbeat(role="decoder-0")] * 2
    role.pull_started_at -= PULL_HUNG_AFTER_S + 1  # as if the pull had been open that long
    assert role.run_once(timeout=0) is False
    assert role.finished and "pull hung" in role.crash_reason
    assert read_sent(supervisor_end) == [], "heartbeat sent by a decoder whose pull hung"
    subscription.released.set()
    role.shutdown()
    assert read_sent(supervisor_end) == [messages.Stopped(role="decoder-0")]


def test_decoder_first_run_once_starts_pulling_and_shutdown_hands_back_what_it_held():
    role, subscription, supervisor_end = decoder([pulled(3)])
    assert role.run_once(timeout=0) is True
    sent = read_sent(supervisor_end, wait_s=10)
    deadline = time.monotonic() + 10
    while not any(isinstance(m, messages.DecodedBatch) for m in sent):
        assert time.monotonic() < deadline, "the puller sent no batch"
        sent += read_sent(supervisor_end, wait_s=0.5)
    assert held(role) == {"ack-0", "ack-1", "ack-2"}
    role.shutdown()
    assert not role.puller.is_alive(), "the puller outlived shutdown"
    assert sorted(subscription.nacked) == ["ack-0", "ack-1", "ack-2"]
    assert held(role) == set() and subscription.closed.is_set()
    assert without_heartbeats(read_sent(supervisor_end)) == [messages.Stopped(role="decoder-0")]


def test_decoder_finishes_on_a_closed_link_and_on_a_stop_signal():
    role, _, supervisor_end = decoder([])
    supervisor_end.close()
    assert role.run_once(timeout=0) is False
    assert role.finished and role.crash_reason is None
    role.shutdown()
    role, _, _ = decoder([])
    role.handle_stop_signal()
    assert role.finished and role.crash_reason is None


# --- the one driver of every child ---------------------------------------------------------


class ScriptedRole:
    """A role whose run_once does what the test says, recording the lifecycle calls."""

    def __init__(self, turn):
        self.turn = turn
        self.finished = False
        self.crash_reason = None
        self.calls: list[str] = []

    def run_once(self, timeout: float = 0.5) -> bool:
        self.calls.append("run_once")
        self.turn(self)
        return not self.finished

    def handle_stop_signal(self) -> None:
        self.calls.append("signal")
        self.finished = True

    def shutdown(self) -> None:
        self.calls.append("shutdown")


def drive(theirs, open_role, stop_requested=lambda: False) -> int:
    """Run the driver in-process; return the exit code it chose."""
    with pytest.raises(SystemExit) as exited:
        drive_role("writer", theirs, stop_requested, open_role)
    return exited.value.code


def test_driver_runs_the_writer_from_open_to_a_graceful_stop(tmp_path):
    supervisor_end, theirs = Pipe()
    supervisor_end.send(decode_pulled(0, pulled(2), 0.0))
    supervisor_end.send(messages.Stop())
    code = drive(theirs, lambda: WriterRole.open(theirs, tmp_path / "w.db"))
    assert code == EXIT_OK
    sent = without_heartbeats(read_sent(supervisor_end))
    assert [type(m) for m in sent] == [messages.Ready, messages.AckBatch, messages.Stopped]
    assert len(rows(tmp_path / "w.db")) == 2


def test_driver_on_sigterm_shuts_the_writer_down_without_committing(tmp_path):
    supervisor_end, theirs = Pipe()
    supervisor_end.send(decode_pulled(0, pulled(2), 0.0))
    opened = []

    def open_writer():
        opened.append(WriterRole.open(theirs, tmp_path / "w.db"))
        return opened[0]

    code = drive(theirs, open_writer, stop_requested=lambda: True)
    assert code == EXIT_OK
    assert read_sent(supervisor_end) == [messages.Ready(role="writer")]
    assert rows(tmp_path / "w.db") == []
    with pytest.raises(StoreError, match="closed"):
        opened[0].store.write_batch([record()])


def test_driver_turns_a_refused_start_into_startup_failed_and_exit_3(tmp_path):
    foreign = tmp_path / "notes.db"
    foreign.write_bytes(b"not a database" * 10)
    supervisor_end, theirs = Pipe()
    code = drive(theirs, lambda: WriterRole.open(theirs, foreign))
    assert code == EXIT_STARTUP
    (failed,) = read_sent(supervisor_end)
    assert isinstance(failed, messages.StartupFailed) and failed.role == "writer"


def test_driver_reports_a_crash_after_shutting_the_role_down():
    def boom(role):
        raise RuntimeError("boom")

    role = ScriptedRole(boom)
    supervisor_end, theirs = Pipe()
    assert drive(theirs, lambda: role) == EXIT_ERROR
    assert role.calls == ["run_once", "shutdown"]
    assert read_sent(supervisor_end) == [
        messages.Ready(role="writer"),
        messages.Crashed(role="writer", reason="RuntimeError: boom"),
    ]


def test_driver_reports_a_role_that_ended_itself_on_an_error():
    def hang(role):
        role.crash_reason, role.finished = "pull hung for 31s", True

    role = ScriptedRole(hang)
    supervisor_end, theirs = Pipe()
    assert drive(theirs, lambda: role) == EXIT_ERROR
    assert role.calls == ["run_once", "shutdown"]
    assert read_sent(supervisor_end)[-1] == messages.Crashed("writer", "pull hung for 31s")


def test_driver_reports_an_unavailable_resource_as_a_crash_to_restart():
    def unavailable():
        raise NotAvailableYet("Pub/Sub did not answer")

    supervisor_end, theirs = Pipe()
    assert drive(theirs, unavailable) == EXIT_ERROR
    assert read_sent(supervisor_end) == [messages.Crashed("writer", "Pub/Sub did not answer")]
