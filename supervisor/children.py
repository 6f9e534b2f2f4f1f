"""Entry points of the child processes: one driver runs every role's lifecycle.

Owns: what every child does around its role: ignore SIGINT (a terminal's Ctrl-C reaches the
whole process group, and only the supervisor decides how to stop), turn SIGTERM into a flag,
tag the logs, then `drive_role`: open the role, tell the supervisor `Ready`, run `run_once`
until the role is finished or SIGTERM arrived, always `shutdown`, and exit telling the
supervisor how it ended: `StartupFailed` and EXIT_STARTUP (a restart would not help: the tree
halts), `Crashed` with its traceback and EXIT_ERROR (restart me), or nothing and EXIT_OK
(stopped as asked). Also `ChildTargets`, the entry points the supervisor starts by default.

Never: hold pipeline logic (that is `workers.decoder_process` and `store.writer_process`),
know one role from the other beyond building it, or log a crash itself (the supervisor logs
the traceback `Crashed` carries, so that it is printed once). These functions are
module-level so that they work under the `spawn` start method.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import traceback
from collections.abc import Callable, MutableSequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import NoReturn

from contracts.child_id import ChildId
from contracts.exit_codes import EXIT_ERROR, EXIT_OK, EXIT_STARTUP
from contracts.lifecycle import CannotStart, NotAvailableYet, ProcessRole
from contracts.messages import Crashed, Ready, StartupFailed
from contracts.signal_relay import STOP_SIGNALS
from supervisor.logs import configure_logging
from supervisor.settings import SupervisorSettings


class _StopFlag:
    """Set by SIGTERM; `drive_role` checks it before every `run_once` (at least twice a
    second, since no `run_once` waits longer than half a second by default)."""

    def __init__(self) -> None:
        self.raised = False

    def __call__(self) -> bool:
        return self.raised

    def handle(self, signum: int, frame: object) -> None:
        self.raised = True


def _start_child(role: str, settings: SupervisorSettings) -> _StopFlag:
    stop = _StopFlag()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, stop.handle)
    # The supervisor spawns us with SIGINT and SIGTERM blocked (see `supervisor.spawning`), so
    # a Ctrl-C that lands while the interpreter boots waits here instead of killing us with
    # KeyboardInterrupt; now that our own handlers are in place, let it through.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    configure_logging(role, settings.log_level, settings.log_format)
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
        _exit_reporting(link, _crash_report(name, exc), EXIT_ERROR)
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
        # A hung or failing pull ends the loop without raising.
        crash = Crashed(role=name, reason=role.crash_reason) if role.crash_reason else None
    except Exception as exc:
        crash = _crash_report(name, exc)
    if crash is not None:
        _exit_reporting(link, crash, EXIT_ERROR)
    sys.exit(EXIT_OK)


def _crash_report(name: str, exc: Exception) -> Crashed:
    """`Crashed` for `exc`, with its traceback (we are inside its except block)."""
    return Crashed(
        role=name, reason=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc()
    )


# The role modules are imported inside each entry point so that a child loads only its own
# role's libraries: a writer never imports gRPC, a decoder never imports apsw.


def decoder_main(
    link: Connection,
    settings: SupervisorSettings,
    slot: int,
    pull_starts: MutableSequence[float],
    pull_share: MutableSequence[float],
) -> None:
    """`pull_starts`, `pull_share`: the arrays in shared memory through which the tree's
    decoders time their pulls (`workers.pull_turns`) and learn how many of them may pull
    (`contracts.pull_share_layout`)."""
    name = ChildId.decoder(slot).name
    stop = _start_child(name, settings)
    from workers.decoder_process import DecoderRole

    drive_role(
        name,
        link,
        stop,
        lambda: DecoderRole.open(
            slot, link, settings.decoder, pull_starts=pull_starts, pull_share=pull_share
        ),
    )


def writer_main(link: Connection, settings: SupervisorSettings) -> None:
    name = ChildId.writer().name
    stop = _start_child(name, settings)
    from store.writer_process import WriterRole

    drive_role(name, link, stop, lambda: WriterRole.open(link, settings.writer, stop))


@dataclass(frozen=True)
class ChildTargets:
    """The module-level functions the supervisor starts its children with. Each is called
    in the child as `target(link, settings, *role_args)`: the writer with no role arguments,
    a decoder with (slot, pull_starts, pull_share). Tests pass stand-ins."""

    writer: Callable[..., None] = writer_main
    decoder: Callable[..., None] = decoder_main
