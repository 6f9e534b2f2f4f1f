"""`miniscan-supervisor`: the command that runs the whole pipeline.

Owns: the options (each also readable from a MINISCAN_* environment variable), turning them
into a `PipelineConfig`, the start-up checks that turn a bad setup into a one-line error and
exit code 3 (see `supervisor.exit_codes`), and handing over to `supervisor.tree.Supervisor`.

Never: hold pipeline logic, or import prometheus_client before the metrics directory is set.
"""

from __future__ import annotations

import os
import sys

import click

from contracts import defaults
from supervisor.config import PipelineConfig
from supervisor.logs import FORMATS, LEVELS

DEFAULTS = PipelineConfig()  # the one place the defaults live; --help shows them

CONTEXT = {"auto_envvar_prefix": "MINISCAN", "help_option_names": ["-h", "--help"]}


@click.command(context_settings=CONTEXT)
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    default=os.cpu_count() or 1,
    show_default="CPU count",
    help="Decoder processes.",
)
@click.option(
    "--project",
    envvar=["MINISCAN_PROJECT", "PUBSUB_PROJECT_ID"],
    default=defaults.DEFAULT_PROJECT,
    show_default=True,
    help="Google Cloud project.",
)
@click.option("--subscription", default=defaults.DEFAULT_SUBSCRIPTION, show_default=True)
@click.option(
    "--db",
    "db_path",
    # Named outright: auto_envvar_prefix would derive MINISCAN_DB_PATH from "db_path", while
    # every other command (and the README) reads MINISCAN_DB.
    envvar=defaults.DB_PATH_ENV,
    default=defaults.DEFAULT_DB_PATH,
    show_default=True,
    type=click.Path(dir_okay=False),
    help="SQLite file (created with its folder; one supervisor per file) or postgresql:// URL "
    "(tables created in its default schema; any number of supervisors may share it). "
    f"Env {defaults.DB_PATH_ENV}.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 100_000),
    default=DEFAULTS.batch_size,
    show_default=True,
    help="Messages per commit at most.",
)
@click.option(
    "--batch-bytes",
    type=click.IntRange(64 * 1024, 2**31),
    default=DEFAULTS.batch_bytes,
    show_default=True,
    help="Payload bytes per commit at most.",
)
@click.option(
    "--batch-timeout",
    type=click.IntRange(0, 60_000),
    default=int(DEFAULTS.batch_timeout_s * 1000),
    show_default=True,
    help="Milliseconds a message may linger for more to join its batch while the writer is "
    "idle. 0: group commit, the writer commits as soon as nothing more is waiting, and what "
    "arrives during a commit forms the next batch (at high rates --load-linger applies).",
)
@click.option(
    "--load-linger",
    type=click.IntRange(0, 60_000),
    default=int(DEFAULTS.load_linger_s * 1000),
    show_default=True,
    help="Milliseconds a batch may wait to grow while messages pour in (at least 100 "
    "expected in that time: 10,000 msgs/s at 10 ms); fewer, larger commits cost less CPU a "
    "message. At lower rates the writer commits as soon as its pipe is idle. 0: never.",
)
@click.option(
    "--max-in-flight",
    type=click.IntRange(1, 1_000_000),
    default=DEFAULTS.max_in_flight,
    show_default=True,
    help="Pulled but unacked messages per decoder (backpressure).",
)
@click.option(
    "--max-in-flight-bytes",
    type=click.IntRange(64 * 1024, 2**31),
    default=DEFAULTS.max_in_flight_bytes,
    show_default=True,
    help="Payload bytes pulled but unacked per decoder (backpressure; a larger message is "
    "pulled alone).",
)
@click.option("--metrics-host", default="0.0.0.0", show_default=True)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=defaults.DEFAULT_METRICS_PORT,
    show_default=True,
    help="Port for /metrics, /healthz, /readyz; 0 disables.",
)
@click.option(
    "--shutdown-timeout",
    type=click.FloatRange(0.1, 3600),
    default=30.0,
    show_default=True,
    help="Seconds a graceful stop may take before children are killed.",
)
@click.option(
    "--child-timeout",
    type=click.FloatRange(4, 3600),
    default=30.0,
    show_default=True,
    help="Seconds without a heartbeat after which a child counts as stalled and is killed.",
)
@click.option(
    "--restart-max",
    type=click.IntRange(0, 1000),
    default=5,
    show_default=True,
    help="Restarts of one child allowed within --restart-window before giving up.",
)
@click.option(
    "--restart-window",
    type=click.FloatRange(1, 86400),
    default=30.0,
    show_default=True,
    help="Seconds.",
)
@click.option(
    "--synchronous",
    type=click.Choice(["FULL", "NORMAL"], case_sensitive=False),
    default="FULL",
    show_default=True,
    help="Commit durability: SQLite's synchronous pragma; on PostgreSQL FULL keeps "
    "synchronous_commit on and NORMAL turns it off. NORMAL may lose the last commits on power "
    "loss (a server crash on PostgreSQL), which were already acked: only for throwaway data.",
)
@click.option(
    "--log-level",
    type=click.Choice(LEVELS, case_sensitive=False),
    default="INFO",
    show_default=True,
)
@click.option("--log-format", type=click.Choice(FORMATS), default="text", show_default=True)
def main(**options: object) -> None:  # fmt: skip
    """Pull scan results from Pub/Sub, decode them in N processes and keep the newest scan per
    (ip, port, service) in SQLite or PostgreSQL, acknowledging each message only after it is
    committed.

    Exit codes: 0 clean stop, 2 bad option, 3 could not start, 4 restart storm, 5 forced stop.
    """
    config = PipelineConfig(
        project=options["project"],
        subscription=options["subscription"],
        db_path=options["db_path"],
        workers=options["workers"],
        batch_size=options["batch_size"],
        batch_bytes=options["batch_bytes"],
        batch_timeout_s=options["batch_timeout"] / 1000,
        load_linger_s=options["load_linger"] / 1000,
        max_in_flight=options["max_in_flight"],
        max_in_flight_bytes=options["max_in_flight_bytes"],
        pull_batch=min(1000, options["max_in_flight"]),
        synchronous=options["synchronous"].upper(),
        metrics_host=options["metrics_host"],
        metrics_port=options["metrics_port"],
        shutdown_timeout_s=options["shutdown_timeout"],
        child_timeout_s=options["child_timeout"],
        restart_max=options["restart_max"],
        restart_window_s=options["restart_window"],
        log_level=options["log_level"].upper(),
        log_format=options["log_format"],
    )
    from supervisor.run import run_supervisor

    sys.exit(run_supervisor(config))
