"""The `miniscan-scanner` command: the mock scanner that publishes scans to Pub/Sub.

Owns: declaring and validating options (bad input is a one-line click error), choosing the
payload source (generated or replayed from a file), Ctrl-C/SIGTERM only setting a stop flag
(`contracts.signal_relay`: never from inside the handler), and the lines a person reads on
stderr: progress, skipped lines, the final count. Exit codes (`contracts.exit_codes`): 0 done
or stopped by a signal; 3 Pub/Sub unreachable; 1 a publish failed; 2 bad usage (click's own).

Never: build payloads or call Pub/Sub itself (`scanner.generate`, `scanner.replay`,
`scanner.publish`, `broker` do), or leave a traceback for an expected failure.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterable, Iterator

import click
from click.core import ParameterSource

from broker.client import PubSubUnavailable
from contracts import console
from contracts.exit_codes import EXIT_CODES_HELP
from contracts.signal_relay import stop_signals_set
from scanner import generate, replay
from scanner.publish import Progress, PublishFailed, ScanPublisher, format_progress

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}


def parse_ips(ctx: click.Context, param: click.Parameter, value: str) -> generate.IPNetwork:
    try:
        return generate.parse_cidr(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def say(message: str) -> None:
    click.echo(message, err=True)


@click.command("scanner", context_settings=CONTEXT_SETTINGS, epilog=EXIT_CODES_HELP)
@console.config_option
@console.version_option
@console.project_option
@console.topic_option("Topic the scans go to.")
@click.option(
    "--rate",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="Messages per second; 0 = as fast as possible.",
)
@click.option(
    "--count",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Messages to publish; 0 = forever (with --from-file: the whole file).",
)
@click.option(
    "--seed",
    type=int,
    help="Make the stream reproducible: the same seed publishes byte-identical payloads "
    "(timestamps then start at a fixed time, one second apart, instead of the clock).",
)
@click.option(
    "--ips",
    default=generate.DEFAULT_CIDR,
    show_default=True,
    callback=parse_ips,
    help="CIDR whose hosts the scanned addresses are drawn from.",
)
@click.option(
    "--ports",
    type=click.Choice(generate.PORT_MODES),
    default="service",
    show_default=True,
    help="How ports are drawn: 'service' picks one the service runs on (HTTP 80/443/8080, "
    "SSH 22/2222, DNS 53), so keys repeat as in real scans; 'any' draws uniformly from "
    "1..65535, as the original scanner does.",
)
@click.option(
    "--from-file",
    type=click.Path(exists=True, dir_okay=False, allow_dash=True),
    help="Replay a JSON-lines file of scans (one published message per line; '-' = stdin) "
    "instead of generating; malformed lines are reported with their number and skipped.",
)
@click.option("-q", "--quiet", is_flag=True, help="No periodic progress lines.")
@click.option(
    "--progress-every",
    type=click.FloatRange(min=0, min_open=True),
    default=5.0,
    show_default=True,
    help="Seconds between progress lines on stderr.",
)
@console.connect_timeout_option(
    "Seconds to keep retrying an unreachable Pub/Sub before giving up."
)
@click.pass_context
def main(
    ctx: click.Context,
    project: str,
    topic: str,
    rate: float,
    count: int,
    seed: int | None,
    ips: generate.IPNetwork,
    ports: str,
    from_file: str | None,
    quiet: bool,
    progress_every: float,
    connect_timeout: float,
) -> None:
    """Publish mock scan results to Pub/Sub, like the real scanner (honours
    PUBSUB_EMULATOR_HOST). Creates the topic when missing. Ctrl-C flushes what is pending,
    prints how many were published and exits 0."""
    if from_file is not None:
        explicit = [
            f"--{name}"
            for name in ("seed", "ips", "ports")
            if ctx.get_parameter_source(name) is not ParameterSource.DEFAULT
        ]
        if explicit:
            raise click.UsageError(f"{' and '.join(explicit)} cannot be used with --from-file")
    publisher = ScanPublisher(project, topic, connect_timeout_s=connect_timeout)
    try:
        if publisher.connect():
            say(f"created topic {publisher.topic_path}")
    except PubSubUnavailable as exc:
        raise console.CouldNotStart(str(exc)) from None
    except KeyboardInterrupt:
        # The stop flag is not installed yet: Ctrl-C here only cuts the connect retry short.
        say("interrupted before publishing: published 0 messages")
        return
    skipped: list[replay.MalformedLine] = []
    payloads = choose_payloads(from_file, count, seed, ips, skipped, ports)
    stop = threading.Event()
    started = time.monotonic()
    on_progress = None if quiet else report_progress
    try:
        with stop_signals_set(stop):
            try:
                publisher.run(payloads, rate or None, stop, on_progress, progress_every)
            finally:
                published = publisher.flush()
    except PublishFailed as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:  # reading --from-file failed part-way
        raise click.ClickException(f"cannot read {from_file}: {exc.strerror}") from None
    say(summary(published, publisher.topic_path, time.monotonic() - started, stop.is_set()))
    if skipped:
        say(f"skipped {len(skipped)} malformed line(s) of {from_file}")


def choose_payloads(
    from_file: str | None,
    count: int,
    seed: int | None,
    ips: generate.IPNetwork,
    skipped: list[replay.MalformedLine],
    ports: str = "service",
) -> Iterable[bytes]:
    """Generated scans, or the file's well-formed lines (each bad one reported, then kept
    in `skipped`); at most `count` of them unless count is 0."""
    if from_file is None:
        return generate.scan_payloads(seed, count, ips, ports=ports)

    def report_malformed(line: replay.MalformedLine) -> None:
        skipped.append(line)
        say(f"{from_file}: skipped {line.describe()}")

    payloads: Iterator[bytes] = replay.replay_file(from_file, report_malformed)
    return itertools.islice(payloads, count) if count else payloads


def report_progress(progress: Progress) -> None:
    say(format_progress(progress))


def summary(published: int, topic_path: str, elapsed_s: float, interrupted: bool) -> str:
    rate = published / elapsed_s if elapsed_s > 0 else 0.0
    line = f"published {published} messages to {topic_path} in {elapsed_s:.1f}s ({rate:.0f}/s)"
    return ("stopped: " if interrupted else "") + line
