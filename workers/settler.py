"""The decoder's settle calls (ack, nack, lease extension), on a thread of their own.

Owns: one worker thread per decoder that performs the Pub/Sub calls which settle or extend
what the decoder holds, in the order they were asked for, each retried on transient errors
for its own deadline (`broker.subscription`), and reports every outcome through a callback.
Acks that queued up behind a call are merged into the next one (one outcome still reported
per request).
Why a thread: in an outage each call may retry for many seconds, and on the decoder's main
loop that stopped the heartbeats until the supervisor killed the decoder as stalled (issue
12: "the shutdown nack retries for 30 s on the thread that also extends leases and
heartbeats"). Here the main loop only queues a request and moves on.

Never: decide what to settle (the decoder does), touch the held-message bookkeeping, or
raise into the caller: a call that fails for good only causes a redelivery, which is safe.
`count_outcome` logs and counts a performed request for the decoder's report.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from broker.subscription import Subscription
from contracts import metrics

log = logging.getLogger(__name__)

# How long each kind may keep retrying through an outage. An ack is worth waiting for (the
# alternative is a redelivery and a second commit); an extension is useless after the lease
# it extends ran out; a nack only speeds up a redelivery that happens anyway.
ACK_DEADLINE_S = 60.0
EXTEND_DEADLINE_S = 8.0
NACK_DEADLINE_S = 10.0
# At most this many ack ids in one merged call (the broker chunks each call by 1,000).
ACK_GROUP_MAX = 5000
_NOTHING = object()


@dataclass(frozen=True, slots=True)
class SettleRequest:
    kind: str  # "ack", "nack" or "extend"
    ack_ids: list[str]
    seconds: int = 0  # the new lease, for "extend"
    why: str = ""  # for the log, for "nack"
    queued_at: float = 0.0  # monotonic


Outcome = Callable[[SettleRequest, Exception | None], None]


class Settler:
    def __init__(self, subscription: Subscription, on_outcome: Outcome) -> None:
        self.subscription = subscription
        self.on_outcome = on_outcome
        self._requests: queue.Queue[SettleRequest | None] = queue.Queue()
        self._unfinished = 0  # submitted and not yet reported; guarded by _idle
        self._idle = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="settler", daemon=True)
        self._thread.start()

    def submit(self, kind: str, ack_ids: list[str], seconds: int = 0, why: str = "") -> None:
        if ack_ids:
            with self._idle:
                self._unfinished += 1
            self._requests.put(SettleRequest(kind, ack_ids, seconds, why, time.monotonic()))

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every request submitted so far has been performed and reported."""
        with self._idle:
            return self._idle.wait_for(lambda: self._unfinished == 0, timeout)

    def close(self, timeout: float) -> bool:
        """Perform what is queued (for at most `timeout` s), then stop. True if all done."""
        self._requests.put(None)
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        carried: SettleRequest | object | None = _NOTHING
        while True:
            request = self._requests.get() if carried is _NOTHING else carried
            carried = _NOTHING
            if request is None:
                return
            group = [request]
            if request.kind == "ack":
                # Acks that queued up while the last call ran go out in one call: under load
                # the writer's commits outpace the round trips, and each call costs the
                # decoder and Pub/Sub about as much as 100 ids more (issue 13). Order is
                # kept: the first request of another kind ends the group and goes next.
                count = len(request.ack_ids)
                while count < ACK_GROUP_MAX:
                    try:
                        following = self._requests.get_nowait()
                    except queue.Empty:
                        break
                    if following is None or following.kind != "ack":
                        carried = following
                        break
                    group.append(following)
                    count += len(following.ack_ids)
            self._perform_group(group)

    def _perform_group(self, group: list[SettleRequest]) -> None:
        """Perform the group's requests in one call (they are of one kind); report each."""
        first = group[0]
        merged = first
        if len(group) > 1:
            ids = [ack_id for request in group for ack_id in request.ack_ids]
            merged = SettleRequest(first.kind, ids, first.seconds, first.why, first.queued_at)
        try:
            self.perform(merged)
        except Exception as exc:  # broker errors; counted there, redelivery follows
            error: Exception | None = exc
        else:
            error = None
        for request in group:
            self.on_outcome(request, error)
        with self._idle:
            self._unfinished -= len(group)
            self._idle.notify_all()

    def perform(self, request: SettleRequest) -> None:
        ids = request.ack_ids
        if request.kind == "ack":
            self.subscription.acknowledge(ids, deadline=ACK_DEADLINE_S)
        elif request.kind == "extend":
            self.subscription.modify_deadline(ids, request.seconds, deadline=EXTEND_DEADLINE_S)
        elif request.kind == "nack":
            self.subscription.nack(ids, deadline=NACK_DEADLINE_S)
        else:
            raise ValueError(f"unknown settle request {request.kind!r}")


def count_outcome(request: SettleRequest, error: Exception | None) -> None:
    """Log a failed call (a redelivery follows) and count what was acked or nacked."""
    count = len(request.ack_ids)
    if error is not None:
        log.warning("%s of %d messages failed (%s): they will be redelivered",
                    request.kind, count, error)  # fmt: skip
    elif request.kind == "ack":
        metrics.MESSAGES_ACKED.inc(count)
    elif request.kind == "nack":
        metrics.MESSAGES_NACKED.inc(count)
        log.info("handed %d messages back for redelivery (%s)", count, request.why)
