"""Entry points of the child processes: set up, run the role's loop, report how it ended.

Owns: what every child does before and after its role's loop: ignore SIGINT (a terminal's
Ctrl-C reaches the whole process group, and only the supervisor decides how to stop), turn
SIGTERM into a flag, tag the logs, open its resources, and tell the supervisor `Ready`,
`StartupFailed` (a restart would not help: the tree halts) or `Crashed` (restart me).

Never: hold pipeline logic (that is `workers.decoder_process` and `store.writer_process`).
These functions are module-level so that they work under the `spawn` start method.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import NoReturn

from contracts.messages import Crashed, Ready, StartupFailed
from supervisor.config import PipelineConfig
from supervisor.exit_codes import EXIT_ERROR, EXIT_OK, EXIT_STARTUP
from supervisor.logs import configure_logging

log = logging.getLogger(__name__)

STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})


class _StopFlag:
    """Set by SIGTERM; the role's loop polls it at least twice a second."""

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


def _run_and_exit(
    kind: str, role: str, link: Connection, run: Callable[[], str | None]
) -> NoReturn:
    """Run the role's loop, then exit: EXIT_OK when it stopped as asked; `Crashed` and
    EXIT_ERROR when it raised or returned a crash reason (restart me)."""
    try:
        crash_reason = run()
    except Exception as exc:
        log.exception("%s crashed", kind)
        crash_reason = f"{type(exc).__name__}: {exc}"
    if crash_reason:
        _exit_reporting(link, Crashed(role=role, reason=crash_reason), EXIT_ERROR)
    sys.exit(EXIT_OK)


def decoder_main(slot: int, link: Connection, config: PipelineConfig) -> None:
    role = f"decoder-{slot}"
    stop = _start_child(role, config)
    from broker.client import PubSubUnavailable
    from broker.subscription import Subscription, SubscriptionMissing
    from workers.decoder_process import DecoderRole

    try:
        subscription = Subscription(config.project, config.subscription)
        subscription.check()
    except SubscriptionMissing as exc:
        _exit_reporting(link, StartupFailed(role=role, reason=str(exc)), EXIT_STARTUP)
    except PubSubUnavailable as exc:
        _exit_reporting(link, Crashed(role=role, reason=str(exc)), EXIT_ERROR)
    _report(link, Ready(role=role))
    decoder = DecoderRole(
        slot,
        subscription,
        link,
        max_in_flight=config.max_in_flight,
        pull_batch=config.pull_batch,
        lease_s=config.lease_s,
    )

    def run_decoder() -> str | None:
        decoder.run(stop_requested=stop)
        return decoder.crash_reason  # a hung or failing pull ends the loop without raising

    _run_and_exit("decoder", role, link, run_decoder)


def writer_main(link: Connection, config: PipelineConfig) -> None:
    role = "writer"
    stop = _start_child(role, config)
    from store.db import ScanStore, StoreError, StoreUnavailable
    from store.writer_process import WriterRole

    try:
        store = ScanStore.open(
            config.db_path, synchronous=config.synchronous, busy_timeout_ms=config.busy_timeout_ms
        )
    except StoreUnavailable as exc:
        _exit_reporting(link, Crashed(role=role, reason=str(exc)), EXIT_ERROR)
    except StoreError as exc:
        _exit_reporting(link, StartupFailed(role=role, reason=str(exc)), EXIT_STARTUP)
    _report(link, Ready(role=role))
    writer = WriterRole(
        store, link, batch_size=config.batch_size, batch_timeout_s=config.batch_timeout_s
    )

    def run_writer() -> None:
        writer.run(stop_requested=stop)

    _run_and_exit("writer", role, link, run_writer)
