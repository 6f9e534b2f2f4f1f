"""The writer role: the one process that writes the database.

Owns: group commit (issue 13) and the order "commit, then ack". The writer commits as soon as
it holds records and nothing more is waiting on its pipe, up to `batch_size` messages or
`batch_bytes` bytes; a pending batch waits for more only as long as `store.linger` says. Only
after the commit returned does it send each decoder slot the ack ids of its committed
messages. A batch refused for its data is split until the records (or dead letters) at fault
are isolated (`store.isolation`, issue 5); each refused one is named back to its decoder. A
database that cannot be written (down, in recovery or read-only, a lock past the busy
timeout, a full disk) is weather, not a crash (issue 25): the writer keeps its batch, retries
on a capped, jittered back-off (`store.outage`), heartbeats the reason meanwhile, reads its
pipe (a `Stop` is seen at once), and acks once the batch is committed.

Lifecycle (`contracts.lifecycle`): `open` opens the database (or leaves that to the first
commit if it cannot be reached yet); `run_once` takes what the pipe holds and commits when
the batch is full, the pipe idle or the linger over; `shutdown` commits nothing: only a `Stop`
flushes, since SIGTERM or a lost supervisor means "exit now" and what was not committed is
never acked, so it is redelivered.

Never: talk to Pub/Sub (decoders own the leases and the acks), decode, or send an ack id
before the commit that covers it returned.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from multiprocessing.connection import Connection, wait

from contracts import metrics
from contracts.lifecycle import CannotStart
from contracts.messages import AckBatch, DecodedBatch, Heartbeat, Stop, Stopped
from contracts.records import DeadLetter, ScanRecord
from store.backend import ScanStoreBackend, open_store
from store.commit_metrics import record_commit
from store.errors import StoreError, StoreInaccessible, StoreUnavailable
from store.isolation import settlements_by_slot, write_isolating
from store.linger import Linger
from store.outage import DatabaseOutage, error_kind
from store.writer_settings import WriterSettings

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL_S = 1.0
# An idle writer pings a healthy database this often, so that /readyz notices it lost.
IDLE_CHECK_EVERY_S = 5.0


class WriterRole:
    """The writer process's state and loop. Tests drive `run_once`, `handle` and `flush`
    in-process."""

    def __init__(
        self,
        store: ScanStoreBackend | None,
        link: Connection,
        settings: WriterSettings | None = None,
        stop_requested: Callable[[], bool] = lambda: False,
    ) -> None:
        settings = settings or WriterSettings()
        self.settings = settings
        self.store = store  # None until the database could be reached
        self.stop_requested = stop_requested
        self.outage = DatabaseOutage()
        self.link = link
        self.batch_size = settings.batch_size
        self.batch_bytes = settings.batch_bytes
        self.linger = Linger(settings.batch_timeout_s, settings.load_linger_s)
        self.pending: list[DecodedBatch] = []
        self.pending_count = 0
        self.pending_bytes = 0
        self.pending_since: float | None = None  # monotonic: the oldest pending arrived
        self.flush_due: float | None = None  # monotonic: the linger of the oldest pending ends
        self.finished = False
        self.stopping = False  # a Stop arrived: what does not commit now is handed back
        self.crash_reason: str | None = None  # the writer's failures raise instead
        self._next_heartbeat = 0.0
        self._next_idle_check = 0.0
        if store is not None:
            metrics.SCANS_ROWS.set(store.row_count())
        metrics.DATABASE_UP.set(1 if store is not None else 0)

    @classmethod
    def open(
        cls,
        link: Connection,
        settings: WriterSettings,
        stop_requested: Callable[[], bool] = lambda: False,
    ) -> WriterRole:
        """Open (create, migrate) the store `settings.db_path` (`store.backend`); one that
        cannot be written now is left to the first commit, which waits for it. CannotStart
        if it was refused (not a miniscan database, a refused password, a bad setting)."""
        role = cls(None, link, settings, stop_requested)
        try:
            role.store = role._open_store()
        except StoreInaccessible as exc:  # a setting: waiting will not fix it
            raise CannotStart(str(exc)) from exc
        except StoreUnavailable as exc:
            role._attempt_failed(str(exc), time.monotonic())
            log.warning("database not reachable yet (%s): the first commit waits for it", exc)
        except StoreError as exc:
            raise CannotStart(str(exc)) from exc
        else:
            metrics.SCANS_ROWS.set(role.store.row_count())
            metrics.DATABASE_UP.set(1)
        return role

    def _open_store(self) -> ScanStoreBackend:
        return open_store(
            self.settings.db_path,
            synchronous=self.settings.synchronous,
            busy_timeout_ms=self.settings.busy_timeout_ms,
        )

    def run_once(self, timeout: float = HEARTBEAT_INTERVAL_S / 2) -> bool:
        """Wait up to `timeout` (less while a batch lingers) for a message, take what is
        waiting until the batch is full, commit if it is full or the pipe is idle and the
        linger over, heartbeat. False once finished (Stop handled, or the link closed)."""
        if self.flush_due is not None:
            timeout = max(0.0, min(timeout, self.flush_due - time.monotonic()))
        waiting = wait([self.link], timeout=timeout)
        while waiting and not self.finished:
            try:
                message = self.link.recv()
            except (EOFError, OSError):
                log.warning("supervisor link closed: exiting without committing")
                self.finished = True
                return False
            self.handle(message)
            waiting = not self._batch_full() and self.link.poll(0)
        if self.pending and (
            self._batch_full() or (not waiting and time.monotonic() >= self.flush_due)
        ):
            self.flush()
        if not self.pending and not self.finished:
            self.check_database_if_due()
        self.heartbeat_if_due()
        return not self.finished

    def check_database_if_due(self) -> None:
        """With nothing pending: open the database if it could not be reached yet, else ping
        it, so that DATABASE_UP and the heartbeat's reason stay current while idle. On the
        outage's back-off while down, every IDLE_CHECK_EVERY_S while up."""
        now = time.monotonic()
        if now < self._next_idle_check:
            return
        try:
            if self.store is None:
                self.store = self._open_store()
            else:
                self.store.ping()
        except StoreUnavailable as exc:
            self._next_idle_check = now + self._attempt_failed(str(exc), now)
            return
        self._next_idle_check = now + IDLE_CHECK_EVERY_S
        lasted = self.outage.recovered(now)
        if lasted is not None:
            log.warning("database back after %.1fs", lasted)
            metrics.SCANS_ROWS.set(self.store.row_count())
        metrics.DATABASE_UP.set(1)

    def handle_stop_signal(self) -> None:
        # SIGTERM: exit now, uncommitted work is simply not acked (redelivered).
        log.info("stop requested by signal: exiting without committing")
        self.finished = True

    def shutdown(self) -> None:
        """Close the database. Commits nothing: a graceful stop flushed on `Stop` already."""
        if self.store is not None:
            self.store.close()

    def handle(self, message: object) -> None:
        if isinstance(message, DecodedBatch):
            now = time.monotonic()
            self.pending.append(message)
            self.pending_count += len(message)
            self.pending_bytes += message.nbytes
            metrics.QUEUE_DEPTH.labels("pending_commit").set(self.pending_count)
            self.linger.arrived(len(message), now)
            if self.pending_since is None:
                self.pending_since = now
            self.flush_due = self.pending_since + self.linger.seconds(now)
        elif isinstance(message, Stop):
            self.stopping = True  # a flush that meets an outage gives up at once
            self.flush()
            self._say_stopped()
        else:
            log.warning("ignoring unexpected message %r", type(message).__name__)

    def flush(self) -> None:
        """Commit everything pending, then send each slot its acks (and the records the
        database refused, for their decoder to dead-letter)."""
        batches = self.pending
        self.pending, self.pending_count, self.pending_bytes = [], 0, 0
        self.pending_since = self.flush_due = None
        if not batches:
            return
        records = [r for b in batches for r in b.records]
        dead_letters = [d for b in batches for d in b.dead_letters]
        started = time.monotonic()
        refused = self._commit(batches, records, dead_letters)
        if refused is None:
            log.warning("stopping during a database outage: %d messages not committed, so not"
                        " acked: Pub/Sub redelivers them", len(records) + len(dead_letters))
            if not self.stopping:  # SIGTERM or a lost link; a Stop says Stopped itself
                self.finished = True
            return
        record_commit(batches, len(refused), time.monotonic() - started)
        metrics.SCANS_ROWS.set(self.store.row_count())
        for slot, (ack_ids, rejected) in settlements_by_slot(batches, refused).items():
            self._send(AckBatch(slot=slot, ack_ids=ack_ids, rejected=tuple(rejected)))

    def heartbeat_if_due(self) -> None:
        now = time.monotonic()
        if now >= self._next_heartbeat:
            self._next_heartbeat = now + HEARTBEAT_INTERVAL_S
            self._send(Heartbeat(role="writer", database_problem=self.outage.reason))

    def _batch_full(self) -> bool:
        return self.pending_count >= self.batch_size or self.pending_bytes >= self.batch_bytes

    def _commit(
        self, batches: list[DecodedBatch], records: list[ScanRecord], letters: list[DeadLetter]
    ) -> dict[tuple[int, str], str] | None:
        """Durably commit, waiting out an outage however long it lasts; return {(slot, ack
        id): why} for records and dead letters the database refused, or None if the writer
        was told to stop (or lost its supervisor) before the database came back."""
        while True:
            try:
                refused = self._write_isolating(batches, records, letters)
            except StoreUnavailable as exc:
                if not self._wait_out(str(exc), len(records) + len(letters)):
                    return None
                continue
            lasted = self.outage.recovered(time.monotonic())
            if lasted is not None:
                log.warning("database back after %.1fs: committing the kept batch", lasted)
                metrics.DATABASE_UP.set(1)
                self._send(Heartbeat(role="writer"))
            return refused

    def _write_isolating(
        self, batches: list[DecodedBatch], records: list[ScanRecord], letters: list[DeadLetter]
    ) -> dict[tuple[int, str], str]:
        if self.store is None:
            self.store = self._open_store()
        return write_isolating(self.store.write_batch, batches, records, letters)

    def _wait_out(self, reason: str, kept: int) -> bool:
        """One failed attempt: record it, then wait the back-off out while heartbeating.
        False if the writer must stop instead (SIGTERM, or the supervisor is gone)."""
        now = time.monotonic()
        delay = self._attempt_failed(reason, now)
        if self.outage.should_log(now):
            log.warning("database unavailable (%s): keeping %d messages, retrying (attempt %d)",
                        reason, kept, self.outage.failures)  # fmt: skip
        until = now + delay
        while not self.finished and not self.stopping and not self.stop_requested():
            self.heartbeat_if_due()
            left = until - time.monotonic()
            if left <= 0:
                return True
            if wait([self.link], timeout=min(left, HEARTBEAT_INTERVAL_S / 2)):
                self._take_during_outage()
        return False

    def _attempt_failed(self, reason: str, now: float) -> float:
        """Record a failed attempt at the database; the seconds to wait before the next."""
        metrics.DATABASE_UP.set(0)
        metrics.DATABASE_ERRORS.labels(error_kind(reason)).inc()
        return self.outage.failed(reason, now)

    def _take_during_outage(self) -> None:
        # The pipe is read while an outage is waited out: a Stop must be seen at once, or the
        # supervisor's shutdown timeout runs out and a graceful stop becomes a forced one
        # (issue 25). A batch that arrives waits for the next commit; on Stop what did not
        # commit is not acked, so its decoders hand it back and Pub/Sub redelivers it.
        try:
            message = self.link.recv()
        except (EOFError, OSError):
            log.warning("supervisor link closed: exiting without committing")
            self.finished = True
            return
        if isinstance(message, Stop):
            self.stopping = True
            self._say_stopped()
        else:
            self.handle(message)

    def _say_stopped(self) -> None:
        if not self.finished:
            self._send(Stopped(role="writer"))
        self.finished = True

    def _send(self, message: object) -> None:
        try:
            self.link.send(message)
        except (BrokenPipeError, OSError):
            self.finished = True
