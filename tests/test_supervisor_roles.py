"""One-iteration tests of the process roles, run in-process without spawning anything.

The writer runs against a real SQLite file; the decoder against a recording stand-in for its
subscription (the real one is covered end to end in test_pipeline_e2e.py and in the lease
test below, against the emulator).
"""

from __future__ import annotations

import pickle
from multiprocessing import Pipe

import apsw
import pytest

from broker.subscription import PulledMessage
from contracts import messages
from contracts.messages import split_batch_frame
from contracts.records import DeadLetter, ScanRecord
from store.db import ScanStore
from store.writer_process import WriterRole, isolate_bad_records
from supervisor.restarts import RestartPolicy
from workers.decoder_process import DecoderRole, decode_pulled

V2 = b'{"ip":"1.1.1.%d","port":80,"service":"http","timestamp":%d,"data_version":2,"data":{"response_str":"r%d"}}'  # noqa: E501


def pulled(n: int, start: int = 0) -> list[PulledMessage]:
    return [
        PulledMessage(ack_id=f"ack-{i}", data=V2 % (i % 250, 1000 + i, i), message_id=str(i),
                      publish_time=1.0)
        for i in range(start, start + n)
    ]  # fmt: skip


def record(ip: str = "1.1.1.1", port: int = 80, ts: int = 1, response: str = "r") -> ScanRecord:
    return ScanRecord(ip, port, "HTTP", ts, response, 2)


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
    store = ScanStore.open(tmp_path / "w.db")
    ours, theirs = Pipe()
    role = WriterRole(store, theirs, batch_size=5, batch_timeout_s=60)
    yield role, ours, tmp_path / "w.db"
    store.close()


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
    role.handle(decode_pulled(1, pulled(3, start=2), 0.0))  # 5 messages: batch full
    acks = {}
    while supervisor_end.poll(0):
        ack = supervisor_end.recv()
        acks[ack.slot] = ack.ack_ids
    assert acks == {0: ["ack-0", "ack-1"], 1: ["ack-2", "ack-3", "ack-4"]}
    assert len(rows(path)) == 5


def test_writer_flushes_on_stop_and_says_stopped(writer):
    role, supervisor_end, path = writer
    role.handle(decode_pulled(0, pulled(1), 0.0))
    role.handle(messages.Stop())
    assert isinstance(supervisor_end.recv(), messages.AckBatch)
    assert isinstance(supervisor_end.recv(), messages.Stopped)
    assert role.stopping and len(rows(path)) == 1


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
    assert reasons == ["invalid_json", "store_rejected"]
    assert sorted(supervisor_end.recv().ack_ids) == sorted([f"a{i}" for i in range(8)] + ["d1"])


def test_isolation_costs_few_writes():
    writes = []

    def write(part):
        writes.append(len(part))
        if any(r.port > 65535 for r in part):
            from store.db import BatchDataError

            raise BatchDataError("CHECK constraint failed")

    records = [record(ip=f"1.1.{i // 250}.{i % 250}") for i in range(1024)]
    records[700] = record(port=70000)
    refused = isolate_bad_records(write, records)
    assert [r.port for r, _ in refused] == [70000]
    assert len(writes) <= 2 * 10 + 1


# --- the decoder ------------------------------------------------------------------------------


class RecordingSubscription:
    """Stands in for broker.subscription.Subscription: serves queued pulls, records settlements."""

    def __init__(self, pulls: list[list[PulledMessage]]):
        self.pulls = pulls
        self.pull_calls = 0
        self.acked: list[str] = []
        self.nacked: list[str] = []
        self.extended: list[str] = []

    def pull(self, max_messages: int, timeout: float = 0) -> list[PulledMessage]:
        self.pull_calls += 1
        return self.pulls.pop(0)[:max_messages] if self.pulls else []

    def acknowledge(self, ack_ids):
        self.acked += ack_ids

    def nack(self, ack_ids):
        self.nacked += ack_ids

    def modify_deadline(self, ack_ids, seconds):
        self.extended += ack_ids

    def close(self):
        pass


def received_batch(supervisor_end) -> messages.DecodedBatch:
    """Read what a decoder sent: batches come framed, for the supervisor to forward as-is."""
    count, batch_pickle = split_batch_frame(supervisor_end.recv_bytes())
    batch = pickle.loads(batch_pickle)
    assert len(batch) == count
    return batch


def decoder(pulls, max_in_flight=10):
    subscription = RecordingSubscription(pulls)
    ours, theirs = Pipe()
    role = DecoderRole(0, subscription, theirs, max_in_flight=max_in_flight, pull_batch=10)
    return role, subscription, ours


def test_decoder_holds_what_it_sent_until_the_writer_acks_it():
    role, subscription, supervisor_end = decoder([pulled(4)])
    assert role.pull_once() == 4
    batch = received_batch(supervisor_end)
    assert isinstance(batch, messages.DecodedBatch) and len(batch) == 4
    assert set(role.in_flight) == {"ack-0", "ack-1", "ack-2", "ack-3"}
    assert subscription.acked == []
    role.handle(messages.AckBatch(slot=0, ack_ids=["ack-0", "ack-1"]))
    assert subscription.acked == ["ack-0", "ack-1"]
    assert set(role.in_flight) == {"ack-2", "ack-3"}


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
    assert sorted(subscription.nacked) == ["ack-0", "ack-1", "ack-2"]
    assert role.in_flight == {}


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
    assert sorted(subscription.nacked) == ["ack-0", "ack-1"]
    assert not supervisor_end.poll(0), "a batch was sent after EndOfStream"


def test_leases_about_to_run_out_are_extended():
    role, subscription, _ = decoder([pulled(2)])
    role.pull_once()
    for ack_id in role.in_flight:
        role.in_flight[ack_id] = 0.0  # as if the lease were about to expire
    role.extend_leases_if_due()
    assert sorted(subscription.extended) == ["ack-0", "ack-1"]


def test_a_pull_that_never_returns_is_reported_as_a_crash():
    role, _, _ = decoder([])
    assert not role.pull_is_hung()
    role.pull_started_at = 100.0
    assert not role.pull_is_hung(now=110.0)
    assert role.pull_is_hung(now=100.0 + 31)
    assert "pull hung" in role.crash_reason
