"""`miniscan demo`: the whole pipeline on one machine, without Docker, until Ctrl-C.

    miniscan demo -+- Pub/Sub server (Google's: java; or built-in)  own process group
                   +- miniscan-supervisor --metrics-port P          own process group
                   |    +- decoders, writer                         (inherit that group)
                   +- miniscan-scanner --rate R                     own process group
       status line <-- GET http://127.0.0.1:P/metrics, once a second

Owns: only the click command: its options, the refusal of a busy metrics port, and turning
a failed run into a one-line error. The run is `demo.run` (start in order, watch,
stop in order); the child processes and stop requests are `testkit.processes`; the
status line's figures are `demo.status`. Children run in their own process groups
so that a Ctrl-C in the terminal reaches only the demo, which then stops them in order rather
than all at once.

Exit codes (`contracts.exit_codes`): 0 stopped as asked (Ctrl-C, SIGTERM, end of
--duration) and every child exited 0; 3 could not start (Google's emulator asked for by
MINISCAN_PUBSUB_SERVER and missing: the line says what to install; metrics port busy;
Pub/Sub setup failed); 1 a child exited on its own, or had to be killed; 2 bad usage.

Never: decode, write the database or pull messages itself (the supervisor does), signal a
process it did not start, or act inside a signal handler (the handler only counts signals;
the loops look at the count).
"""

from __future__ import annotations

import click

from contracts import console, defaults
from demo.run import (
    METRICS_HOST,
    DemoCouldNotStart,
    DemoFailed,
    DemoSettings,
    port_is_free,
    run_demo,
)
from testkit import emulator as emulator_module
from testkit.processes import SpawnFailed, StopRequests, stop_on_signals


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
@console.db_option(
    "SQLite file or postgresql:// URL the supervisor writes (PostgreSQL tables in the URL's "
    "default schema)."
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=defaults.DEFAULT_METRICS_PORT,
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

    Uses Google's Pub/Sub emulator where the Cloud SDK installed it, else the built-in one
    (MINISCAN_PUBSUB_SERVER=google|builtin forces either).
    """
    if metrics_port == 0:
        metrics_port = emulator_module.free_port()
    elif not port_is_free(METRICS_HOST, metrics_port):
        raise console.CouldNotStart(
            f"metrics port {metrics_port} is busy: choose another with --metrics-port, "
            "or --metrics-port 0 for any free one"
        )
    settings = DemoSettings(rate, workers, db_path, metrics_port, duration, quiet)
    stop = StopRequests()
    with stop_on_signals(stop):
        try:
            run_demo(settings, stop)
        except (DemoCouldNotStart, SpawnFailed) as exc:
            raise console.CouldNotStart(str(exc)) from None
        except DemoFailed as exc:
            raise click.ClickException(str(exc)) from None
