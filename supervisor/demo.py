"""`miniscan demo`: the whole pipeline on one machine, without Docker, until Ctrl-C.

    miniscan demo -+- Pub/Sub emulator (launcher execs java)        own process group
                   +- miniscan-supervisor --metrics-port P          own process group
                   |    +- decoders, writer                         (inherit that group)
                   +- miniscan-scanner --rate R                     own process group
       status line <-- GET http://127.0.0.1:P/metrics, once a second

Owns: starting that tree in order (emulator, topic and subscription plus a few poison
messages so that dead letters show, supervisor, scanner), the live status line, and stopping
the tree in order: scanner (SIGINT, it flushes), supervisor (SIGTERM, it drains and acks),
emulator; any process group that still has a member after that is killed. Children run in
their own process groups so that a Ctrl-C in the terminal reaches only the demo, which then
stops them in that order rather than all at once. Children's output goes to log files in a
temporary folder, named in the start line.

Exit codes: 0 stopped as asked (Ctrl-C, SIGTERM, end of --duration) and every child exited
0; 1 could not start (emulator missing: the line says what to install; metrics port busy;
Pub/Sub setup failed), a child exited on its own, or a child had to be killed; 2 bad usage.

Never: decode, write the database or pull messages itself (the supervisor does), signal a
process it did not start, or act inside a signal handler (the handler only counts signals;
the loops look at the count).
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import click

from scanner import emulator as emulator_module
from scanner import pubsub
from scanner.emulator import Emulator, EmulatorError
from scanner.publish import publish_payloads
from scanner.pubsub import PubSubUnavailable

METRICS_HOST = "127.0.0.1"  # a local demo: nothing outside this machine needs to scrape it
LATENCY_METRIC = "miniscan_end_to_end_latency_seconds"
# Payloads the decoders must dead-letter, one per kind of mistake, so that the dead-letter
# count is visibly non-zero: the scanner itself only publishes valid scans.
POISON_PAYLOADS = (
    b"this is not json",
    b'{"ip": "1.1.1.1", "port": 80}',
    b'{"ip": "1.1.1.1", "port": 80, "service": "HTTP", "timestamp": 1700000000,'
    b' "data_version": 9, "data": {}}',
)
TICK_S = 0.1  # how soon the loops notice a signal, a child's exit or a deadline
SCRAPE_EVERY_S = 1.0
PLAIN_STATUS_EVERY_S = 5.0  # not a terminal: a line every few seconds, not a redraw
RATE_WINDOW_S = 5.0  # msgs/s and latency quantiles cover about the last few seconds
SUPERVISOR_SHUTDOWN_S = 15.0  # passed as --shutdown-timeout
SCANNER_STOP_S = 20.0  # the scanner flushes what it batched, then exits
GROUP_GRACE_S = 5.0  # a child's own children may outlive it by a moment, not longer
BIN = Path(sys.executable).parent


# --- Status: pure functions over scraped metrics ------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """The figures of one /metrics scrape that the status line shows."""

    at: float  # time.monotonic() of the scrape
    stored: float
    rows: float
    dead_letters: float
    latency_buckets: tuple[tuple[float, float], ...]  # (upper bound, cumulative count)


def parse_snapshot(text: str, at: float) -> Snapshot:
    """Read a Prometheus text exposition; samples of one name are summed over their labels."""
    from prometheus_client.parser import text_string_to_metric_families

    totals: dict[str, float] = {}
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == LATENCY_METRIC + "_bucket":
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
            else:
                totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return Snapshot(
        at=at,
        stored=totals.get("miniscan_messages_stored_total", 0.0),
        rows=totals.get("miniscan_scans_rows", 0.0),
        dead_letters=totals.get("miniscan_messages_dead_lettered_total", 0.0),
        latency_buckets=tuple(sorted(buckets.items())),
    )


def estimate_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """The q-quantile of a histogram, as Prometheus's histogram_quantile estimates it.

    `buckets` are (upper bound, cumulative count) sorted by bound, the last one +Inf. The
    value is interpolated linearly inside the bucket that holds the rank (the first bucket
    starts at 0); a rank in the +Inf bucket gives the highest finite bound. None when the
    histogram is empty.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile {q} is not between 0 and 1")
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for upper_bound, count in buckets:
        if count >= rank and count > lower_count:
            if math.isinf(upper_bound):
                return lower_bound
            share = (rank - lower_count) / (count - lower_count)
            return lower_bound + (upper_bound - lower_bound) * share
        lower_bound, lower_count = upper_bound, count
    return lower_bound


def bucket_increase(
    current: Sequence[tuple[float, float]], earlier: Sequence[tuple[float, float]]
) -> list[tuple[float, float]]:
    """The observations between two scrapes of the same cumulative histogram."""
    before = dict(earlier)
    return [(bound, max(0.0, count - before.get(bound, 0.0))) for bound, count in current]


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.0f}ms" if seconds < 1 else f"{seconds:.1f}s"


def format_status(current: Snapshot, earlier: Snapshot | None) -> str:
    """One line: stored msgs/s and latency over the span since `earlier`, totals as of now."""
    if earlier is not None and current.at > earlier.at:
        rate = f"{(current.stored - earlier.stored) / (current.at - earlier.at):.0f}"
        window = bucket_increase(current.latency_buckets, earlier.latency_buckets)
    else:
        rate, window = "-", list(current.latency_buckets)
    return (
        f"stored {rate} msg/s | rows {current.rows:.0f} | dead letters {current.dead_letters:.0f}"
        f" | latency p50 {format_seconds(estimate_quantile(0.5, window))}"
        f" p99 {format_seconds(estimate_quantile(0.99, window))}"
    )


class StatusWindow:
    """The last few seconds of snapshots, so that rates are recent rather than since start."""

    def __init__(self, span_s: float = RATE_WINDOW_S) -> None:
        self._span_s = span_s
        self._snapshots: deque[Snapshot] = deque()

    def add(self, snapshot: Snapshot) -> str:
        self._snapshots.append(snapshot)
        while snapshot.at - self._snapshots[0].at > self._span_s:
            self._snapshots.popleft()
        earlier = self._snapshots[0] if len(self._snapshots) > 1 else None
        return format_status(snapshot, earlier)


class StatusDisplay:
    """Redraws one line on a terminal; elsewhere prints a plain line every few seconds."""

    def __init__(self, out: TextIO, quiet: bool) -> None:
        self._out = out
        self._quiet = quiet
        self._tty = out.isatty()
        self._width = 0
        self._last_plain = -math.inf

    def show(self, line: str, now: float) -> None:
        if self._quiet:
            return
        if self._tty:
            self._out.write("\r" + line.ljust(self._width))
            self._width = len(line)
        elif now - self._last_plain >= PLAIN_STATUS_EVERY_S:
            self._out.write(line + "\n")
            self._last_plain = now
        self._out.flush()

    def end(self) -> None:
        """Leave the redrawn line in place before anything else is printed."""
        if self._width:
            self._out.write("\n")
            self._out.flush()
            self._width = 0


def scrape(url: str) -> str | None:
    """The /metrics text, or None while the supervisor is not serving (yet)."""
    try:
        with urllib.request.urlopen(url, timeout=SCRAPE_EVERY_S) as response:
            return response.read().decode()
    except OSError:
        return None


# --- Signals and children ----------------------------------------------------------------


class StopRequests:
    """Counts Ctrl-C and SIGTERM. The first asks for an orderly stop; a second one cuts the
    waits short and kills what is left."""

    def __init__(self) -> None:
        self.count = 0

    def handle(self, signum: int, frame: object) -> None:
        self.count += 1

    @property
    def requested(self) -> bool:
        return self.count > 0

    @property
    def forced(self) -> bool:
        return self.count > 1


@contextmanager
def stop_on_signals(stop: StopRequests) -> Iterator[None]:
    previous = {sig: signal.signal(sig, stop.handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@dataclass
class Child:
    """A command the demo started, alone in its process group (pgid == pid)."""

    name: str
    process: subprocess.Popen
    log_path: Path
    killed: bool = False

    def last_log_line(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1] if lines else ""


def command_for(script: str, module: str) -> list[str]:
    """The console script next to this interpreter, or the same entry point through it."""
    path = BIN / script
    if path.is_file() and os.access(path, os.X_OK):
        return [str(path)]
    return [sys.executable, "-c", f"from {module} import main; main()"]


def spawn_child(name: str, args: list[str], env: dict[str, str], log_dir: Path) -> Child:
    log_path = log_dir / f"{name}.log"
    with open(log_path, "ab") as log:
        try:
            process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            raise DemoFailed(f"cannot start {name} ({args[0]}): {exc.strerror}") from None
    return Child(name, process, log_path)


def wait_for_exit(process: subprocess.Popen, timeout: float, stop: StopRequests) -> bool:
    """True once `process` exited; False after `timeout` s or a second Ctrl-C."""
    deadline = time.monotonic() + timeout
    while process.poll() is None:
        if stop.forced or time.monotonic() >= deadline:
            return False
        time.sleep(TICK_S)
    return True


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def kill_group(pgid: int) -> None:
    with suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def stop_child(child: Child, signum: int, timeout: float, stop: StopRequests) -> int:
    """Ask `child` to stop, wait for it, then make sure its whole group is gone.

    Only the leader is signalled: it stops its own children in its own order. Whatever is
    still running after the wait (or that outlived the leader) is killed. Returns the exit
    code (negative: killed by that signal).
    """
    if child.process.poll() is None:
        child.process.send_signal(signum)
    if not wait_for_exit(child.process, timeout, stop):
        child.killed = True
        kill_group(child.process.pid)
        child.process.wait()
    deadline = time.monotonic() + GROUP_GRACE_S
    while group_alive(child.process.pid):
        if stop.forced or time.monotonic() >= deadline:
            child.killed = True
            kill_group(child.process.pid)
            break
        time.sleep(TICK_S)
    return child.process.returncode


# --- The run -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoSettings:
    rate: float
    workers: int
    db_path: str
    metrics_port: int
    duration_s: float  # 0: until Ctrl-C
    quiet: bool
    project: str = pubsub.DEFAULT_PROJECT
    topic: str = pubsub.DEFAULT_TOPIC
    subscription: str = pubsub.DEFAULT_SUBSCRIPTION


class DemoFailed(Exception):
    """Something the demo cannot go on with; the message is one line."""


def port_is_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        # As the supervisor's HTTP server does, so that a port in TIME_WAIT counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def child_env(emulator_host: str) -> dict[str, str]:
    env = {**os.environ, "PUBSUB_EMULATOR_HOST": emulator_host}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # the supervisor makes its own
    return env


@contextmanager
def emulator_env(host: str) -> Iterator[None]:
    """PUBSUB_EMULATOR_HOST for this process's own clients, restored afterwards."""
    previous = os.environ.get("PUBSUB_EMULATOR_HOST")
    os.environ["PUBSUB_EMULATOR_HOST"] = host
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("PUBSUB_EMULATOR_HOST", None)
        else:
            os.environ["PUBSUB_EMULATOR_HOST"] = previous


def prepare_pubsub(settings: DemoSettings, host: str) -> None:
    """Create the topic and subscription, then queue the poison payloads on them."""
    with emulator_env(host):
        try:
            publisher = pubsub.publisher_client()
            pubsub.ensure_topic(publisher, settings.project, settings.topic)
            subscriber = pubsub.subscriber_client()
            try:
                pubsub.ensure_subscription(
                    subscriber, settings.project, settings.topic, settings.subscription
                )
            finally:
                subscriber.close()
            publish_payloads(settings.project, settings.topic, POISON_PAYLOADS, rate=None)
        except PubSubUnavailable as exc:  # PublishFailed too
            raise DemoFailed(str(exc)) from None


def supervisor_args(settings: DemoSettings) -> list[str]:
    return [
        *command_for("miniscan-supervisor", "supervisor.cli"),
        "--workers", str(settings.workers),
        "--project", settings.project,
        "--subscription", settings.subscription,
        "--db", settings.db_path,
        "--metrics-host", METRICS_HOST,
        "--metrics-port", str(settings.metrics_port),
        "--shutdown-timeout", str(SUPERVISOR_SHUTDOWN_S),
    ]  # fmt: skip


def scanner_args(settings: DemoSettings) -> list[str]:
    return [
        *command_for("miniscan-scanner", "scanner.cli"),
        "--project", settings.project,
        "--topic", settings.topic,
        "--rate", str(settings.rate),
    ]  # fmt: skip


def watch(
    children: list[Child], metrics_url: str, settings: DemoSettings, stop: StopRequests
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
                text = scrape(metrics_url)
                if text is not None:
                    display.show(window.add(parse_snapshot(text, now)), now)
            time.sleep(TICK_S)
    finally:
        display.end()


def stop_all(children: list[Child], emulator: Emulator | None, stop: StopRequests) -> list[str]:
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


def summary(settings: DemoSettings, ran_s: float) -> str:
    from store import query
    from store.errors import StoreError

    try:
        conn = query.open_reader(settings.db_path)
        try:
            stats = query.read_stats(conn)
        finally:
            conn.close()
    except StoreError as exc:
        return f"stopped after {ran_s:.0f}s; cannot read {settings.db_path}: {exc}"
    db = settings.db_path
    return (
        f"stopped after {ran_s:.0f}s: {stats.scan_rows} rows and {stats.dead_letters} dead"
        f" letters in {db}; look at them with `miniscan query --db {db}` and"
        f" `miniscan dead-letters list --db {db}`"
    )


def run_demo(settings: DemoSettings, stop: StopRequests) -> None:
    """Start the tree, watch it, stop it; DemoFailed (after stopping everything) on failure."""
    log_dir = Path(tempfile.mkdtemp(prefix="miniscan-demo-"))
    try:
        emulator = emulator_module.start_emulator(settings.project, log_dir=str(log_dir))
    except EmulatorError as exc:
        shutil.rmtree(log_dir, ignore_errors=True)
        raise DemoFailed(str(exc)) from None
    children: list[Child] = []
    ran_s = 0.0
    try:
        prepare_pubsub(settings, emulator.host)
        env = child_env(emulator.host)
        if not stop.requested:
            children.append(spawn_child("supervisor", supervisor_args(settings), env, log_dir))
            children.append(spawn_child("scanner", scanner_args(settings), env, log_dir))
            started = time.monotonic()
            metrics_url = f"http://{METRICS_HOST}:{settings.metrics_port}/metrics"
            if not settings.quiet:
                click.echo(
                    f"miniscan demo: emulator {emulator.host}, scanner at {settings.rate:g} msg/s,"
                    f" supervisor with {settings.workers} decoders -> {settings.db_path};"
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
    click.echo(summary(settings, ran_s))


@click.command("demo", context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=200.0,
    show_default=True,
    help="Scans the scanner publishes per second.",
)
@click.option(
    "--workers", type=click.IntRange(1, 64), default=2, show_default=True, help="Decoders."
)
@click.option(
    "--db",
    "db_path",
    type=click.Path(dir_okay=False),
    default="data/scan_results.db",
    show_default=True,
    help="SQLite file the supervisor writes (created with its folder).",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=9100,
    show_default=True,
    help=f"Port of the supervisor's /metrics on {METRICS_HOST}; 0 picks a free one. A busy "
    "port is an error rather than silently another port, so that what you point Prometheus "
    "at is what runs.",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0),
    default=0.0,
    help="Stop by itself after this many seconds; 0 (default) runs until Ctrl-C.",
)
@click.option("-q", "--quiet", is_flag=True, help="No start line and no status line.")
def demo(
    rate: float, workers: int, db_path: str, metrics_port: int, duration: float, quiet: bool
) -> None:
    """Run the whole pipeline locally without Docker: a Pub/Sub emulator, the scanner and
    the supervisor, with a live status line, until Ctrl-C, which stops everything it started.

    Needs the Google Cloud SDK's Pub/Sub emulator. Exit codes: 0 stopped cleanly; 1 could not
    start, or a process failed or had to be killed; 2 bad usage.
    """
    if metrics_port == 0:
        metrics_port = emulator_module.free_port()
    elif not port_is_free(METRICS_HOST, metrics_port):
        raise click.ClickException(
            f"metrics port {metrics_port} is busy: choose another with --metrics-port, "
            "or --metrics-port 0 for any free one"
        )
    settings = DemoSettings(rate, workers, db_path, metrics_port, duration, quiet)
    stop = StopRequests()
    with stop_on_signals(stop):
        try:
            run_demo(settings, stop)
        except DemoFailed as exc:
            raise click.ClickException(str(exc)) from None
