"""The store's `miniscan` subcommands: `query`, `stats` and the `dead-letters` group.

Owns: declaring and parsing options, and wiring them to `store.reader` (one reader
interface for a SQLite file and a PostgreSQL URL alike), `store.dead_letters` and
`store.report` (what each command prints). Every command reads the store through a
read-only connection (`dead-letters replay` also deletes what it republished), so they all
work while supervisors write, and none ever creates or migrates a store.

Exit codes: 0 done; 1 expected failure, reported as one `miniscan: ...` line on stderr
(no database at the path, a refused file or schema, PostgreSQL or Pub/Sub unreachable, a
publish failed); a PostgreSQL URL is only ever shown without its password;
2 bad usage (click's own).

Never: hold SQL or Pub/Sub calls, branch on the backend, or leave a traceback for an
expected failure.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import click

from broker import client
from contracts import defaults
from contracts.canonical import canonical_ip
from store import dead_letters, reader, render, report
from store.errors import StoreError
from store.since import parse_since

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}


class CommandFailed(click.ClickException):
    """An expected failure: one `miniscan: ...` line on stderr, exit code 1."""

    def show(self, file: Any = None) -> None:
        click.echo(f"miniscan: {self.format_message()}", err=True)


def reports_failures(command: Callable[..., None]) -> Callable[..., None]:
    """Turn the store's and Pub/Sub's expected errors into a one-line message and exit 1."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> None:
        try:
            command(*args, **kwargs)
        except (StoreError, client.PubSubUnavailable, dead_letters.ReplayRefused) as exc:
            raise CommandFailed(str(exc)) from None
        except BrokenPipeError:
            # The reader of our output left (`miniscan query | head`): stop quietly, as
            # Unix tools do, and keep Python from complaining while it flushes stdout.
            _silence_stdout()
            sys.exit(1)

    return run


def _silence_stdout() -> None:
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


class SinceParam(click.ParamType):
    """Unix seconds, an ISO 8601 time (UTC unless it says otherwise) or an age: 30m, 2h, 7d."""

    name = "TIME"

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_since(str(value), now=time.time())
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def ip_option(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """The key the decoder would have stored for this address (IPv4-mapped IPv6 as IPv4)."""
    if value is None:
        return None
    try:
        return canonical_ip(value.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an IPv4 or IPv6 address") from None


def upper_service(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    if not value.strip():
        raise click.BadParameter("must not be empty")
    return value.strip().upper()


db_option = click.option(
    "--db",
    "db_path",
    envvar=defaults.DB_PATH_ENV,
    default=defaults.DEFAULT_DB_PATH,
    show_default=True,
    type=click.Path(dir_okay=False),
    help=f"SQLite file or postgresql:// URL (env {defaults.DB_PATH_ENV}).",
)
format_option = click.option(
    "--format",
    "output_format",
    type=click.Choice(render.FORMATS),
    default=None,
    help="Output format [default: table on a terminal, json (one object per line) otherwise].",
)
limit_option = click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=1000,
    show_default=True,
    help="At most this many rows (0: all).",
)


@click.command("query", context_settings=CONTEXT_SETTINGS)
@db_option
@click.option("--ip", callback=ip_option, help="Only this IP address.")
@click.option("--port", type=click.IntRange(0, 65535), help="Only this port.")
@click.option("--service", callback=upper_service, help="Only this service (any case).")
@click.option(
    "--since",
    type=SinceParam(),
    help="Only scans at or after: 1714560000, 2024-05-01T12:00Z, or an age such as 2h.",
)
@format_option
@limit_option
@reports_failures
def query_command(
    db_path: str,
    ip: str | None,
    port: int | None,
    service: str | None,
    since: int | None,
    output_format: str | None,
    limit: int,
) -> None:
    """Show the newest scan of each (ip, port, service) matching the filters."""
    with reader.open_store_reader(db_path) as store:
        found = store.find_scans(
            ip=ip, port=port, service=service, since=since, limit=_fetch_limit(limit)
        )
        rows, truncated = report.at_most(found, limit)
        report.write_scans(rows, render.resolve_format(output_format, _stdout()), _stdout())
    if truncated():
        report.note_truncated(limit)


@click.command("stats", context_settings=CONTEXT_SETTINGS)
@db_option
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "json"]),
    default=None,
    help="Output format [default: table on a terminal, json otherwise].",
)
@reports_failures
def stats_command(db_path: str, output_format: str | None) -> None:
    """Summarise the database: rows, IPs, scan times, services, dead letters by reason."""
    with reader.open_store_reader(db_path) as store:
        stats = store.read_stats()
    report.write_stats(stats, render.resolve_format(output_format, _stdout()), _stdout())


@click.group("dead-letters", context_settings=CONTEXT_SETTINGS)
def dead_letters_group() -> None:
    """Messages that could not be stored: list them, show one, replay them to the topic."""


@dead_letters_group.command("list")
@db_option
@click.option("--reason", help="Only dead letters with this reason (e.g. invalid_json).")
@click.option("--counts", is_flag=True, help="Only the number of dead letters per reason.")
@format_option
@limit_option
@reports_failures
def list_command(
    db_path: str, reason: str | None, counts: bool, output_format: str | None, limit: int
) -> None:
    """List dead letters, oldest first (or, with --counts, how many per reason)."""
    fmt = render.resolve_format(output_format, _stdout())
    with reader.open_store_reader(db_path) as store:
        if counts:
            report.write_counts(store.count_by_reason(), fmt, _stdout())
            return
        found = store.list_dead_letters(reason=reason, limit=_fetch_limit(limit))
    rows, truncated = report.at_most(found, limit)
    report.write_letters(list(rows), fmt, _stdout())
    if truncated():
        report.note_truncated(limit)


@dead_letters_group.command("show")
@db_option
@click.argument("letter_id", metavar="ID", type=int)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json", "raw"]),
    default="text",
    show_default=True,
    help="raw: the payload bytes exactly as received, nothing else.",
)
@reports_failures
def show_command(db_path: str, letter_id: int, output_format: str) -> None:
    """Show one dead letter in full, payload included."""
    with reader.open_store_reader(db_path) as store:
        row = store.get_dead_letter(letter_id)
        where = store.where
    if row is None:
        raise CommandFailed(f"no dead letter with id {letter_id} in {where}")
    report.write_letter(row, output_format, _stdout())


@dead_letters_group.command("replay")
@db_option
@click.option("--reason", help="Replay the dead letters with this reason.")
@click.option("--id", "ids", type=int, multiple=True, help="Replay this dead letter (repeatable).")
@click.option("--all", "replay_all", is_flag=True, help="Replay every dead letter.")
@click.option(
    "--project",
    envvar="PUBSUB_PROJECT_ID",
    default=defaults.DEFAULT_PROJECT,
    show_default=True,
    help="Google Cloud project (env PUBSUB_PROJECT_ID).",
)
@click.option(
    "--topic", default=defaults.DEFAULT_TOPIC, show_default=True, help="Topic to republish to."
)
@click.option("--dry-run", is_flag=True, help="Only say what would be replayed.")
@click.option(
    "--connect-timeout",
    envvar="MINISCAN_CONNECT_TIMEOUT",
    type=click.FloatRange(min=0, min_open=True),
    default=client.ADMIN_TIMEOUT_S,
    show_default=True,
    help="Seconds to wait for Pub/Sub per call (env MINISCAN_CONNECT_TIMEOUT).",
)
@reports_failures
def replay_command(
    db_path: str,
    reason: str | None,
    ids: tuple[int, ...],
    replay_all: bool,
    project: str,
    topic: str,
    dry_run: bool,
    connect_timeout: float,
) -> None:
    """Republish dead letters to the topic (after a decoder fix) so they are processed again.

    Each row is deleted only once Pub/Sub confirmed its publish; failed ones are kept.
    """
    if replay_all == bool(reason or ids):
        raise click.UsageError("choose what to replay: --reason R and/or --id N, or --all")
    result = dead_letters.replay_dead_letters(
        db_path,
        project=project,
        topic=topic,
        reason=reason,
        ids=ids,
        dry_run=dry_run,
        timeout_s=connect_timeout,
    )
    report.write_replay(result, f"projects/{project}/topics/{topic}", dry_run)
    if result.failures:
        raise CommandFailed(
            f"{len(result.failures)} dead letters could not be republished and were kept"
        )


def _fetch_limit(limit: int) -> int | None:
    # One row more than shown tells whether rows were left out.
    return limit + 1 if limit else None


def _stdout() -> Any:
    # Looked up at each call, not bound at import: click's test runner swaps sys.stdout.
    return sys.stdout


ADMIN_COMMANDS: list[click.Command] = [query_command, stats_command, dead_letters_group]
