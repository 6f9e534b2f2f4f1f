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
from multiprocessing.connection import Connection

from supervisor.config import PipelineConfig
from supervisor.exit_codes import EXIT_ERROR, EXIT_OK, EXIT_STARTUP
from supervisor.logs import configure_logging
from supervisor.messages import Crashed, Ready, StartupFailed

log = logging.getLogger(__name__)


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
    configure_logging(role, config.log_level, config.log_format)
    return stop


def _report(link: Connection, message: object) -> None:
    # If the supervisor is gone, the exit code still tells the story.
    with contextlib.suppress(OSError):
        link.send(message)


def decoder_main(slot: int, link: Connection, config: PipelineConfig) -> None:
    role = f"decoder-{slot}"
    stop = _start_child(role, config)
    from scanner.pubsub import PubSubUnavailable
    from workers.decoder_process import DecoderRole
    from workers.pubsub import Subscription, SubscriptionMissing

    try:
        subscription = Subscription(config.project, config.subscription)
        subscription.check()
    except SubscriptionMissing as exc:
        _report(link, StartupFailed(role=role, reason=str(exc)))
        sys.exit(EXIT_STARTUP)
    except PubSubUnavailable as exc:
        _report(link, Crashed(role=role, reason=str(exc)))
        sys.exit(EXIT_ERROR)
    _report(link, Ready(role=role))
    decoder = DecoderRole(
        slot,
        subscription,
        link,
        max_in_flight=config.max_in_flight,
        pull_batch=config.pull_batch,
        lease_s=config.lease_s,
    )
    try:
        decoder.run(stop_requested=stop)
    except Exception as exc:
        log.exception("decoder crashed")
        _report(link, Crashed(role=role, reason=f"{type(exc).__name__}: {exc}"))
        sys.exit(EXIT_ERROR)
    if decoder.crash_reason:
        _report(link, Crashed(role=role, reason=decoder.crash_reason))
        sys.exit(EXIT_ERROR)
    sys.exit(EXIT_OK)


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
        _report(link, Crashed(role=role, reason=str(exc)))
        sys.exit(EXIT_ERROR)
    except StoreError as exc:
        _report(link, StartupFailed(role=role, reason=str(exc)))
        sys.exit(EXIT_STARTUP)
    _report(link, Ready(role=role))
    writer = WriterRole(
        store, link, batch_size=config.batch_size, batch_timeout_s=config.batch_timeout_s
    )
    try:
        writer.run(stop_requested=stop)
    except Exception as exc:
        log.exception("writer crashed")
        _report(link, Crashed(role=role, reason=f"{type(exc).__name__}: {exc}"))
        sys.exit(EXIT_ERROR)
    sys.exit(EXIT_OK)
