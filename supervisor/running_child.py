"""One incarnation of a child process, as the supervisor holds it while it runs.

Owns: `RunningChild`, what the supervisor knows of one incarnation (which child it is, its
process, its end of the pipe with the Inbox and Outbox threads on it, heartbeat, readiness,
whether it was asked to stop, as its messages tell: `note`), `start_child`, which wires a
fresh duplex pipe and starts the process with the stop signals blocked, `release`, which
collects the exit code and what is left of it (its pipe, its live gauges), and `ChildTable`,
the children alive now by name, which performs the relay's deliveries and the kills of
stalled children, and keeps the children-alive gauge.

Never: decide about a child (route, restart, whether it stalled, stop: `supervisor.tree` and
`supervisor.health` do), or reuse a pipe for a second incarnation: a fresh pipe cannot be
corrupted by an earlier one's death.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from contracts import metrics
from contracts.child_id import DECODER_ROLE, WRITER_ROLE, ChildId
from contracts.messages import (
    AckBatch,
    Crashed,
    EndOfStream,
    Heartbeat,
    Ready,
    StartupFailed,
    Stopped,
)
from supervisor.inbox import Inbox
from supervisor.metrics_archive import archive_dead_process
from supervisor.metrics_dir import ENV as ENV_METRICS_DIR
from supervisor.outbox import Outbox
from supervisor.relay import WRITER, Delivery
from supervisor.settings import SupervisorSettings
from supervisor.spawning import start_with_stop_signals_blocked
from supervisor.start_methods import ensure_server_running

log = logging.getLogger(__name__)


@dataclass
class RunningChild:
    id: ChildId
    key: int  # unique per incarnation: a restarted child reuses the name, never the key
    process: BaseProcess
    link: Connection
    outbox: Outbox
    inbox: Inbox
    started_at: float
    last_heartbeat: float
    ready: bool = False
    pubsub_ok: bool = True  # a decoder's last heartbeat said it reaches Pub/Sub
    database_problem: str = ""  # the writer's last heartbeat: why it cannot write, or ""
    end_of_stream: bool = False
    stopping: bool = False
    killed: bool = False
    last_error: str = ""

    @property
    def name(self) -> str:
        return self.id.name

    @property
    def role(self) -> str:
        return self.id.role

    def note(self, message: object, now: float) -> None:
        """What a message from the child says about it: alive, ready, drained, failing."""
        if isinstance(message, (Heartbeat, AckBatch, Ready)):
            self.last_heartbeat = now
        if isinstance(message, Heartbeat):
            self.pubsub_ok = message.pubsub_ok
            self.database_problem = message.database_problem
        elif isinstance(message, Ready):
            self.ready = True
        elif isinstance(message, EndOfStream):
            self.end_of_stream = True
        elif isinstance(message, (StartupFailed, Crashed)):
            self.last_error = message.reason
        elif isinstance(message, Stopped):
            self.stopping = True

    def release(self) -> int | None:
        """Once its pipe was read to the end: collect the exit code, close our end of the
        pipe, and archive the dead process's metrics."""
        self.process.join(timeout=1.0)
        self.outbox.close()
        self.link.close()
        # Only a process that is gone: one still alive would keep writing to unlinked files.
        if self.process.exitcode is not None and os.environ.get(ENV_METRICS_DIR):
            # Drops its live gauges and folds its counters into the archive: totals stay
            # monotonic and the directory keeps a bounded number of files.
            archive_dead_process(self.process.pid)
        return self.process.exitcode


def start_child(
    context: multiprocessing.context.BaseContext,
    child_id: ChildId,
    key: int,
    target: Callable[..., None],
    args: tuple,
    settings: SupervisorSettings,
    deliveries: queue.SimpleQueue[tuple[int, bytes | None]],
    wake: socket.socket,
) -> RunningChild:
    """Start `target(link, settings, *args)` as child `child_id`; its messages go to
    `deliveries`."""
    name = child_id.name
    ours, theirs = context.Pipe(duplex=True)
    process = context.Process(
        target=target, args=(theirs, settings, *args), name=name, daemon=False
    )
    start_with_stop_signals_blocked(process, before_start=lambda: ensure_server_running(context))
    theirs.close()  # only the child holds its end: its death closes the pipe
    now = time.monotonic()
    return RunningChild(
        id=child_id, key=key, process=process, link=ours,
        outbox=Outbox(ours, name), inbox=Inbox(ours, key, deliveries, wake),
        started_at=now, last_heartbeat=now,
    )  # fmt: skip


class ChildTable(dict[str, RunningChild]):
    """The children alive now, by name: at most one incarnation per name."""

    def add(self, child: RunningChild) -> None:
        self[child.name] = child
        self._count_alive()

    def remove(self, child: RunningChild) -> None:
        del self[child.name]
        self._count_alive()

    def decoders(self) -> list[RunningChild]:
        return [child for child in self.values() if not child.id.is_writer]

    def terminate_all(self) -> None:
        """SIGTERM to everyone: each nacks what it holds and exits."""
        for child in self.values():
            child.stopping = True
            child.process.terminate()

    def kill_alive(self) -> None:
        for child in self.values():
            if child.process.is_alive():
                child.process.kill()

    def end_all(self, grace_s: float) -> None:
        """Last resort when the supervisor itself failed: SIGTERM everyone, SIGKILL whoever
        is still there after `grace_s`, and reap them all, so that no child outlives us
        (multiprocessing would otherwise join them forever at exit) and no decoder keeps
        extending leases for a tree that is gone."""
        self.terminate_all()
        deadline = time.monotonic() + grace_s
        for child in self.values():
            child.process.join(max(0.0, deadline - time.monotonic()))
        self.kill_alive()
        for child in self.values():
            child.process.join(5.0)

    def kill_stalled(self, stall_reason: Callable[[RunningChild], str | None]) -> None:
        """SIGKILL each child not yet killed for which `stall_reason` gives a reason."""
        for child in list(self.values()):
            reason = None if child.killed else stall_reason(child)
            if reason:
                child.last_error = reason
                log.warning("%s %s: killing it", child.name, reason)
                child.killed = True
                child.process.kill()

    def send(self, deliveries: list[Delivery]) -> None:
        # The relay only names children it was told are up, and so are in this table.
        for name, message in deliveries:
            self[name].outbox.put(message)

    def _count_alive(self) -> None:
        metrics.CHILDREN_ALIVE.labels(DECODER_ROLE).set(len(self.decoders()))
        metrics.CHILDREN_ALIVE.labels(WRITER_ROLE).set(1 if WRITER in self else 0)


def describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            # Not every signal has a name (real-time ones like SIGRTMIN+1 do not); the reap
            # must describe it, not raise in the middle of restarting the child.
            return f"killed by signal {-code}"
    return f"exit code {code}"
