"""The writer role: the one process that writes the database.

Owns: collecting decoded batches into a commit batch (up to `batch_size` messages or
`batch_timeout_s` after the first one), committing it through `store.db.ScanStore`, and only
then sending each decoder slot the ack ids of its committed messages. A batch whose commit
fails because of its data is split in halves until the offending record is isolated; that
record becomes a dead letter and the rest is committed (issue 5). A commit that fails because
of the disk or a lock is retried with backoff, then the process exits and is restarted: its
uncommitted messages are never acked, so they come back.

Lifecycle (`contracts.lifecycle`): `open` opens the database; `run_once` waits for one message
or the flush deadline, whichever comes first; `shutdown` closes the database and commits
nothing: only a `Stop` message flushes, because SIGTERM or a lost supervisor means "exit now",
and what was not committed is simply never acked, so it is redelivered.

Never: talk to Pub/Sub (decoders own the leases and the acks), decode, or send an ack id
before the commit that covers it returned.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from multiprocessing.connection import Connection, wait

from contracts import metrics
from contracts.lifecycle import CannotStart, NotAvailableYet
from contracts.messages import AckBatch, DecodedBatch, Heartbeat, Stop, Stopped
from contracts.reasons import STORE_REJECTED
from contracts.records import DeadLetter, ScanRecord
from store.db import BatchDataError, ScanStore, StoreError, StoreUnavailable

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL_S = 1.0
# Backoff 0.2, 0.4, 0.8, 1.6, 3.2 s between attempts, each of which may also wait out the
# busy timeout; the writer heartbeats between attempts, so retrying is not mistaken for a stall.
UNAVAILABLE_RETRIES = 5


def isolate_bad_records(
    write: Callable[[list[ScanRecord]], object], records: list[ScanRecord]
) -> list[tuple[ScanRecord, str]]:
    """Write `records`, halving on data errors; return the records no write would take.

    Every write that succeeds is committed (upserts are idempotent, so a crash between halves
    only causes redelivery). At most ~2·log2(n) extra commits per bad record.
    """
    if not records:
        return []
    try:
        write(records)
        return []
    except BatchDataError as exc:
        if len(records) == 1:
            return [(records[0], str(exc))]
    middle = len(records) // 2
    return isolate_bad_records(write, records[:middle]) + isolate_bad_records(
        write, records[middle:]
    )


def rejected_record_letter(record: ScanRecord, error: str) -> DeadLetter:
    """A dead letter for a record the database refused. The raw bytes are gone by now (the
    decoder does not ship them), so the payload is the record re-encoded as JSON; `detail`
    says so."""
    payload = json.dumps(
        {
            "ip": record.ip,
            "port": record.port,
            "service": record.service,
            "timestamp": record.timestamp,
            "data_version": 2,
            "data": {"response_str": record.response},
        }
    ).encode()
    return DeadLetter(
        payload=payload,
        reason=STORE_REJECTED,
        message_id="",
        received_at=time.time(),
        detail=f"re-encoded from the decoded record; database said: {error}"[:500],
    )


class WriterRole:
    """The writer process's state and loop. Tests drive `run_once`, `handle` and `flush`
    in-process."""

    def __init__(
        self,
        store: ScanStore,
        link: Connection,
        *,
        batch_size: int = 1000,
        batch_timeout_s: float = 0.1,
    ) -> None:
        self.store = store
        self.link = link
        self.batch_size = batch_size
        self.batch_timeout_s = batch_timeout_s
        self.pending: list[DecodedBatch] = []
        self.pending_count = 0
        self.flush_due: float | None = None  # monotonic deadline of the pending batch
        self.finished = False
        self.crash_reason: str | None = None  # the writer's failures raise instead
        self._next_heartbeat = 0.0
        metrics.SCANS_ROWS.set(store.row_count())

    @classmethod
    def open(
        cls,
        link: Connection,
        db_path: str | os.PathLike[str],
        *,
        synchronous: str = "FULL",
        busy_timeout_ms: int = 5000,
        batch_size: int = 1000,
        batch_timeout_s: float = 0.1,
    ) -> WriterRole:
        """Open (create, migrate) the database. NotAvailableYet if it cannot be written right
        now; CannotStart if it was refused (not a miniscan database, a bad setting)."""
        try:
            store = ScanStore.open(
                db_path, synchronous=synchronous, busy_timeout_ms=busy_timeout_ms
            )
        except StoreUnavailable as exc:
            raise NotAvailableYet(str(exc)) from exc
        except StoreError as exc:
            raise CannotStart(str(exc)) from exc
        return cls(store, link, batch_size=batch_size, batch_timeout_s=batch_timeout_s)

    def run_once(self, timeout: float = HEARTBEAT_INTERVAL_S / 2) -> bool:
        """One turn of the loop: act on at most one supervisor message, waiting up to
        `timeout` or until the pending batch is due, then flush if due and heartbeat. Returns
        False once the writer is finished (Stop handled, or the link closed)."""
        if self.flush_due is not None:
            timeout = max(0.0, min(timeout, self.flush_due - time.monotonic()))
        if wait([self.link], timeout=timeout):
            try:
                message = self.link.recv()
            except (EOFError, OSError):
                log.warning("supervisor link closed: exiting without committing")
                self.finished = True
                return False
            self.handle(message)
        if self.flush_due is not None and time.monotonic() >= self.flush_due:
            self.flush()
        self.heartbeat_if_due()
        return not self.finished

    def handle_stop_signal(self) -> None:
        # SIGTERM: exit now, uncommitted work is simply not acked (redelivered).
        log.info("stop requested by signal: exiting without committing")
        self.finished = True

    def shutdown(self) -> None:
        """Close the database. Commits nothing: a graceful stop flushed on `Stop` already."""
        self.store.close()

    def handle(self, message: object) -> None:
        if isinstance(message, DecodedBatch):
            self.pending.append(message)
            self.pending_count += len(message)
            metrics.QUEUE_DEPTH.labels("pending_commit").set(self.pending_count)
            if self.flush_due is None:
                self.flush_due = time.monotonic() + self.batch_timeout_s
            if self.pending_count >= self.batch_size:
                self.flush()
        elif isinstance(message, Stop):
            self.flush()
            self._send(Stopped(role="writer"))
            self.finished = True
        else:
            log.warning("ignoring unexpected message %r", type(message).__name__)

    def flush(self) -> None:
        """Commit everything pending, then send each slot its acks."""
        batches, self.pending, self.pending_count, self.flush_due = self.pending, [], 0, None
        if not batches:
            return
        records = [r for b in batches for r in b.records]
        dead_letters = [d for b in batches for d in b.dead_letters]
        started = time.monotonic()
        rejected = self._commit(records, dead_letters)
        committed_at = time.time()
        metrics.COMMIT_DURATION.observe(time.monotonic() - started)
        metrics.BATCH_SIZE.observe(len(records) + len(dead_letters))
        metrics.MESSAGES_STORED.inc(len(records) - len(rejected))
        for letter in [*dead_letters, *rejected]:
            metrics.MESSAGES_DEAD_LETTERED.labels(letter.reason).inc()
        for batch in batches:
            for published in batch.record_publish_times:
                metrics.END_TO_END_LATENCY.observe(max(0.0, committed_at - published))
        metrics.LAST_COMMIT.set(committed_at)
        metrics.SCANS_ROWS.set(self.store.row_count())
        metrics.QUEUE_DEPTH.labels("pending_commit").set(0)
        for slot, ack_ids in _ack_ids_by_slot(batches).items():
            self._send(AckBatch(slot=slot, ack_ids=ack_ids))

    def heartbeat_if_due(self) -> None:
        now = time.monotonic()
        if now >= self._next_heartbeat:
            self._next_heartbeat = now + HEARTBEAT_INTERVAL_S
            self._send(Heartbeat(role="writer"))

    def _commit(
        self, records: list[ScanRecord], dead_letters: list[DeadLetter]
    ) -> list[DeadLetter]:
        """Durably commit; return the dead letters made for records the database refused."""
        delay = 0.2
        for attempt in range(UNAVAILABLE_RETRIES + 1):
            try:
                try:
                    self.store.write_batch(records, dead_letters)
                    return []
                except BatchDataError as exc:
                    log.warning("batch of %d refused (%s): isolating the bad records",
                                len(records) + len(dead_letters), exc)  # fmt: skip
                self.store.write_batch([], dead_letters)
                refused = isolate_bad_records(lambda part: self.store.write_batch(part), records)
                letters = [rejected_record_letter(record, error) for record, error in refused]
                self.store.write_batch([], letters)
                return letters
            except StoreUnavailable as exc:
                if attempt == UNAVAILABLE_RETRIES:
                    raise
                log.warning("database unavailable (%s): retrying in %.1fs", exc, delay)
                self.heartbeat_if_due()
                time.sleep(delay)
                self.heartbeat_if_due()
                delay *= 2
        raise AssertionError("unreachable")

    def _send(self, message: object) -> None:
        try:
            self.link.send(message)
        except (BrokenPipeError, OSError):
            self.finished = True


def _ack_ids_by_slot(batches: list[DecodedBatch]) -> dict[int, list[str]]:
    by_slot: dict[int, list[str]] = {}
    for batch in batches:
        ids = by_slot.setdefault(batch.slot, [])
        ids.extend(batch.record_ack_ids)
        ids.extend(batch.dead_letter_ack_ids)
    return by_slot
