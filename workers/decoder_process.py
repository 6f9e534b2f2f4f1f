"""The decoder role: pull from Pub/Sub, decode, hand batches to the writer, ack after commit.

Owns: everything a decoder process does with the messages it pulled, i.e. their leases. It
pulls only while it holds fewer than `max_in_flight` unsettled messages (backpressure: a slow
writer stops the pulling instead of filling memory), registers each pulled ack id before the
batch leaves, acknowledges ack ids only when the writer says their batch is committed, extends
the leases of whatever it still holds, and nacks what it holds when the writer is lost or
when it stops, so that Pub/Sub redelivers at once instead of after the ack deadline.

Two threads: the puller (long-poll pull, decode, send) and the main loop (acks, nacks, lease
extension, heartbeats, control). The pull blocks for seconds when the subscription is empty;
acks must not wait for it. The main loop is the lifecycle of `contracts.lifecycle`: `open`
finds the subscription, the first `run_once` starts the puller (after the driver has sent
`Ready`, so that nothing else writes the link meanwhile), `shutdown` stops it.

Never: decide what a valid scan is (`workers.decode`), touch SQLite, or acknowledge a
message whose batch has not been committed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection, wait

from broker.client import PubSubUnavailable
from broker.subscription import PulledMessage, Subscription, SubscriptionMissing
from contracts import metrics
from contracts.lifecycle import CannotStart, NotAvailableYet
from contracts.messages import (
    AckBatch,
    DecodedBatch,
    EndOfStream,
    Heartbeat,
    Stop,
    Stopped,
    StopPulling,
    WriterLost,
    encode_batch,
)
from contracts.reasons import DECODER_ERROR
from contracts.records import DeadLetter, ScanRecord
from workers.decode import Rejection, decode_scan

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL_S = 1.0
# The shortest ack deadline Pub/Sub allows; we assume no more than this of any subscription.
MIN_ACK_DEADLINE_S = 10.0
# Extend a lease when less than this is left on it; one extension round-trip fits easily.
LEASE_MARGIN_S = 4.0
# A long poll returns as soon as messages arrive; this only bounds an idle pull.
PULL_TIMEOUT_S = 10.0
# A pull that has not returned long after its own deadline is a hung gRPC call: the main loop
# would keep heartbeating while nothing is pulled, so the decoder reports it and exits.
PULL_HUNG_AFTER_S = 3 * PULL_TIMEOUT_S


def decode_pulled(
    slot: int,
    messages: list[PulledMessage],
    received_at: float,
    decode: Callable[[bytes], ScanRecord] = decode_scan,
) -> DecodedBatch:
    """Turn pulled messages into one batch: a record or a dead letter for every message.

    Anything the decoder raises besides its own Rejection is a decoder bug; the message is
    still dead-lettered (as `decoder_error`) rather than crashing the process, because a crash
    would only bring the same message back and crash again.
    """
    batch = DecodedBatch(slot=slot)
    for message in messages:
        try:
            record = decode(message.data)
        except Rejection as rejection:
            reason, detail = rejection.reason, rejection.detail
        except Exception as exc:  # see docstring
            reason, detail = DECODER_ERROR, f"{type(exc).__name__}: {exc}"[:500]
        else:
            batch.records.append(record)
            batch.record_ack_ids.append(message.ack_id)
            batch.record_publish_times.append(message.publish_time)
            continue
        batch.dead_letters.append(
            DeadLetter(
                payload=message.data,
                reason=reason,
                message_id=message.message_id,
                received_at=received_at,
                detail=detail,
            )
        )
        batch.dead_letter_ack_ids.append(message.ack_id)
    return batch


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
        pull_batch: int = 1000,
        lease_s: int = 10,
    ) -> None:
        self.slot = slot
        self.role = f"decoder-{slot}"
        self.subscription = subscription
        self.link = link
        self.max_in_flight = max_in_flight
        self.pull_batch = pull_batch
        self.lease_s = lease_s
        # ack id -> monotonic time its lease runs out. Guarded by _room.
        self.in_flight: dict[str, float] = {}
        self._room = threading.Condition()
        self._send_lock = threading.Lock()
        self.pulling = True
        self.finished = False
        self.puller: threading.Thread | None = None  # started by the first run_once
        self._next_heartbeat = 0.0
        self.crash_reason: str | None = None
        self.pull_started_at: float | None = None  # monotonic; None while not in a pull

    # --- lifecycle ------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        slot: int,
        link: Connection,
        project: str,
        subscription: str,
        *,
        max_in_flight: int = 2000,
        pull_batch: int = 1000,
        lease_s: int = 10,
    ) -> DecoderRole:
        """Find the subscription. CannotStart if it does not exist; NotAvailableYet if
        Pub/Sub does not answer (or there are no credentials)."""
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
        return cls(
            slot, found, link, max_in_flight=max_in_flight, pull_batch=pull_batch, lease_s=lease_s
        )

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
        if self.puller is not None:
            # A long-poll pull may still be open: what it returns is nacked by the puller, and
            # if we exit first, those messages come back when their short lease runs out.
            self.puller.join(timeout=0.5)
        self.nack_all("stopping")
        self._send(Stopped(role=self.role))
        self.subscription.close()

    # --- one step each ----------------------------------------------------------------------

    def pull_once(self, timeout: float = PULL_TIMEOUT_S) -> int:
        """Pull and decode at most what fits in the in-flight budget; return messages sent."""
        with self._room:
            room = self.max_in_flight - len(self.in_flight)
            if room <= 0:
                self._room.wait(timeout=1.0)
                return 0
        self.pull_started_at = time.monotonic()
        try:
            messages = self.subscription.pull(min(self.pull_batch, room), timeout=timeout)
        finally:
            self.pull_started_at = None
        if not messages:
            return 0
        metrics.MESSAGES_PULLED.inc(len(messages))
        batch = decode_pulled(self.slot, messages, received_at=time.time())
        frame = encode_batch(batch)
        lease_end = time.monotonic() + MIN_ACK_DEADLINE_S
        with self._send_lock:
            # Checked and sent under the lock that StopPulling takes to send EndOfStream, so
            # a batch is either ahead of EndOfStream or never sent at all.
            if self.pulling:
                # Registered before sending, so an ack can never arrive for an unknown id.
                with self._room:
                    for message in messages:
                        self.in_flight[message.ack_id] = lease_end
                    metrics.QUEUE_DEPTH.labels("in_flight").set(len(self.in_flight))
                self._send_locked(frame)
                return len(messages)
        self._nack([m.ack_id for m in messages], "pulled while stopping")
        return 0

    def handle(self, message: object) -> None:
        """Act on one message from the supervisor."""
        if isinstance(message, AckBatch):
            self.acknowledge(message.ack_ids)
        elif isinstance(message, WriterLost):
            self.nack_all("writer lost")
        elif isinstance(message, StopPulling):
            with self._send_lock:
                if self.pulling:
                    self.pulling = False
                    self._send_locked(EndOfStream(slot=self.slot))
            with self._room:
                self._room.notify_all()
        elif isinstance(message, Stop):
            self.finished = True
        else:
            log.warning("ignoring unexpected message %r", type(message).__name__)

    def acknowledge(self, ack_ids: list[str]) -> None:
        """Ack what the writer committed. Ack ids we no longer hold (nacked when the writer was
        lost, or pulled by our predecessor in this slot) are acked too: they are committed."""
        try:
            self.subscription.acknowledge(ack_ids)
        except Exception as exc:  # an ack that fails only causes redelivery
            log.warning("acknowledge of %d messages failed (%s): they will be redelivered",
                        len(ack_ids), exc)  # fmt: skip
        else:
            metrics.MESSAGES_ACKED.inc(len(ack_ids))
        with self._room:
            for ack_id in ack_ids:
                self.in_flight.pop(ack_id, None)
            metrics.QUEUE_DEPTH.labels("in_flight").set(len(self.in_flight))
            self._room.notify_all()

    def nack_all(self, why: str) -> None:
        with self._room:
            ack_ids = list(self.in_flight)
            self.in_flight.clear()
            metrics.QUEUE_DEPTH.labels("in_flight").set(0)
            self._room.notify_all()
        if ack_ids:
            self._nack(ack_ids, why)

    def extend_leases_if_due(self) -> None:
        now = time.monotonic()
        with self._room:
            due = [ack for ack, end in self.in_flight.items() if end - now < LEASE_MARGIN_S]
            for ack_id in due:
                self.in_flight[ack_id] = now + self.lease_s
        if due:
            try:
                self.subscription.modify_deadline(due, self.lease_s)
            except Exception as exc:  # a lost lease only causes redelivery
                log.warning("lease extension of %d messages failed: %s", len(due), exc)

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
            self._send(Heartbeat(role=self.role))

    # --- internals ----------------------------------------------------------------------------

    def _pull_loop(self) -> None:
        try:
            while self.pulling:
                self.pull_once()
        except Exception as exc:  # reported, then the main loop exits
            log.error("pulling failed: %s", exc)
            self.crash_reason = f"pulling failed: {exc}"
            self.finished = True

    def _nack(self, ack_ids: list[str], why: str) -> None:
        try:
            self.subscription.nack(ack_ids)
        except Exception as exc:  # they come back after the ack deadline
            log.warning("nack of %d messages (%s) failed: %s", len(ack_ids), why, exc)
        else:
            metrics.MESSAGES_NACKED.inc(len(ack_ids))
            log.info("handed %d messages back for redelivery (%s)", len(ack_ids), why)

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
