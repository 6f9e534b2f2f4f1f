"""The decoder role: pull from Pub/Sub, decode, hand batches to the writer, ack after commit.

Owns: everything a decoder process does with the messages it pulled, i.e. their leases. It
pulls only while what it holds stays under `max_in_flight` messages and `max_in_flight_bytes`
bytes (backpressure; pulls are sized from the average message, and a message larger than the
whole budget is pulled alone), registers each ack id before its batch leaves, acknowledges
only what the writer says is committed, extends the leases of what it holds, and nacks what
it holds when the writer is lost or when it stops. A record the database refused comes back
named in an AckBatch and leaves again as a `store_rejected` dead letter with its bytes.

Pub/Sub errors are weather (issue 12): a failed pull is waited out (`workers.pull_backoff`)
while the main loop keeps heartbeating with `pubsub_ok=False`; a settle call that fails only
causes a redelivery. Only a pull hung past its own deadline ends the process.

Three threads: the puller (pull, decode, send), the settler (`workers.settler`: ack, nack and
lease calls, which may retry for seconds; acks queued behind a call are merged) and the
main loop (supervisor messages, leases, heartbeats): the lifecycle of
`contracts.lifecycle`; the first `run_once` starts the puller (after `Ready` was sent),
`shutdown` stops it. When the subscription is caught up, the puller times its next pull by
`workers.pull_turns`; under a backlog it pulls only while the supervisor lets its slot
(`workers.pull_share`), and says when each pull returned and whether it came back full.

Never: decide what a valid scan is (`workers.decode`), touch SQLite, or acknowledge a
message whose batch has not been committed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import MutableSequence
from multiprocessing.connection import Connection, wait

from broker.client import PubSubUnavailable
from broker.subscription import PubSubOutage, PulledMessage, Subscription, SubscriptionMissing
from contracts import defaults, metrics
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
from workers.held import HeldMessages
from workers.pull_backoff import PullBackoff
from workers.pull_share import PullShare
from workers.pull_turns import PullTurns
from workers.pulled import decode_pulled, rejected_batch
from workers.settler import Settler, SettleRequest, count_outcome

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL_S = 1.0
# The shortest ack deadline Pub/Sub allows; we assume no more than this of any subscription.
MIN_ACK_DEADLINE_S = 10.0
# Extend a lease when less than this is left on it; one extension round-trip fits easily.
LEASE_MARGIN_S = 4.0
# How often a decoder that may not pull now (`workers.pull_share`) looks again.
SHARE_RECHECK_S = 0.05
# A long poll returns as soon as messages arrive; this only bounds an idle pull.
PULL_TIMEOUT_S = 10.0
# A pull that has not returned long after its own deadline is a hung gRPC call: the main loop
# would keep heartbeating while nothing is pulled, so the decoder reports it and exits.
PULL_HUNG_AFTER_S = 3 * PULL_TIMEOUT_S
# Leases are not extended past this (the client library's max_lease_duration default): a
# message held an hour is stuck somewhere, and a redelivery is the way out.
MAX_LEASE_S = 3600.0
# How long shutdown waits for queued acks and the final nack before exiting anyway.
SETTLE_ON_EXIT_S = 5.0


class DecoderRole:
    """One decoder process's state and loop. Tests drive `run_once`, `pull_once` and
    `handle` in-process."""

    def __init__(
        self,
        slot: int,
        subscription: Subscription,
        link: Connection,
        *,
        max_in_flight: int = 2000,
        max_in_flight_bytes: int = defaults.DEFAULT_MAX_IN_FLIGHT_BYTES,
        pull_batch: int = 1000,
        lease_s: int = 10,
        pull_starts: MutableSequence[float] | None = None,
        pull_share: MutableSequence[float] | None = None,
    ) -> None:
        self.slot = slot
        self.role = f"decoder-{slot}"
        self.subscription = subscription
        self.link = link
        self.max_in_flight = max_in_flight
        self.max_in_flight_bytes = max_in_flight_bytes
        self.pull_batch = pull_batch
        self.lease_s = lease_s
        self.held = HeldMessages(lease_s=lease_s, max_lease_s=MAX_LEASE_S)  # guarded by _room
        self._room = threading.Condition()
        self._send_lock = threading.Lock()
        self.settler = Settler(subscription, self._settled)
        self.backoff = PullBackoff()
        self.turns = PullTurns(pull_starts, slot)  # shared with the tree's other decoders
        self.share = PullShare(pull_share, slot)  # may this one pull now (a backlog)
        self._stop_pulling = threading.Event()
        self.pulling = True
        self.finished = False
        self.puller: threading.Thread | None = None  # started by the first run_once
        self._next_heartbeat = 0.0
        self.crash_reason: str | None = None
        self.pull_started_at: float | None = None  # monotonic; None while not in a pull
        self.average_message_bytes = 1024.0  # sizes the next pull to the byte budget

    # --- lifecycle ------------------------------------------------------------------------

    @classmethod
    def open(
        cls, slot: int, link: Connection, project: str, subscription: str, **settings
    ) -> DecoderRole:
        """Find the subscription. CannotStart if it does not exist; NotAvailableYet if
        Pub/Sub does not answer (or there are no credentials). `settings` are the keyword
        arguments of the constructor."""
        try:
            found = Subscription(project, subscription)
        except PubSubUnavailable as exc:
            raise NotAvailableYet(str(exc)) from exc
        try:
            found.check()
        except PubSubUnavailable as exc:
            found.close()
            failure = CannotStart if isinstance(exc, SubscriptionMissing) else NotAvailableYet
            raise failure(str(exc)) from exc
        return cls(slot, found, link, **settings)

    def run_once(self, timeout: float = HEARTBEAT_INTERVAL_S / 2) -> bool:
        """One turn of the main loop: act on at most one supervisor message (waiting up to
        `timeout` for it), extend leases that are due, check the pull, heartbeat. Returns
        False once the decoder is finished (Stop, link closed, hung or failed pull)."""
        if self.puller is None:
            self.puller = threading.Thread(target=self._pull_loop, name="puller", daemon=True)
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
        self.backoff.interrupt()
        self._stop_pulling.set()
        if self.puller is not None:
            # A long-poll pull may still be open: what it returns is nacked by the puller, and
            # if we exit first, those messages come back when their short lease runs out.
            self.puller.join(timeout=0.5)
        self.nack_all("stopping")
        if not self.settler.close(timeout=SETTLE_ON_EXIT_S):
            log.warning("exiting with settle calls unfinished: those messages are redelivered")
        self._send(Stopped(role=self.role))
        self.subscription.close()

    # --- one step each ----------------------------------------------------------------------

    def pull_once(self, timeout: float = PULL_TIMEOUT_S) -> int:
        """Pull and decode at most what fits in the in-flight budgets; return messages sent."""
        if not self.share.may_pull():
            self._stop_pulling.wait(SHARE_RECHECK_S)
            return 0
        with self._room:
            size = self._pull_size()
            if size <= 0:
                self._room.wait(timeout=1.0)
                return 0
        if not self.turns.wait_for_turn(self._stop_pulling):
            return 0
        self.pull_started_at = started = time.monotonic()
        messages = []
        try:
            messages = self.subscription.pull(size, timeout=timeout)
        finally:
            self.pull_started_at = None
            returned = time.monotonic()
            self.turns.pull_returned(returned - started, len(messages), size)
            self.share.pull_returned(returned, full=self.turns.backlog)
        if not messages:
            return 0
        metrics.MESSAGES_PULLED.inc(len(messages))
        batch = decode_pulled(self.slot, messages, received_at=time.time())
        self.average_message_bytes = 0.8 * self.average_message_bytes + 0.2 * (
            batch.nbytes / len(messages)
        )
        return self._send_pulled(messages, encode_batch(batch))

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
            self.backoff.interrupt()
            self._stop_pulling.set()
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
        self.settler.submit("extend", due, seconds=self.lease_s)

    def pull_is_hung(self, now: float | None = None) -> bool:
        started = self.pull_started_at
        now = time.monotonic() if now is None else now
        if started is not None and now - started > PULL_HUNG_AFTER_S:
            self.crash_reason = f"pull hung for {now - started:.0f}s"
            log.error("%s: exiting so that a fresh decoder replaces this one", self.crash_reason)
            return True
        return False

    def heartbeat_if_due(self) -> None:
        now = time.monotonic()
        if now >= self._next_heartbeat:
            self._next_heartbeat = now + HEARTBEAT_INTERVAL_S
            self._send(Heartbeat(role=self.role, pubsub_ok=not self.backoff.failing))

    # --- internals ----------------------------------------------------------------------------

    def _pull_size(self) -> int:
        """How many messages the next pull may ask for (under `_room`): what the count budget
        leaves, and what the byte budget leaves at the average message size so far. With
        nothing held, at least one, so that a message larger than the budget still gets in
        (alone)."""
        messages, room_bytes = self.held.room(self.max_in_flight, self.max_in_flight_bytes)
        by_bytes = int(room_bytes // max(1.0, self.average_message_bytes))
        size = min(self.pull_batch, messages, by_bytes)
        return max(size, 1) if not self.held else size

    def _send_pulled(self, messages: list[PulledMessage], frame: bytes) -> int:
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

    def _pull_loop(self) -> None:
        try:
            while self.pulling:
                try:
                    self.pull_once()
                except PubSubOutage as exc:
                    self.backoff.wait_after_failure(exc)
                else:
                    self.backoff.succeeded()
        except Exception as exc:  # reported, then the main loop exits
            log.error("pulling failed: %s", exc)
            self.crash_reason = f"pulling failed: {exc}"
            self.finished = True

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
