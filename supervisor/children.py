"""Entry points of the child processes: one driver runs every role's lifecycle.

Owns: what every child does around its role: ignore SIGINT (a terminal's Ctrl-C reaches the
whole process group, and only the supervisor decides how to stop), turn SIGTERM into a flag,
tag the logs, then `drive_role`: open the role, tell the supervisor `Ready`, run `run_once`
until the role is finished or SIGTERM arrived, always `shutdown`, and exit telling the
supervisor how it ended: `StartupFailed` and EXIT_STARTUP (a restart would not help: the tree
halts), `Crashed` and EXIT_ERROR (restart me), or nothing and EXIT_OK (stopped as asked).

Never: hold pipeline logic (that is `workers.decoder_process` and `store.writer_process`), or
know one role from the other beyond building it. These functions are module-level so that
they work under the `spawn` start method.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
from collections.abc import Callable, MutableSequence
from multiprocessing.connection import Connection
from typing import NoReturn

from contracts.lifecycle import CannotStart, NotAvailableYet, ProcessRole
from contracts.messages import Crashed, Ready, StartupFailed
from supervisor.config import PipelineConfig
from supervisor.exit_codes import EXIT_ERROR, EXIT_OK, EXIT_STARTUP
from supervisor.logs import configure_logging

log = logging.getLogger(__name__)

STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})


class _StopFlag:
    """Set by SIGTERM; `drive_role` checks it before every `run_once` (at least twice a
    second, since no `run_once` waits longer than half a second by default)."""

    def __init__(self) -> None:
        self.raised = False

    def __call__(self) -> bool:
        return self.raised

    def handle(self, signum: int, frame: object) -> None:
        self.raised = True


def _start_child(role: str, config: PipelineConfig) -> _StopFlag:
    stop = _StopFlag()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, stop.handle)
    # The supervisor spawns us with SIGINT and SIGTERM blocked (see `supervisor.spawning`), so
    # a Ctrl-C that lands while the interpreter boots waits here instead of killing us with
    # KeyboardInterrupt; now that our own handlers are in place, let it through.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    configure_logging(role, config.log_level, config.log_format)
    return stop


def _report(link: Connection, message: object) -> None:
    # If the supervisor is gone, the exit code still tells the story.
    with contextlib.suppress(OSError):
        link.send(message)


def _exit_reporting(link: Connection, message: object, code: int) -> NoReturn:
    _report(link, message)
    sys.exit(code)


def drive_role(
    name: str,
    link: Connection,
    stop_requested: Callable[[], bool],
    open_role: Callable[[], ProcessRole],
) -> NoReturn:
    """The lifecycle of every child (issue 11); exits the process with the right code."""
    try:
        role = open_role()
    except CannotStart as exc:
        _exit_reporting(link, StartupFailed(role=name, reason=str(exc)), EXIT_STARTUP)
    except NotAvailableYet as exc:
        _exit_reporting(link, Crashed(role=name, reason=str(exc)), EXIT_ERROR)
    except Exception as exc:
        _exit_reporting(link, Crashed(role=name, reason=_log_crash(name, exc)), EXIT_ERROR)
    _report(link, Ready(role=name))
    try:
        try:
            while not role.finished:
                if stop_requested():
                    role.handle_stop_signal()
                    break
                role.run_once()
        finally:
            role.shutdown()
        crash_reason = role.crash_reason  # a hung or failing pull ends the loop without raising
    except Exception as exc:
        crash_reason = _log_crash(name, exc)
    if crash_reason:
        _exit_reporting(link, Crashed(role=name, reason=crash_reason), EXIT_ERROR)
    sys.exit(EXIT_OK)


def _log_crash(name: str, exc: Exception) -> str:
    """Log the traceback (we are inside its except block); return the reason for `Crashed`."""
    log.exception("%s crashed", name)
    return f"{type(exc).__name__}: {exc}"


# The role modules are imported inside each entry point so that a child loads only its own
# role's libraries: a writer never imports gRPC, a decoder never imports apsw.


def decoder_main(
    slot: int,
    pull_starts: MutableSequence[float],
    pull_share: MutableSequence[float],
    link: Connection,
    config: PipelineConfig,
) -> None:
    """`pull_starts`, `pull_share`: the arrays in shared memory through which the tree's
    decoders time their pulls (`workers.pull_turns`) and learn how many of them may pull
    (`workers.pull_share`)."""
    name = f"decoder-{slot}"
    stop = _start_child(name, config)
    from workers.decoder_process import DecoderRole

    drive_role(
        name,
        link,
        stop,
        lambda: DecoderRole.open(
            slot,
            link,
            config.project,
            config.subscription,
            max_in_flight=config.max_in_flight,
            max_in_flight_bytes=config.max_in_flight_bytes,
            pull_batch=config.pull_batch,
            lease_s=config.lease_s,
            pull_starts=pull_starts,
            pull_share=pull_share,
        ),
    )


def writer_main(link: Connection, config: PipelineConfig) -> None:
    name = "writer"
    stop = _start_child(name, config)
    from store.writer_process import WriterRole

    drive_role(
        name,
        link,
        stop,
        lambda: WriterRole.open(
            link,
            config.db_path,
            synchronous=config.synchronous,
            busy_timeout_ms=config.busy_timeout_ms,
            batch_size=config.batch_size,
            batch_bytes=config.batch_bytes,
            batch_timeout_s=config.batch_timeout_s,
            load_linger_s=config.load_linger_s,
        ),
    )
