"""The supervisor: spawns, wires, watches and restarts the miniscan process tree.

                         ┌──────────────── supervisor ────────────────┐
                         │ relays batches and acks, reaps, restarts,  │
                         │ detects stalls, serves :9100 (/metrics...) │
                         └───▲──────────┬────────────────▲──────┬─────┘
              DecodedBatch,  │          │ AckBatch,      │      │ DecodedBatch,
              Heartbeat      │          │ StopPulling,   │      │ Stop
                             │          ▼ WriterLost     │      ▼
  Pub/Sub ──pull──▶  decoder-1 … decoder-N         writer (single) ──commit──▶ SQLite (WAL)
     ▲                       │                          │
     └──ack / nack / extend──┘     ◀── AckBatch ────────┘  (only after the commit returned)

Every child has exactly one duplex pipe, to the supervisor; the supervisor relays
DecodedBatch from decoders to the writer and AckBatch from the writer back to the decoder
slot that pulled the messages. Why pipes per child and not shared multiprocessing.Queues: the
Python docs warn that a process killed while using a Queue may corrupt it (a half-written
message, a lock held forever), and miniscan must survive SIGKILL of any child. A fresh pipe
per child incarnation cannot be corrupted by anyone else's death.

Acks flow writer -> supervisor -> decoder -> Pub/Sub; decoders own the leases of what they
pulled (extend while held, nack when the writer is lost or when stopping). The writer is
spawned; decoders fork from a server that preloaded their libraries (`start_methods`).

Owns: the lifecycle verbs (`spawn_writer`, `spawn_decoder`, `reap_child`, `begin_stop`,
`force_stop`), restarts with backoff and intensity limit, stall detection by heartbeat,
telling the decoders how many of them may pull (decided by `supervisor.puller_count`), and
carrying out the ordered graceful stop: decoders stop pulling -> each sends EndOfStream ->
writer flushes and acks -> decoders settle and exit -> join, terminate, kill, reap. Where
each batch and ack goes is decided by `supervisor.relay`, and the stop's phases by
`supervisor.stopping`; this module performs what they return through each child's Outbox.

Never: decode, write SQL, call Pub/Sub during the run, route a message itself, or do more
than set a flag in a signal handler.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import pickle
import queue
import selectors
import signal
import socket
import time
from dataclasses import dataclass

from contracts import metrics
from contracts.messages import (
    AckBatch,
    Crashed,
    EndOfStream,
    Heartbeat,
    Ready,
    StartupFailed,
    Stopped,
    StopPulling,
    split_batch_frame,
)
from store.reader import describe_target
from supervisor.children import decoder_main, writer_main
from supervisor.config import PipelineConfig
from supervisor.cpu_busy import CpuBusy, usable_cpus
from supervisor.exit_codes import EXIT_ERROR, EXIT_FORCED, EXIT_OK, EXIT_RESTART_STORM, EXIT_STARTUP
from supervisor.health import forgive_suspension, liveness, readiness, stall_reason
from supervisor.puller_count import BACKLOG_FRESH_S, STEER_INTERVAL_S, PullerCount
from supervisor.relay import WRITER, Relay, decoder_name
from supervisor.respawns import RespawnSchedule
from supervisor.restarts import RestartPolicy
from supervisor.running_child import ChildTable, RunningChild, describe_exit, start_child
from supervisor.signal_queue import SignalQueue
from supervisor.start_methods import child_contexts
from supervisor.stopping import DONE, KILL_GRACE_S, GracefulStop
from supervisor.throughput import SUMMARY_INTERVAL_S, ThroughputSummary
from workers.pull_share import any_pull_returned, last_backlog_seen, set_allowed, shared_size

log = logging.getLogger(__name__)


@dataclass
class Supervisor:
    config: PipelineConfig
    # None: the writer is spawned, decoders fork from a preloaded server (`start_methods`).
    context: multiprocessing.context.BaseContext | None = None

    def __post_init__(self) -> None:
        self.children = ChildTable()
        policy = RestartPolicy(self.config.restart_max, self.config.restart_window_s)
        self.respawns = RespawnSchedule(policy)
        self.relay = Relay()
        self.shutdown = GracefulStop(self.config.shutdown_timeout_s)
        self.exit_code = EXIT_OK
        self.signals = SignalQueue()
        self.last_tick = time.monotonic()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_w.setblocking(False)
        self._deliveries: queue.SimpleQueue[tuple[int, bytes | None]] = queue.SimpleQueue()
        self._keys = itertools.count()
        # What run_once waits on (the wake-up socket and every child's sentinel), kept from
        # turn to turn and rebuilt only when the children change: building it anew on every
        # turn, as multiprocessing.connection.wait does, was a fixed cost on each relayed
        # batch and ack (issue 13, RESULTS "third pass").
        self._selector: selectors.BaseSelector | None = None
        self._selector_keys: tuple[int, ...] = ()
        self.throughput = ThroughputSummary(next_at=time.monotonic() + SUMMARY_INTERVAL_S)
        self.writer_context, self.decoder_context = child_contexts(self.context)
        # When each decoder slot started its open pull, for `workers.pull_turns`. Shared
        # memory with no lock: a decoder killed while writing it can spoil only its own slot.
        self.pull_starts = self.decoder_context.RawArray("d", max(1, self.config.workers))
        # How many decoders may pull while there is a backlog (`supervisor.puller_count`),
        # and when each last saw one; shared the same way (`workers.pull_share`).
        self.pull_share = self.decoder_context.RawArray("d", shared_size(self.config.workers))
        self.puller_count = PullerCount(self.config.workers, usable_cpus())
        set_allowed(self.pull_share, self.puller_count.allowed)
        self.cpu_busy = CpuBusy()
        self._next_steer = 0.0

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self.signals.install(self._wake_w.fileno())
        for role in ("writer", "decoder"):
            metrics.CHILDREN_ALIVE.labels(role).set(0)
        metrics.DECODERS_PULLING.set(self.puller_count.allowed)
        self.spawn_writer()
        for slot in range(self.config.workers):
            self.spawn_decoder(slot)
        log.info("started %d decoders and the writer (db %s, subscription %s)",  # no password
                 self.config.workers, describe_target(self.config.db_path),
                 self.config.subscription)  # fmt: skip

    def run(self) -> int:
        try:
            self.start()
            while self.children or self.respawns:
                self.run_once()
                if self.shutdown.phase == DONE and not self.children:
                    break
        except Exception:
            # A bug or a resource error (EMFILE, ENOMEM on a respawn) escaped the loop: hanging
            # with live children would hide it from `restart: on-failure` (issue 12). What the
            # children hold is not acked, so it is redelivered.
            log.exception("the supervisor loop failed: stopping every child")
            self.children.end_all(grace_s=min(KILL_GRACE_S, self.config.shutdown_timeout_s))
            self.exit_code = EXIT_ERROR
        finally:
            self.signals.restore()
        log.info("stopped (exit code %d)", self.exit_code)
        return self.exit_code

    def run_once(self) -> None:
        """One turn of the loop: wait for any pipe, death, signal or timer, and act on it."""
        now = time.monotonic()
        forgive_suspension(self.children.values(), self.last_tick, now)
        self.last_tick = now
        events = self._waitables().select(timeout=self.respawns.wait_at_most(now, 0.5))
        ready = [key.data for key, _ in events]
        if None in ready:
            self._wake_r.recv(65536)
        self._process_deliveries()
        for child in ready:
            if child is not None and self.children.get(child.name) is child:
                self.reap_child(child)
        self._handle_signals()
        self._check_stalls()
        self._steer_pullers_if_due()
        self._respawn_due_children()
        self._advance_stop()
        self._log_summary_if_due()

    def _waitables(self) -> selectors.BaseSelector:
        """The wake-up socket (data None) and each child's sentinel (data: the child).
        Keyed by incarnation, not by file descriptor: a new child's sentinel may reuse the
        number of a reaped one's."""
        keys = tuple(child.key for child in self.children.values())
        if self._selector is None or keys != self._selector_keys:
            if self._selector is not None:
                self._selector.close()
            self._selector = selectors.DefaultSelector()
            self._selector.register(self._wake_r, selectors.EVENT_READ, None)
            for child in self.children.values():
                self._selector.register(child.process.sentinel, selectors.EVENT_READ, child)
            self._selector_keys = keys
        return self._selector

    # --- spawning and reaping -----------------------------------------------------------

    def spawn_writer(self) -> None:
        self._spawn(-1, writer_main, ())

    def spawn_decoder(self, slot: int) -> None:
        self._spawn(slot, decoder_main, (slot, self.pull_starts, self.pull_share))

    def _spawn(self, slot: int, target, args: tuple) -> None:
        """Start the child for `slot` (-1: the writer), then hand it what it is owed."""
        name = WRITER if slot < 0 else decoder_name(slot)
        context = self.writer_context if slot < 0 else self.decoder_context
        child = start_child(context, name, slot, next(self._keys), target, args,
                            self.config, self._deliveries, self._wake_w)  # fmt: skip
        self.children.add(child)
        log.info("spawned %s (pid %d)", name, child.process.pid)
        # The writer's backlog or the slot's held acks go first, ahead of anything new.
        owed = self.relay.writer_started() if slot < 0 else self.relay.decoder_started(slot)
        self.children.send(owed)

    def reap_child(self, child: RunningChild) -> None:
        """The child's process ended: collect it, then restart it, stop, or move the stop on."""
        # Acks sent just before exiting still count: read the pipe to its end first.
        if not child.inbox.join(timeout=2.0):
            log.warning("%s exited but its pipe is still open", child.name)
        self._process_deliveries()
        code = child.release()
        clean = code == EXIT_OK and (not self.shutdown.running or child.stopping)
        self.children.remove(child)
        if child.slot < 0:
            self.children.send(self.relay.writer_exited(lost=not clean))
        else:
            self.children.send(self.relay.decoder_exited(child.slot))
        if clean:
            log.info("%s exited", child.name)
        else:
            child.last_error = child.last_error or describe_exit(code)
            log.warning("%s died (%s)", child.name, child.last_error)
            if self.shutdown.in_order and self.exit_code == EXIT_OK:
                self.exit_code = EXIT_ERROR  # what it held was handed back, not committed
        if not self.shutdown.running or code == EXIT_STARTUP:
            return
        self._schedule_restart(child)

    def _schedule_restart(self, child: RunningChild) -> None:
        backoff = self.respawns.crashed(child.name, time.monotonic())
        if backoff is None:
            log.error(
                "%s crashed %d times within %.0fs, last error: %s; stopping miniscan",
                child.name, self.respawns.policy.recent_crashes(child.name),
                self.config.restart_window_s, child.last_error or "none reported",
            )  # fmt: skip
            self.exit_code = EXIT_RESTART_STORM
            self.begin_stop()
            return
        metrics.CHILD_RESTARTS.labels(child.role).inc()
        log.info("restarting %s in %.2fs", child.name, backoff)

    def _respawn_due_children(self) -> None:
        for name in self.respawns.take_due(time.monotonic()):
            if name == WRITER:
                self.spawn_writer()
            else:
                self.spawn_decoder(int(name.split("-")[1]))

    def _steer_pullers_if_due(self) -> None:
        """Tell the decoders how many of them may pull, from the last interval's backlog and
        CPU (`supervisor.puller_count`)."""
        now = time.monotonic()
        if now < self._next_steer:
            return
        self._next_steer = now + STEER_INTERVAL_S
        backlog = None  # no pull has returned yet: nobody knows
        if any_pull_returned(self.pull_share):
            backlog = now - last_backlog_seen(self.pull_share) < BACKLOG_FRESH_S
        allowed = self.puller_count.update(backlog, self.cpu_busy.fraction())
        set_allowed(self.pull_share, allowed)
        metrics.DECODERS_PULLING.set(allowed)

    # --- messages ---------------------------------------------------------------------------

    def _process_deliveries(self) -> None:
        """Act on every message the inboxes have read, in the order each child sent them."""
        by_key = {child.key: child for child in self.children.values()}
        while True:
            try:
                key, frame = self._deliveries.get_nowait()
            except queue.Empty:
                return
            child = by_key.get(key)
            if child is None or frame is None:
                continue  # end of a pipe, or a child already reaped
            batch = split_batch_frame(frame)
            if batch is not None:
                child.last_heartbeat = time.monotonic()
                self.children.send(self.relay.batch(*batch))  # forwarded without unpickling it
            else:
                self.handle_message(child, pickle.loads(frame))

    def handle_message(self, child: RunningChild, message: object) -> None:
        """Act on one message from a child; acks are passed to the relay."""
        if isinstance(message, Heartbeat):
            child.last_heartbeat = time.monotonic()
            child.pubsub_ok = message.pubsub_ok
        elif isinstance(message, AckBatch):
            child.last_heartbeat = time.monotonic()
            self.children.send(self.relay.acks(message))
        elif isinstance(message, EndOfStream):
            child.end_of_stream = True
        elif isinstance(message, Ready):
            child.ready = True
            child.last_heartbeat = time.monotonic()
        elif isinstance(message, StartupFailed):
            child.last_error = message.reason
            log.error("%s could not start: %s", child.name, message.reason)
            if self.exit_code == EXIT_OK:
                self.exit_code = EXIT_STARTUP
            self.begin_stop()
        elif isinstance(message, Crashed):
            child.last_error = message.reason
        elif isinstance(message, Stopped):
            child.stopping = True

    # --- stopping ----------------------------------------------------------------------------

    def begin_stop(self) -> None:
        """Graceful stop, step 1: no restarts, decoders stop pulling."""
        if not self.shutdown.begin(time.monotonic()):
            return
        self.respawns.cancel_all()
        log.info("stopping: decoders stop pulling, the writer flushes its last batch")
        for decoder in self.children.decoders():
            decoder.outbox.put(StopPulling())

    def force_stop(self) -> None:
        """Terminate every child now (they nack what they hold), kill after a grace period."""
        if not self.shutdown.force(time.monotonic()):
            return
        self.respawns.cancel_all()
        if self.exit_code == EXIT_OK:
            self.exit_code = EXIT_FORCED
        log.warning("forced stop: terminating children; unsettled messages will be redelivered")
        self.children.terminate_all()

    def _advance_stop(self) -> None:
        if self.shutdown.running:
            return
        now = time.monotonic()
        if self.shutdown.forced_at is not None:
            if self.shutdown.kill_due(now):
                self.children.kill_alive()
            return
        if self.shutdown.timed_out(now):
            log.warning("shutdown timeout (%.0fs) ran out", self.config.shutdown_timeout_s)
            self.force_stop()
            return
        decoders = self.children.decoders()
        stops = self.shutdown.advance(
            writer_up=WRITER in self.children,
            decoders=[decoder.name for decoder in decoders],
            drained=all(decoder.end_of_stream for decoder in decoders),
        )
        for name, message in stops:
            child = self.children[name]
            child.stopping = True  # asked to: from now on a clean exit is the expected one
            child.outbox.put(message)

    # --- health -------------------------------------------------------------------------------

    def _check_stalls(self) -> None:
        if self.shutdown.forced_at is not None:
            return
        now = time.monotonic()
        for child in list(self.children.values()):
            reason = None if child.killed else stall_reason(child, now, self.config)
            if reason:
                child.last_error = reason
                log.warning("%s %s: killing it", child.name, reason)
                child.killed = True
                child.process.kill()

    def is_ready(self) -> tuple[bool, str]:
        """Readiness for /readyz."""
        # Runs on the HTTP thread: work on a snapshot, the loop changes the dict.
        return readiness(self.shutdown.phase, list(self.children.values()))

    def is_alive(self, max_silence_s: float = 10.0) -> tuple[bool, str]:
        """Liveness for /healthz."""
        return liveness(self.last_tick, time.monotonic(), max_silence_s)

    # --- signals ------------------------------------------------------------------------------

    def _handle_signals(self) -> None:
        while (signum := self.signals.take()) is not None:
            name = signal.Signals(signum).name
            if self.shutdown.running:
                log.info("%s received: stopping gracefully (again to force)", name)
                self.begin_stop()
            else:
                log.info("%s received again: forcing the stop", name)
                self.force_stop()

    # --- small pieces ------------------------------------------------------------------------

    def _log_summary_if_due(self) -> None:
        rates = self.throughput.rates_if_due(time.monotonic(), self.relay.take_counts)
        if rates is not None:
            log.info("throughput: %.0f msg/s decoded, %.0f msg/s committed+acked", *rates)
