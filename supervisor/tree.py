"""The supervisor: spawns, wires, watches and restarts the miniscan process tree.

The process model, its pipes and which way acks flow: see `supervisor` (its package
docstring).

Owns: the lifecycle verbs (`spawn_writer`, `spawn_decoder`, `reap_child`, `begin_stop`,
`force_stop`), restarts with backoff and intensity limit, stall detection by heartbeat,
and carrying out the ordered graceful stop: decoders stop pulling -> each sends EndOfStream ->
writer flushes and acks -> decoders settle and exit -> join, terminate, kill, reap. Where
each batch and ack goes is decided by `supervisor.relay`, and the stop's phases by
`supervisor.stopping`; this module performs what they return through each child's Outbox.
How many decoders may pull is steered beside it (`supervisor.pull_steering`), and what wakes
its loop is `supervisor.wakeups`. The functions it starts its children with are a parameter
(`ChildTargets`; tests pass stand-ins).

Never: decode, write SQL, call Pub/Sub during the run, route a message itself, or do more
than set a flag in a signal handler.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import pickle
import signal
import time
from dataclasses import dataclass, field

from contracts import metrics
from contracts.child_id import DECODER_ROLE, WRITER_ROLE, ChildId
from contracts.exit_codes import EXIT_ERROR, EXIT_FORCED, EXIT_OK, EXIT_RESTART_STORM, EXIT_STARTUP
from contracts.messages import AckBatch, Crashed, StartupFailed, StopPulling, split_batch_frame
from store.reader import describe_target
from supervisor.children import ChildTargets
from supervisor.health import forgive_suspension, liveness, readiness, stall_reason
from supervisor.logs import CHILD_TRACEBACK
from supervisor.pull_steering import PullSteering
from supervisor.relay import WRITER, Relay
from supervisor.respawns import RespawnSchedule
from supervisor.restarts import RestartPolicy
from supervisor.running_child import ChildTable, RunningChild, describe_exit, start_child
from supervisor.settings import SupervisorSettings
from supervisor.signal_queue import SignalQueue
from supervisor.start_methods import child_contexts
from supervisor.stopping import DONE, KILL_GRACE_S, GracefulStop
from supervisor.throughput import SUMMARY_INTERVAL_S, ThroughputSummary
from supervisor.wakeups import Wakeups

log = logging.getLogger(__name__)


@dataclass
class Supervisor:
    settings: SupervisorSettings
    # None: the writer is spawned, decoders fork from a preloaded server (`start_methods`).
    context: multiprocessing.context.BaseContext | None = None
    targets: ChildTargets = field(default_factory=ChildTargets)

    def __post_init__(self) -> None:
        self.children = ChildTable()
        policy = RestartPolicy(self.settings.restart_max, self.settings.restart_window_s)
        self.respawns = RespawnSchedule(policy)
        self.relay = Relay()
        self.shutdown = GracefulStop(self.settings.shutdown_timeout_s)
        self.exit_code = EXIT_OK
        self.signals = SignalQueue()
        self.last_tick = time.monotonic()
        self.wakeups = Wakeups()
        self._keys = itertools.count()
        self.throughput = ThroughputSummary(next_at=time.monotonic() + SUMMARY_INTERVAL_S)
        self.writer_context, self.decoder_context = child_contexts(self.context)
        # When each decoder slot started its open pull, for `workers.pull_turns`. Shared
        # memory with no lock: a decoder killed while writing it can spoil only its own slot.
        self.pull_starts = self.decoder_context.RawArray("d", max(1, self.settings.workers))
        self.steering = PullSteering.in_shared_memory(self.decoder_context, self.settings)

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self.signals.install(self.wakeups.waker.fileno())
        for role in (WRITER_ROLE, DECODER_ROLE):
            metrics.CHILDREN_ALIVE.labels(role).set(0)
        self.steering.publish()
        self.spawn_writer()
        for slot in range(self.settings.workers):
            self.spawn_decoder(slot)
        log.info("started %d decoders and the writer (db %s, subscription %s)",  # no password
                 self.settings.workers, describe_target(self.settings.writer.db_path),
                 self.settings.decoder.subscription)  # fmt: skip

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
            self.children.end_all(grace_s=min(KILL_GRACE_S, self.settings.shutdown_timeout_s))
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
        timeout = self.respawns.wait_at_most(now, 0.5)
        ended = self.wakeups.wait(self.children.values(), timeout)
        self._process_deliveries()
        for child in ended:
            if self.children.get(child.name) is child:
                self.reap_child(child)
        self._handle_signals()
        self._check_stalls()
        self.steering.steer_if_due(time.monotonic())
        self._respawn_due_children()
        self._advance_stop()
        self._log_summary_if_due()

    # --- spawning and reaping -----------------------------------------------------------

    def spawn_writer(self) -> None:
        self.spawn(ChildId.writer())

    def spawn_decoder(self, slot: int) -> None:
        self.spawn(ChildId.decoder(slot))

    def spawn(self, child_id: ChildId) -> None:
        """Start the child `child_id`, then hand it what it is owed."""
        if child_id.is_writer:
            context, target, args = self.writer_context, self.targets.writer, ()
        else:
            context, target = self.decoder_context, self.targets.decoder
            args = (child_id.slot, self.pull_starts, self.steering.shared)
        child = start_child(context, child_id, next(self._keys), target, args, self.settings,
                            self.wakeups.deliveries, self.wakeups.waker)  # fmt: skip
        self.children.add(child)
        log.info("spawned %s (pid %d)", child.name, child.process.pid)
        # The writer's backlog or the slot's held acks go first, ahead of anything new.
        self.children.send(self.relay.child_started(child_id))

    def reap_child(self, child: RunningChild) -> None:
        """The child's process ended: collect it, then restart it, stop, or move the stop on."""
        # Acks sent just before exiting still count: read the pipe to its end first.
        if not child.inbox.join(timeout=2.0):
            log.warning("%s exited but its pipe is still open", child.name)
        self._process_deliveries()
        code = child.release()
        clean = code == EXIT_OK and (not self.shutdown.running or child.stopping)
        self.children.remove(child)
        self.children.send(self.relay.child_exited(child.id, lost=not clean))
        if clean:
            log.info("%s exited", child.name)
        else:
            child.last_error = child.last_error or describe_exit(code)
            log.warning("%s died (%s)", child.name, child.last_error)
            if self.shutdown.in_order:
                self._fail(EXIT_ERROR)  # what it held was handed back, not committed
        if not self.shutdown.running or code == EXIT_STARTUP:
            return
        self._schedule_restart(child)

    def _schedule_restart(self, child: RunningChild) -> None:
        backoff = self.respawns.crashed(child.id, time.monotonic())
        if backoff is None:
            log.error(
                "%s crashed %d times within %.0fs, last error: %s; stopping miniscan",
                child.name, self.respawns.policy.recent_crashes(child.id),
                self.settings.restart_window_s, child.last_error or "none reported",
            )  # fmt: skip
            self.exit_code = EXIT_RESTART_STORM
            self.begin_stop()
            return
        metrics.CHILD_RESTARTS.labels(child.role).inc()
        log.info("restarting %s in %.2fs", child.name, backoff)

    def _respawn_due_children(self) -> None:
        for child_id in self.respawns.take_due(time.monotonic()):
            self.spawn(child_id)

    # --- messages ---------------------------------------------------------------------------

    def _process_deliveries(self) -> None:
        """Act on every message the inboxes have read, in the order each child sent them."""
        by_key = {child.key: child for child in self.children.values()}
        for key, frame in self.wakeups.take_deliveries():
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
        child.note(message, time.monotonic())
        if isinstance(message, AckBatch):
            self.children.send(self.relay.acks(message))
        elif isinstance(message, StartupFailed):
            log.error("%s could not start: %s", child.name, message.reason)
            self._fail(EXIT_STARTUP)
            self.begin_stop()
        elif isinstance(message, Crashed) and message.traceback:
            trace = {CHILD_TRACEBACK: message.traceback}  # the child does not print it: we do
            log.error("%s crashed: %s", child.name, message.reason, extra=trace)

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
        self._fail(EXIT_FORCED)
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
            log.warning("shutdown timeout (%.0fs) ran out", self.settings.shutdown_timeout_s)
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
        if self.shutdown.forced_at is None:
            now = time.monotonic()
            self.children.kill_stalled(lambda child: stall_reason(child, now, self.settings))

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

    def _fail(self, code: int) -> None:
        """Exit with `code`, unless an earlier failure already set the exit code."""
        if self.exit_code == EXIT_OK:
            self.exit_code = code

    def _log_summary_if_due(self) -> None:
        rates = self.throughput.rates_if_due(time.monotonic(), self.relay.take_counts)
        if rates is not None:
            log.info("throughput: %.0f msg/s decoded, %.0f msg/s committed+acked", *rates)
