"""One run of `miniscan demo`: start the tree in order, show the status, stop it in order.

Owns: the demo's settings; starting the emulator, then the topic and subscription plus a
few poison messages so that dead letters show, then the supervisor (`testkit.launch`) and
the scanner; the live status line (scrape /metrics once a second through `testkit.scrape`,
show it with `demo.display`); and stopping in the reverse order: scanner (SIGINT, it
flushes), supervisor (SIGTERM, it drains and acks), emulator. Children's output goes to
log files in a temporary folder, named in the start line.

Never: decode, write the database or pull messages itself (the supervisor does), or turn
a failure into an exit code (it raises `DemoFailed`, or `SpawnFailed` from `testkit.processes`
when a command cannot start; the command in `demo.cli` maps both).
"""

from __future__ import annotations

import math
import shlex
import shutil
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import click

from broker import admin, client
from broker.client import PubSubUnavailable
from contracts import defaults
from demo.display import StatusDisplay
from demo.status import StatusWindow, parse_snapshot
from scanner.publish import publish_payloads
from store.errors import StoreError
from store.reader import describe_target, open_store_reader
from testkit import emulator as emulator_module
from testkit.emulator import LOOPBACK, Emulator, EmulatorError, emulator_env
from testkit.launch import LaunchOptions, child_env, launch_supervisor
from testkit.processes import (
    TICK_S,
    SpawnedChild,
    StopRequests,
    command_for,
    spawn_child,
    stop_child,
)
from testkit.scrape import fetch_text

METRICS_HOST = LOOPBACK  # a local demo: nothing outside this machine needs to scrape it
# Payloads the decoders must dead-letter, one per kind of mistake, so that the dead-letter
# count is visibly non-zero: the scanner itself only publishes valid scans.
POISON_PAYLOADS = (
    b"this is not json",
    b'{"ip": "1.1.1.1", "port": 80}',
    b'{"ip": "1.1.1.1", "port": 80, "service": "HTTP", "timestamp": 1700000000,'
    b' "data_version": 9, "data": {}}',
)
SCRAPE_EVERY_S = 1.0
SUPERVISOR_SHUTDOWN_S = 15.0  # passed as --shutdown-timeout
SCANNER_STOP_S = 20.0  # the scanner flushes what it batched, then exits


class DemoFailed(Exception):
    """Something the demo cannot go on with; the message is one line."""


class DemoCouldNotStart(DemoFailed):
    """The demo could not start: no Pub/Sub server, or it refused the set-up."""


@dataclass(frozen=True)
class DemoSettings:
    rate: float
    workers: int
    db_path: str
    metrics_port: int
    duration_s: float  # 0: until Ctrl-C
    quiet: bool
    project: str = defaults.DEFAULT_PROJECT
    topic: str = defaults.DEFAULT_TOPIC
    subscription: str = defaults.DEFAULT_SUBSCRIPTION


def port_is_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        # As the supervisor's HTTP server does, so that a port in TIME_WAIT counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


# --- Starting ----------------------------------------------------------------------------


def prepare_pubsub(settings: DemoSettings, host: str) -> None:
    """Create the topic and subscription, then queue the poison payloads on them."""
    with emulator_env(host):
        try:
            publisher = client.publisher_client()
            admin.ensure_topic(publisher, settings.project, settings.topic)
            subscriber = client.subscriber_client()
            try:
                admin.ensure_subscription(
                    subscriber, settings.project, settings.topic, settings.subscription
                )
            finally:
                subscriber.close()
            publish_payloads(settings.project, settings.topic, POISON_PAYLOADS, rate=None)
        except PubSubUnavailable as exc:  # PublishFailed too
            raise DemoCouldNotStart(str(exc)) from None


def launch_options(settings: DemoSettings, emulator_host: str) -> LaunchOptions:
    return LaunchOptions(
        emulator_host,
        settings.db_path,
        project=settings.project,
        subscription=settings.subscription,
        workers=settings.workers,
        metrics_host=METRICS_HOST,
        metrics_port=settings.metrics_port,
        extra_args=("--shutdown-timeout", str(SUPERVISOR_SHUTDOWN_S)),
    )


def scanner_args(settings: DemoSettings) -> list[str]:
    return [
        *command_for("miniscan-scanner", "scanner.cli"),
        "--project", settings.project,
        "--topic", settings.topic,
        "--rate", str(settings.rate),
    ]  # fmt: skip


# --- Watching and stopping ---------------------------------------------------------------


def watch(
    children: list[SpawnedChild], metrics_url: str, settings: DemoSettings, stop: StopRequests
) -> None:
    """Show the status until a stop is asked for or --duration is over; DemoFailed when a
    child exits on its own."""
    display = StatusDisplay(sys.stdout, settings.quiet)
    window = StatusWindow()
    deadline = time.monotonic() + settings.duration_s if settings.duration_s else math.inf
    next_scrape = time.monotonic()
    try:
        while not stop.requested and time.monotonic() < deadline:
            for child in children:
                code = child.process.poll()
                if code is not None:
                    raise DemoFailed(
                        f"{child.name} exited with code {code}: {child.last_log_line()}"
                    )
            now = time.monotonic()
            if now >= next_scrape:
                next_scrape = now + SCRAPE_EVERY_S
                # None while the supervisor is not serving (yet)
                text = fetch_text(metrics_url, timeout=SCRAPE_EVERY_S)
                if text is not None:
                    line = window.add(parse_snapshot(text, now), display.width())
                    display.show(line, now)
            time.sleep(TICK_S)
    finally:
        display.end()


def stop_all(
    children: list[SpawnedChild], emulator: Emulator | None, stop: StopRequests
) -> list[str]:
    """Stop in the reverse order of start; one line per child that did not stop cleanly."""
    problems = []
    timeouts = {"scanner": SCANNER_STOP_S, "supervisor": SUPERVISOR_SHUTDOWN_S + 5}
    signals = {"scanner": signal.SIGINT, "supervisor": signal.SIGTERM}
    for child in reversed(children):
        code = stop_child(child, signals[child.name], timeouts[child.name], stop)
        if child.killed:
            problems.append(f"{child.name} had to be killed (see {child.log_path})")
        elif code != 0:
            problems.append(f"{child.name} exited with code {code}: {child.last_log_line()}")
    if emulator is not None:
        emulator.stop()
    return problems


def summary(settings: DemoSettings, ran_s: float, metrics_url: str) -> str:
    """The last line: what was stored where, the commands that read it, where the metrics
    were (they went with the supervisor)."""
    db = describe_target(settings.db_path)  # a PostgreSQL URL without its password
    metrics = f"metrics were at {metrics_url} while it ran"
    try:
        with open_store_reader(settings.db_path) as store:
            stats = store.read_stats()
    except StoreError as exc:
        return f"stopped after {ran_s:.0f}s; cannot read {db}: {exc}; {metrics}"
    option = f"--db {shlex.quote(db)}"
    return (
        f"stopped after {ran_s:.0f}s: {stats.scan_rows} rows and {stats.dead_letters} dead"
        f" letters in {db}; look at them with `miniscan stats {option}`,"
        f" `miniscan query {option}` and `miniscan dead-letters list {option}`; {metrics}"
    )


def run_demo(settings: DemoSettings, stop: StopRequests) -> None:
    """Start the tree, watch it, stop it; DemoFailed (after stopping everything) on failure."""
    log_dir = Path(tempfile.mkdtemp(prefix="miniscan-demo-"))
    try:
        emulator = emulator_module.start_emulator(settings.project, log_dir=str(log_dir))
    except EmulatorError as exc:
        shutil.rmtree(log_dir, ignore_errors=True)
        raise DemoCouldNotStart(str(exc)) from None
    if not settings.quiet:  # which Pub/Sub server the figures come from (issue 16)
        kind = emulator_module.DESCRIPTIONS[emulator.kind]
        click.echo(f"miniscan demo: started {kind} on {emulator.host}", err=True)
    children: list[SpawnedChild] = []
    ran_s = 0.0
    metrics_url = ""
    try:
        prepare_pubsub(settings, emulator.host)
        if not stop.requested:
            supervisor = launch_supervisor(
                launch_options(settings, emulator.host), log_dir / "supervisor.log"
            )
            children.append(supervisor.child)
            scanner_log = log_dir / "scanner.log"
            env = child_env(emulator.host)
            children.append(spawn_child("scanner", scanner_args(settings), env, scanner_log))
            started = time.monotonic()
            metrics_url = supervisor.url("/metrics")
            if not settings.quiet:
                click.echo(
                    f"miniscan demo: emulator {emulator.host}, scanner at {settings.rate:g} msg/s,"
                    f" supervisor with {settings.workers} decoders ->"
                    f" {describe_target(settings.db_path)};"
                    f" metrics {metrics_url}; logs in {log_dir}; Ctrl-C stops"
                )
            watch(children, metrics_url, settings, stop)
            ran_s = time.monotonic() - started
    finally:
        problems = stop_all(children, emulator, stop)
    if problems:
        raise DemoFailed("; ".join(problems))
    if not children:
        click.echo("stopped before the scanner and the supervisor were started")
        return
    click.echo(summary(settings, ran_s, metrics_url))
