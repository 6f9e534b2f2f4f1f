"""Start-up and hand-over: from a `SupervisorSettings` to a running tree and its exit code.

Owns: the order of start-up (metrics directory before prometheus_client is imported, logging,
checks that fail fast with one line: settings that cannot fit the container's memory
limit (`supervisor.memory_fit`), the single writer of a SQLite file, then the decoders'
fork server, started before the subscription check that forks from it, the metrics port,
serving /healthz from then on (`supervisor.startup_phase`), database), the lifetime of the
metrics server and of the SQLite writer lock
(`store.writer_lock`, held until the tree has stopped; none for a PostgreSQL URL, which any
number of supervisors may share).

Never: parse options (that is `supervisor.cli`) or supervise (that is `supervisor.tree`).
"""

from __future__ import annotations

import logging
import time
from multiprocessing.context import BaseContext

import click

from contracts.exit_codes import EXIT_STARTUP
from store.backend import open_store
from store.errors import StoreError, StoreInaccessible, StoreUnavailable
from store.writer_lock import WriterLock, hold_writer_lock
from supervisor.cgroup_limits import Cgroup
from supervisor.logs import configure_logging
from supervisor.memory_fit import MemoryTooSmall, fit_to_memory
from supervisor.metrics_dir import prepare_metrics_dir, remove_metrics_dir
from supervisor.settings import SupervisorSettings
from supervisor.start_methods import start_decoder_server
from supervisor.startup_phase import StartupPhase
from supervisor.subscription_check import check_subscription

log = logging.getLogger(__name__)

DATABASE_POLL_S = 1.0
DATABASE_LOG_EVERY_S = 5.0
MIGRATION_WORD = "a schema migration counts every row once (about 1 s per million rows)"


class StartupError(Exception):
    """The setup is wrong in a way a restart will not fix."""


def claim_store(settings: SupervisorSettings) -> WriterLock:
    """The writer lock of a SQLite file, taken before anything else, so that a second
    supervisor on the same file is refused at once, before it touches Pub/Sub."""
    try:
        return hold_writer_lock(settings.writer.db_path)
    except StoreError as exc:
        raise StartupError(str(exc)) from None


def check_setup(
    settings: SupervisorSettings, context: BaseContext, phase: StartupPhase | None = None
) -> None:
    """Fail fast, before any child exists: Pub/Sub and the subscription, asked from a
    process of `context` (`supervisor.subscription_check`), then the database (a SQLite file
    or PostgreSQL, through `store.backend.open_store`, as the writer opens it). `phase`
    names each step for /healthz and /readyz."""
    phase = phase or StartupPhase()
    decoder = settings.decoder
    phase.step("checking the subscription")
    problem = check_subscription(context, decoder.project, decoder.subscription)
    if problem:
        raise StartupError(problem)
    wait_for_database(settings, phase)


def wait_for_database(settings: SupervisorSettings, phase: StartupPhase | None = None) -> None:
    """Open the database as the writer will; while it cannot be reached yet (a server still
    starting, a failover, a lock), wait, with a log line every few seconds (issue 25). A
    refusal that waiting cannot fix (not a miniscan database, a schema newer than this code,
    a refused password, a file that cannot be opened or created) is a StartupError. Opening
    migrates an older schema, which may count every row once: said every 30 s meanwhile."""
    phase = phase or StartupPhase()
    next_log = 0.0
    while True:
        try:
            with phase.slow_step("opening the database", MIGRATION_WORD):
                open_store(settings.writer.db_path, synchronous=settings.writer.synchronous).close()
            return
        except StoreInaccessible as exc:  # permissions, a read-only file system
            raise StartupError(str(exc)) from None
        except StoreUnavailable as exc:
            now = time.monotonic()
            if now >= next_log:
                log.warning("database not reachable yet (%s): waiting for it", exc)
                next_log = now + DATABASE_LOG_EVERY_S
        except StoreError as exc:
            raise StartupError(str(exc)) from None
        try:
            time.sleep(DATABASE_POLL_S)
        except KeyboardInterrupt:
            raise StartupError("interrupted while waiting for the database") from None


def run_supervisor(settings: SupervisorSettings) -> int:
    metrics_dir = prepare_metrics_dir()
    try:
        configure_logging("supervisor", settings.log_level, settings.log_format)
        try:
            # Before anything else: settings that cannot fit the container's memory are refused.
            asked = settings
            settings = fit_to_memory(settings, Cgroup(settings.cgroup_root).memory_limit())
            log_memory_fit(asked, settings)
            writer_lock = claim_store(settings)
        except (StartupError, MemoryTooSmall) as exc:
            click.echo(f"miniscan-supervisor: error: {exc}", err=True)
            return EXIT_STARTUP
        try:
            return run_tree(settings)
        finally:
            writer_lock.close()
    finally:
        remove_metrics_dir(metrics_dir)  # every child is gone by now


def log_memory_fit(asked: SupervisorSettings, fitted: SupervisorSettings) -> None:
    """Say which defaults were lowered to fit the container's memory limit."""
    if fitted.workers != asked.workers:
        log.info("--workers lowered from %d to %d to fit the container's memory limit",
                 asked.workers, fitted.workers)  # fmt: skip
    if fitted.decoder.max_in_flight_bytes != asked.decoder.max_in_flight_bytes:
        log.info("--max-in-flight-bytes lowered to %d to fit the container's memory limit",
                 fitted.decoder.max_in_flight_bytes)  # fmt: skip


def run_tree(settings: SupervisorSettings) -> int:
    """Check the setup, serve /metrics, run the tree until it stops; its exit code."""
    # First, so that the server imports the Pub/Sub client on the other CPU while this
    # process imports the tree; the check below forks from it (`supervisor.start_methods`).
    decoders = start_decoder_server()
    from contracts import metrics
    from supervisor.http import start_http_server
    from supervisor.tree import Supervisor

    # /healthz answers from here on: opening the database may migrate it for minutes, and a
    # startup probe that sees no server kills the container mid-migration (issue 26).
    phase = StartupPhase()
    server = None
    if settings.metrics_port:
        try:
            server = start_http_server(settings.metrics_host, settings.metrics_port,
                                       phase.is_alive, phase.is_ready)  # fmt: skip
        except OSError as exc:
            click.echo(
                f"miniscan-supervisor: error: cannot serve metrics on "
                f"{settings.metrics_host}:{settings.metrics_port}: {exc.strerror}",
                err=True,
            )
            return EXIT_STARTUP
    try:
        check_setup(settings, decoders, phase)
    except StartupError as exc:
        click.echo(f"miniscan-supervisor: error: {exc}", err=True)
        if server is not None:
            server.shutdown()
        return EXIT_STARTUP
    supervisor = Supervisor(settings)
    phase.hand_over(supervisor.is_alive, supervisor.is_ready)
    from importlib.metadata import version

    metrics.BUILD_INFO.labels(version("miniscan"), str(settings.workers)).set(1)
    metrics.export_known_labels()
    try:
        return supervisor.run()
    finally:
        if server is not None:
            server.shutdown()
