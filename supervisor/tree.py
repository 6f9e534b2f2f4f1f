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
pulled (extend while held, nack when the writer is lost or when stopping).

Owns: the lifecycle verbs (`spawn_writer`, `spawn_decoder`, `reap_child`, `begin_stop`,
`force_stop`), restarts with backoff and intensity limit, stall detection by heartbeat, and
the ordered graceful stop: decoders stop pulling -> each sends EndOfStream -> writer flushes
and acks -> decoders settle and exit -> join, terminate, kill, reap.

Never: decode, write SQL, call Pub/Sub during the run, or do more than set a flag in a
signal handler.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import os
import pickle
import queue
import signal
import socket
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess

from contracts import metrics
from contracts.messages import (
    AckBatch,
    Crashed,
    EndOfStream,
    Heartbeat,
    Ready,
    StartupFailed,
    Stop,
    Stopped,
    StopPulling,
    WriterLost,
    split_batch_frame,
)
from supervisor.children import decoder_main, writer_main
from supervisor.config import PipelineConfig
from supervisor.exit_codes import (
    EXIT_ERROR,
    EXIT_FORCED,
    EXIT_OK,
    EXIT_RESTART_STORM,
    EXIT_STARTUP,
)
from supervisor.inbox import Inbox
from supervisor.metrics_dir import ENV as ENV_METRICS_DIR
from supervisor.outbox import Outbox, RawFrame
from supervisor.restarts import RestartPolicy
from supervisor.spawning import start_with_stop_signals_blocked

log = logging.getLogger(__name__)

WRITER = "writer"
SUMMARY_INTERVAL_S = 10.0
KILL_GRACE_S = 3.0
# A loop turn this much later than expected means the whole tree was suspended (Ctrl-Z, a
# paused VM): nobody could heartbeat, so silence from before it proves nothing.
SUSPENDED_AFTER_S = 2.0


@dataclass
class Child:
    name: str  # "writer" or "decoder-<slot>"
    slot: int  # decoder slot; -1 for the writer
    key: int  # unique per incarnation: a restarted child reuses the name, never the key
    process: BaseProcess
    link: Connection
    outbox: Outbox
    inbox: Inbox
    started_at: float
    last_heartbeat: float
    ready: bool = False
    end_of_stream: bool = False
    stopping: bool = False
    killed: bool = False
    last_error: str = ""

    @property
    def role(self) -> str:
        return WRITER if self.slot < 0 else "decoder"


@dataclass
class Supervisor:
    config: PipelineConfig
    context: multiprocessing.context.BaseContext = field(
        default_factory=lambda: multiprocessing.get_context("spawn")
    )

    def __post_init__(self) -> None:
        self.children: dict[str, Child] = {}
        self.respawn_due: dict[str, float] = {}  # name -> monotonic time
        self.policy = RestartPolicy(self.config.restart_max, self.config.restart_window_s)
        self.writer_backlog: list[RawFrame] = []  # batches that arrived with no writer
        self.undelivered_acks: dict[int, list[AckBatch]] = {}
        self.phase = "running"  # running -> draining -> flushing -> settling -> done
        self.stop_deadline: float | None = None
        self.forced_at: float | None = None
        self.exit_code = EXIT_OK
        self.pending_signals: list[int] = []
        self.last_tick = time.monotonic()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_w.setblocking(False)
        self._deliveries: queue.SimpleQueue[tuple[int, bytes | None]] = queue.SimpleQueue()
        self._keys = itertools.count()
        self._next_summary = time.monotonic() + SUMMARY_INTERVAL_S
        self._relayed = 0
        self._acked = 0

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self._install_signal_handlers()
        for role in ("writer", "decoder"):
            metrics.CHILD_RESTARTS.labels(role).inc(0)
            metrics.CHILDREN_ALIVE.labels(role).set(0)
        self.spawn_writer()
        for slot in range(self.config.workers):
            self.spawn_decoder(slot)
        log.info("started %d decoders and the writer (db %s, subscription %s)",
                 self.config.workers, self.config.db_path, self.config.subscription)  # fmt: skip

    def run(self) -> int:
        self.start()
        try:
            while self.children or self.respawn_due:
                self.run_once()
                if self.phase == "done" and not self.children:
                    break
        finally:
            self._restore_signal_handlers()
        log.info("stopped (exit code %d)", self.exit_code)
        return self.exit_code

    def run_once(self) -> None:
        """One turn of the loop: wait for any pipe, death, signal or timer, and act on it."""
        now = time.monotonic()
        if now - self.last_tick > SUSPENDED_AFTER_S:
            for child in self.children.values():
                child.last_heartbeat = max(child.last_heartbeat, now)
                child.started_at = max(child.started_at, now - 1.0)
        self.last_tick = now
        waitables: list[object] = [self._wake_r]
        waitables += [child.process.sentinel for child in self.children.values()]
        ready = wait(waitables, timeout=self._next_timeout())
        if self._wake_r in ready:
            self._wake_r.recv(65536)
        self._process_deliveries()
        for sentinel in ready:
            child = self._child_for(sentinel)
            if child is not None:
                self.reap_child(child)
        self._handle_signals()
        self._check_stalls()
        self._respawn_due_children()
        self._advance_stop()
        self._log_summary_if_due()

    # --- spawning and reaping -----------------------------------------------------------

    def spawn_writer(self) -> None:
        self._spawn(WRITER, -1, writer_main, ())
        for batch in self.writer_backlog:
            self.children[WRITER].outbox.put(batch)
        self.writer_backlog.clear()

    def spawn_decoder(self, slot: int) -> None:
        name = f"decoder-{slot}"
        self._spawn(name, slot, decoder_main, (slot,))
        for acks in self.undelivered_acks.pop(slot, []):
            self.children[name].outbox.put(acks)

    def _spawn(self, name: str, slot: int, target, args: tuple) -> None:
        ours, theirs = self.context.Pipe(duplex=True)
        process = self.context.Process(
            target=target, args=(*args, theirs, self.config), name=name, daemon=False
        )
        start_with_stop_signals_blocked(process)
        theirs.close()  # only the child holds its end: its death closes the pipe
        now = time.monotonic()
        key = next(self._keys)
        self.children[name] = Child(
            name=name, slot=slot, key=key, process=process, link=ours,
            outbox=Outbox(ours, name), inbox=Inbox(ours, key, self._deliveries, self._wake_w),
            started_at=now, last_heartbeat=now,
        )  # fmt: skip
        self._count_alive()
        log.info("spawned %s (pid %d)", name, process.pid)

    def reap_child(self, child: Child) -> None:
        """The child's process ended: collect it, then restart it, stop, or move the stop on."""
        # Acks sent just before exiting still count: read the pipe to its end first.
        if not child.inbox.join(timeout=2.0):
            log.warning("%s exited but its pipe is still open", child.name)
        self._process_deliveries()
        child.process.join(timeout=1.0)
        code = child.process.exitcode
        child.outbox.close()
        child.link.close()
        del self.children[child.name]
        self._count_alive()
        if child.process.pid is not None and os.environ.get(ENV_METRICS_DIR):
            from prometheus_client import multiprocess

            # Drops the dead child's live gauges; its counters stay, so totals stay monotonic.
            multiprocess.mark_process_dead(child.process.pid)
        expected = self.phase != "running" or child.stopping
        if code == EXIT_OK and expected:
            log.info("%s exited", child.name)
        else:
            child.last_error = child.last_error or _describe_exit(code)
            log.warning("%s died (%s)", child.name, child.last_error)
            if self.phase != "running" and self.forced_at is None and self.exit_code == EXIT_OK:
                self.exit_code = EXIT_ERROR  # what it held was handed back, not committed
        if child.role == WRITER and not (code == EXIT_OK and expected):
            for decoder in self._decoders():
                decoder.outbox.put(WriterLost())
        if self.phase != "running" or code == EXIT_STARTUP:
            return
        self._schedule_restart(child)

    def _schedule_restart(self, child: Child) -> None:
        now = time.monotonic()
        backoff = self.policy.record_crash(child.name, now)
        if backoff is None:
            log.error(
                "%s crashed %d times within %.0fs, last error: %s; stopping miniscan",
                child.name, self.policy.recent_crashes(child.name),
                self.config.restart_window_s, child.last_error or "none reported",
            )  # fmt: skip
            self.exit_code = EXIT_RESTART_STORM
            self.begin_stop()
            return
        metrics.CHILD_RESTARTS.labels(child.role).inc()
        self.respawn_due[child.name] = now + backoff
        log.info("restarting %s in %.2fs", child.name, backoff)

    def _respawn_due_children(self) -> None:
        now = time.monotonic()
        for name, due in list(self.respawn_due.items()):
            if due <= now:
                del self.respawn_due[name]
                if name == WRITER:
                    self.spawn_writer()
                else:
                    self.spawn_decoder(int(name.split("-")[1]))

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
                self.forward_batch(child, *batch)
            else:
                self.relay(child, pickle.loads(frame))

    def forward_batch(self, child: Child, count: int, batch_pickle: bytes) -> None:
        """Pass a decoder's batch to the writer as it came, without unpickling it."""
        child.last_heartbeat = time.monotonic()
        self._relayed += count
        frame = RawFrame(batch_pickle)
        writer = self.children.get(WRITER)
        if writer is not None:
            writer.outbox.put(frame)
        else:
            self.writer_backlog.append(frame)

    def relay(self, child: Child, message: object) -> None:
        """Route one message from a child; the heart of the actor wiring."""
        if isinstance(message, Heartbeat):
            child.last_heartbeat = time.monotonic()
        elif isinstance(message, AckBatch):
            child.last_heartbeat = time.monotonic()
            self._acked += len(message.ack_ids)
            decoder = self.children.get(f"decoder-{message.slot}")
            if decoder is not None:
                decoder.outbox.put(message)
            else:
                self.undelivered_acks.setdefault(message.slot, []).append(message)
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
        if self.phase != "running":
            return
        self.phase = "draining"
        self.stop_deadline = time.monotonic() + self.config.shutdown_timeout_s
        self.respawn_due.clear()
        log.info("stopping: decoders stop pulling, the writer flushes its last batch")
        for decoder in self._decoders():
            decoder.outbox.put(StopPulling())

    def force_stop(self) -> None:
        """Terminate every child now (they nack what they hold), kill after a grace period."""
        if self.forced_at is not None:
            return
        self.forced_at = time.monotonic()
        self.phase = "done"
        self.respawn_due.clear()
        if self.exit_code == EXIT_OK:
            self.exit_code = EXIT_FORCED
        log.warning("forced stop: terminating children; unsettled messages will be redelivered")
        for child in self.children.values():
            child.stopping = True
            child.process.terminate()

    def _advance_stop(self) -> None:
        if self.phase == "running":
            return
        now = time.monotonic()
        if self.forced_at is not None:
            if now - self.forced_at > KILL_GRACE_S:
                for child in self.children.values():
                    if child.process.is_alive():
                        child.process.kill()
            return
        if self.stop_deadline is not None and now > self.stop_deadline:
            log.warning("shutdown timeout (%.0fs) ran out", self.config.shutdown_timeout_s)
            self.force_stop()
            return
        writer = self.children.get(WRITER)
        if self.phase == "draining" and all(d.end_of_stream for d in self._decoders()):
            self.phase = "flushing"
            if writer is not None:
                writer.stopping = True
                writer.outbox.put(Stop())
        if self.phase == "flushing" and writer is None:
            self.phase = "settling"
            for decoder in self._decoders():
                decoder.stopping = True
                decoder.outbox.put(Stop())
        if self.phase == "settling" and not self.children:
            self.phase = "done"

    # --- health -------------------------------------------------------------------------------

    def _check_stalls(self) -> None:
        if self.forced_at is not None:
            return
        now = time.monotonic()
        for child in list(self.children.values()):
            if child.killed:
                continue
            if child.ready:
                silent = now - child.last_heartbeat
                if silent > self.config.child_timeout_s:
                    child.last_error = f"stalled: no heartbeat for {silent:.0f}s"
                    log.warning("%s %s: killing it", child.name, child.last_error)
                    child.killed = True
                    child.process.kill()
            elif now - child.started_at > self.config.startup_timeout_s:
                child.last_error = f"not ready after {self.config.startup_timeout_s:.0f}s"
                log.warning("%s %s: killing it", child.name, child.last_error)
                child.killed = True
                child.process.kill()

    def is_ready(self) -> tuple[bool, str]:
        """Readiness for /readyz: the writer has the database open, a decoder is pulling."""
        # Runs on the HTTP thread: work on a snapshot, the loop changes the dict.
        children = list(self.children.values())
        writer = next((c for c in children if c.slot < 0), None)
        if self.phase != "running":
            return False, f"stopping ({self.phase})"
        if writer is None or not writer.ready:
            return False, "writer not ready"
        if not any(c.ready for c in children if c.slot >= 0):
            return False, "no decoder ready"
        return True, "ok"

    def is_alive(self, max_silence_s: float = 10.0) -> tuple[bool, str]:
        """Liveness for /healthz: the supervisor loop turned recently."""
        silence = time.monotonic() - self.last_tick
        if silence > max_silence_s:
            return False, f"supervisor loop stuck for {silence:.0f}s"
        return True, "ok"

    # --- signals ------------------------------------------------------------------------------

    def _install_signal_handlers(self) -> None:
        self._previous_wakeup_fd = signal.set_wakeup_fd(self._wake_w.fileno())
        self._previous_handlers = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }

    def _restore_signal_handlers(self) -> None:
        for sig, handler in self._previous_handlers.items():
            signal.signal(sig, handler)
        signal.set_wakeup_fd(self._previous_wakeup_fd)

    def _on_signal(self, signum: int, frame: object) -> None:
        self.pending_signals.append(signum)  # only this: the loop acts on it

    def _handle_signals(self) -> None:
        while self.pending_signals:
            signum = self.pending_signals.pop(0)
            name = signal.Signals(signum).name
            if self.phase == "running":
                log.info("%s received: stopping gracefully (again to force)", name)
                self.begin_stop()
            else:
                log.info("%s received again: forcing the stop", name)
                self.force_stop()

    # --- small pieces ------------------------------------------------------------------------

    def _decoders(self) -> list[Child]:
        return [c for c in self.children.values() if c.slot >= 0]

    def _child_for(self, sentinel: object) -> Child | None:
        for child in self.children.values():
            if sentinel == child.process.sentinel:
                return child
        return None

    def _count_alive(self) -> None:
        decoders = sum(1 for c in self.children.values() if c.slot >= 0)
        metrics.CHILDREN_ALIVE.labels("decoder").set(decoders)
        metrics.CHILDREN_ALIVE.labels("writer").set(1 if WRITER in self.children else 0)

    def _next_timeout(self) -> float:
        timeout = 0.5
        now = time.monotonic()
        for due in self.respawn_due.values():
            timeout = min(timeout, max(0.0, due - now))
        return timeout

    def _log_summary_if_due(self) -> None:
        now = time.monotonic()
        if now < self._next_summary:
            return
        elapsed = SUMMARY_INTERVAL_S + (now - self._next_summary)
        self._next_summary = now + SUMMARY_INTERVAL_S
        if self._relayed or self._acked:
            log.info("throughput: %.0f msg/s decoded, %.0f msg/s committed+acked",
                     self._relayed / elapsed, self._acked / elapsed)  # fmt: skip
        self._relayed = self._acked = 0


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"
