"""Stand-ins and readers for driving a process role in-process, one step at a time.

What the role tests share: pulled messages and records to feed a role, a recording stand-in
for the decoder's subscription, `decoder(...)` to build a decoder role on one, and readers of
what a role sent down its pipe.
"""

from __future__ import annotations

import pickle
import threading
from multiprocessing import Pipe

import apsw

from broker.subscription import PulledMessage
from contracts import messages
from contracts.messages import split_batch_frame
from contracts.records import ScanRecord
from store.writer_settings import WriterSettings
from workers.decoder_process import DecoderRole
from workers.decoder_settings import DecoderSettings

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


# Every decoder role `decoder` built, for a test module to stop their settler threads after
# each test (`stop_settlers`), whether or not the test shut its role down.
BUILT: list[DecoderRole] = []


def decoder(pulls, max_in_flight=10, **settings):
    subscription = RecordingSubscription(pulls)
    ours, theirs = Pipe()
    budget = DecoderSettings(max_in_flight=max_in_flight, pull_batch_max=10, **settings)
    role = DecoderRole(0, subscription, theirs, budget)
    BUILT.append(role)
    return role, subscription, ours


def stop_settlers() -> None:
    while BUILT:
        assert BUILT.pop().settler.close(timeout=10), "a settler thread did not stop"


def settled(role: DecoderRole) -> None:
    """Wait until the settler performed every ack, nack and extension asked for so far."""
    assert role.settler.wait_idle(10), "settle calls did not finish"


def held(role: DecoderRole) -> set[str]:
    return set(role.held.messages)


def writer_settings(db_path, **settings) -> WriterSettings:
    """The writer's settings for a test database; no load linger unless asked for, so that a
    test sees group commit alone."""
    return WriterSettings(db_path=str(db_path), **{"load_linger_s": 0.0, **settings})


def rows(path) -> list[tuple]:
    conn = apsw.Connection(str(path))
    try:
        return list(conn.execute("SELECT ip, port, last_scanned, response FROM scans ORDER BY ip"))
    finally:
        conn.close()
