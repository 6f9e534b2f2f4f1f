"""The decoder role: pull from Pub/Sub, decode, hand batches to the writer, ack after commit.

Owns: the leases of what a decoder pulled. It pulls only while what it holds stays under
`max_in_flight` messages and `max_in_flight_bytes` bytes (backpressure; a message larger than
the budget is pulled alone), registers each ack id before its batch leaves, acknowledges only
what the writer says is committed, extends leases, and nacks what it holds when the writer
is lost or when it stops. A record the database refused comes back
named in an AckBatch and leaves again as a `store_rejected` dead letter with its bytes.

Pub/Sub errors are weather (issue 12): a failed pull is waited out (`workers.pull_backoff`)
while the main loop heartbeats with `pubsub_ok=False`; a failed settle call only causes a
redelivery. Only a pull hung past its own deadline ends the process.

Three threads: the puller (`workers.puller`: pull, decode, send, paced; this role gives it
the room the budgets leave), the settler (`workers.settler`: ack, nack and lease calls,
merged while one retries) and the main loop (supervisor messages, leases, heartbeats), with
the lifecycle of `contracts.lifecycle`: the first `run_once` starts the puller, `shutdown`
stops it.

Never: decide what a valid scan is (`workers.decode`), touch the database, or acknowledge
a message whose batch has not been committed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import MutableSequence
from multiprocessing.connection import Connection, wait

from broker.client import PubSubUnavailable
from broker.subscription import NotPermitted, PulledMessage, Subscription, SubscriptionMissing
from contracts import metrics
from contracts.child_id import ChildId
from contracts.lifecycle import CannotStart, NotAvailableYet
from contracts.messages import (
    AckBatch,
    EndOfStream,
    Heartbeat,
    Stop,
    Stopped,
    StopPulling,
    WriterLost,
    encode_batch,
)
from workers.decoder_settings import DecoderSettings
from workers.held import LEASE_MARGIN_S, MAX_LEASE_S, MIN_ACK_DEADLINE_S, HeldMessages
from workers.pulled import rejected_batch
from workers.puller import PULL_RETURN_GRACE_S, PULL_TIMEOUT_S, Puller
from workers.settler import Settler, SettleRequest, count_outcome

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL_S = 1.0
SETTLE_ON_EXIT_S = 5.0  # shutdown waits this long for queued acks and the final nack


class DecoderRole:
    """One decoder process's state and loop; tests drive `run_once`, `pull_once`, `handle`."""

    def __init__(
        self,
        slot: int,
        subscription: Subscription,
        link: Connection,
        settings: DecoderSettings | None = None,
        *,
        pull_starts: MutableSequence[float] | None = None,
        pull_share: MutableSequence[float] | None = None,
    ) -> None:
        self.settings = settings = settings or DecoderSettings()
        self.slot = slot
        self.role = ChildId.decoder(slot).name
        self.subscription = subscription
        self.link = link
        self.held = HeldMessages(settings.lease_s, max_lease_s=MAX_LEASE_S)  # under _room
        self._room = threading.Condition()
        self._send_lock = threading.Lock()
        self.settler = Settler(subscription, self._settled)
        self.pulling = True
        self.finished = False
        self.puller = Puller(self, pull_starts, pull_share)  # run_once starts it
        self._next_heartbeat = 0.0
        self.crash_reason: str | None = None

    # --- lifecycle ------------------------------------------------------------------------

    @classmethod
    def open(
        cls, slot: int, link: Connection, settings: DecoderSettings, **shared_arrays
    ) -> DecoderRole:
        """Find the subscription. CannotStart if it does not exist; NotAvailableYet if
        Pub/Sub does not answer (or there are no credentials). `shared_arrays`: the
        constructor's `pull_starts` and `pull_share`."""
        try:
            found = Subscription(settings.project, settings.subscription)
        except PubSubUnavailable as exc:
            raise NotAvailableYet(str(exc)) from exc
        try:
            # The supervisor confirmed at start-up that this account may consume; a decoder
            # asking again would pull and hand back a real message on every restart.
            found.check(confirm_consume=False)
        except PubSubUnavailable as exc:
            found.close()
            verdict = isinstance(exc, (SubscriptionMissing, NotPermitted))
            failure = CannotStart if verdict else NotAvailableYet
            raise failure(str(exc)) from exc
        return cls(slot, found, link, settings, **shared_arrays)

    def run_once(self, timeout: float = HEARTBEAT_INTERVAL_S / 2) -> bool:
        """One turn of the main loop: act on at most one supervisor message (waiting up to
        `timeout` for it), extend leases that are due, check the pull, heartbeat. Returns
        False once the decoder is finished (Stop, link closed, hung or failed pull)."""
        self.puller.start()
        if wait([self.link], timeout=timeout):
            try:
                message = self.link.recv()
            except (EOFError, OSError):
                log.warning("supervisor link closed: exiting")
                self.finished = True
                return False
            self.handle(message)
        self.extend_leases_if_due()
        if self.pull_is_hung():
            self.finished = True
            return False
        self.heartbeat_if_due()
        return not self.finished

    def handle_stop_signal(self) -> None:
        log.info("stop requested by signal: settling and exiting")
        self.finished = True

    def shutdown(self) -> None:
        """Stop pulling, hand back every unsettled message for redelivery, say goodbye."""
        with self._send_lock:
            self.pulling = False
        with self._room:
            self.finished = True
            self._room.notify_all()
        self.puller.stop()
        # An open pull left at Pub/Sub would take messages that nobody reads, unseen for the
        # whole ack deadline (issue 25): wait for it to return; what it brings is nacked.
        if not self.puller.join(timeout=PULL_TIMEOUT_S + PULL_RETURN_GRACE_S):
            log.warning("exiting with a pull still open: it may hide messages for an ack deadline")
        self.nack_all("stopping")
        if not self.settler.close(timeout=SETTLE_ON_EXIT_S):
            log.warning("exiting with settle calls unfinished: those messages are redelivered")
        self._send(Stopped(role=self.role))
        self.subscription.close()

    # --- one step each ----------------------------------------------------------------------

    def pull_once(self, timeout: float = PULL_TIMEOUT_S) -> int:
        """One pull of the puller's, on the caller's thread; return messages sent."""
        return self.puller.pull_once(timeout)

    def handle(self, message: object) -> None:
        """Act on one message from the supervisor."""
        if isinstance(message, AckBatch):
            self.acknowledge(message.ack_ids)
            if message.rejected:
                self.dead_letter_rejected(message.rejected)
        elif isinstance(message, WriterLost):
            self.nack_all("writer lost")
        elif isinstance(message, StopPulling):
            with self._send_lock:
                if self.pulling:
                    self.pulling = False
                    self._send_locked(EndOfStream(slot=self.slot))
            with self._room:
                self._room.notify_all()
            self.puller.stop()
        elif isinstance(message, Stop):
            self.finished = True
        else:
            log.warning("ignoring unexpected message %r", type(message).__name__)

    def acknowledge(self, ack_ids: list[str]) -> None:
        """Ack what the writer committed. Ack ids we no longer hold (nacked when the writer was
        lost, expired, or pulled by our predecessor in this slot) are acked too: they are
        committed. The room is freed now; the call itself runs on the settler."""
        with self._room:
            self.held.release(ack_ids)
            self._room_changed()
        self.settler.submit("ack", ack_ids)

    def dead_letter_rejected(self, rejected: tuple[tuple[str, str], ...]) -> None:
        """Send records the database refused back as dead letters with the bytes received.
        One we no longer hold (this decoder restarted) is nacked: its redelivery is refused
        again and then reaches a decoder that holds its bytes."""
        with self._room:
            batch, lost = rejected_batch(self.slot, rejected, self.held.get, time.time())
        if batch.dead_letters:
            self._send(encode_batch(batch))
        self.settler.submit("nack", lost, why="refused by the database, bytes not held")

    def nack_all(self, why: str) -> None:
        with self._room:
            ack_ids = self.held.take_all()
            self._room_changed()
        self.settler.submit("nack", ack_ids, why=why)

    def extend_leases_if_due(self, now: float | None = None) -> None:
        """Queue an extension for leases about to run out, and forget messages whose lease
        ran out anyway (Pub/Sub redelivers them; holding them only blocks the budget)."""
        now = time.monotonic() if now is None else now
        with self._room:
            expired = self.held.expired(now)
            if expired:
                self.held.release(expired)
                self._room_changed()
            due = self.held.due_for_extension(now, LEASE_MARGIN_S)
        if expired:
            log.warning("%d leases ran out (held too long or not extended): they are "
                        "redelivered", len(expired))  # fmt: skip
        self.settler.submit("extend", due, seconds=self.settings.lease_s)

    def pull_is_hung(self, now: float | None = None) -> bool:
        hung_s = self.puller.hung_for(time.monotonic() if now is None else now)
        if hung_s is not None:
            self.crash_reason = f"pull hung for {hung_s:.0f}s"
            log.error("%s: exiting so that a fresh decoder replaces this one", self.crash_reason)
        return hung_s is not None

    def heartbeat_if_due(self) -> None:
        now = time.monotonic()
        if now >= self._next_heartbeat:
            self._next_heartbeat = now + HEARTBEAT_INTERVAL_S
            self._send(Heartbeat(role=self.role, pubsub_ok=not self.puller.backoff.failing))

    # --- for the puller ------------------------------------------------------------------------

    def room_for_pull(self, average_message_bytes: float) -> int:
        """How many messages the next pull may ask for: what the count budget leaves, and
        what the byte budget leaves at the average message size so far. With nothing held,
        at least one, so that a message larger than the budget still gets in (alone). With
        no room, 0 after waiting up to a second for some."""
        budget = self.settings
        with self._room:
            messages, room_bytes = self.held.room(budget.max_in_flight, budget.max_in_flight_bytes)
            by_bytes = int(room_bytes // max(1.0, average_message_bytes))
            size = min(budget.pull_batch, messages, by_bytes)
            size = max(size, 1) if not self.held else size
            if size <= 0:
                self._room.wait(timeout=1.0)
            return size

    def send_pulled(self, messages: list[PulledMessage], frame: bytes) -> int:
        """Hold the pulled messages and send their batch; the number sent."""
        now = time.monotonic()
        lease_end = now + MIN_ACK_DEADLINE_S
        with self._send_lock:
            # Checked and sent under the lock that StopPulling takes to send EndOfStream, so
            # a batch is either ahead of EndOfStream or never sent at all.
            if self.pulling:
                # Registered before sending, so an ack can never arrive for an unknown id.
                with self._room:
                    for m in messages:
                        self.held.add(m.ack_id, m.data, m.message_id, now, lease_end)
                    self._room_changed()
                self._send_locked(frame)
                return len(messages)
        self.settler.submit("nack", [m.ack_id for m in messages], why="pulled while stopping")
        return 0

    def _room_changed(self) -> None:
        """Under `_room`: publish the depth and wake a puller waiting for room."""
        metrics.QUEUE_DEPTH.labels("in_flight").set(len(self.held))
        self._room.notify_all()

    def _settled(self, request: SettleRequest, error: Exception | None) -> None:
        """The settler's report (on its thread)."""
        if request.kind == "extend":
            with self._room:
                if error is None:
                    self.held.extended(request.ack_ids, request.queued_at)
                else:
                    self.held.extension_failed(request.ack_ids)
        count_outcome(request, error)

    def pull_failed(self, reason: str) -> None:
        self.crash_reason = reason
        self.finished = True

    # --- internals ----------------------------------------------------------------------------

    def _send(self, message: object) -> None:
        with self._send_lock:
            self._send_locked(message)

    def _send_locked(self, message: object) -> None:
        try:
            if isinstance(message, bytes):
                self.link.send_bytes(message)
            else:
                self.link.send(message)
        except (BrokenPipeError, OSError):
            self.finished = True
