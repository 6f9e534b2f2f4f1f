"""The store's `miniscan` subcommands: `query`, `stats` and the `dead-letters` group.

Owns: declaring and parsing options, and wiring them to `store.query`, `store.dead_letters`
and `store.render`. Every command reads the database through a read-only connection
(`dead-letters replay` also deletes what it republished), so they all work while the
supervisor writes, and none ever creates or migrates a database.

Exit codes: 0 done; 1 expected failure, reported as one `miniscan: ...` line on stderr
(no database at the path, a refused file, Pub/Sub unreachable, a publish failed);
2 bad usage (click's own).

Never: hold SQL or Pub/Sub calls, or leave a traceback for an expected failure.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import ipaddress
import itertools
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import click

from scanner import pubsub
from store import dead_letters, query, render
from store.db import DB_PATH_ENV, DEFAULT_DB_PATH
from store.errors import StoreError

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}
RESPONSE_WIDTH = 60  # characters of a response shown in a table row


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
        except (StoreError, pubsub.PubSubUnavailable, dead_letters.ReplayRefused) as exc:
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
    _AGE = re.compile(r"(\d+)([smhdw])")
    _UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip()
        if text.isdigit():
            return int(text)
        if age := self._AGE.fullmatch(text):
            return int(time.time()) - int(age[1]) * self._UNIT_S[age[2]]
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            self.fail(
                f"{text!r}: expected unix seconds, an ISO 8601 time (2024-05-01T12:00Z)"
                " or an age like 30m, 2h, 7d",
                param,
                ctx,
            )
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return int(moment.timestamp())


def canonical_ip(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return str(ipaddress.ip_address(value.strip()))
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
    envvar=DB_PATH_ENV,
    default=DEFAULT_DB_PATH,
    show_default=True,
    type=click.Path(dir_okay=False),
    help=f"Database file (env {DB_PATH_ENV}).",
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
@click.option("--ip", callback=canonical_ip, help="Only this IP address.")
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
    conn = query.open_reader(db_path)
    try:
        found = query.find_scans(
            conn, ip=ip, port=port, service=service, since=since, limit=limit + 1 if limit else None
        )
        rows, truncated = _at_most(found, limit)
        _print_scans(rows, render.resolve_format(output_format, _stdout()))
    finally:
        conn.close()
    if truncated():
        click.echo(f"miniscan: showing the first {limit} rows; --limit 0 shows all", err=True)


def _print_scans(rows: Iterable[query.ScanRow], fmt: str) -> None:
    out = _stdout()
    if fmt == "json":
        render.write_json_lines((row.as_dict() for row in rows), out)
    elif fmt == "csv":
        render.write_csv(query.SCAN_FIELDS, (row.as_tuple() for row in rows), out)
    else:
        table = [
            (
                r.ip,
                r.port,
                r.service,
                render.iso_time(r.last_scanned),
                render.iso_time(r.first_seen),
                r.data_version,
                render.shorten(r.response, RESPONSE_WIDTH),
            )
            for r in rows
        ]
        if not table:
            click.echo("no matching scans", err=True)
            return
        headers = ("IP", "PORT", "SERVICE", "LAST SCANNED", "FIRST SEEN", "V", "RESPONSE")
        click.echo(render.format_table(headers, table), file=out)


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
    conn = query.open_reader(db_path)
    try:
        stats = query.read_stats(conn)
    finally:
        conn.close()
    if render.resolve_format(output_format, _stdout()) == "json":
        render.write_json_lines([stats.as_dict()], _stdout())
        return
    lines = [
        (
            "database",
            f"{stats.path} ({render.human_bytes(stats.file_bytes)},"
            f" schema version {stats.schema_version})",
        ),
        ("scans", f"{stats.scan_rows} rows, {stats.distinct_ips} IPs"),
        (
            "scanned",
            f"{render.iso_time(stats.oldest_scan)} .. {render.iso_time(stats.newest_scan)}",
        ),
        ("services", _pairs(stats.services) or "-"),
        ("data versions", _pairs((f"v{v}", n) for v, n in stats.data_versions) or "-"),
        (
            "dead letters",
            f"{stats.dead_letters}"
            + (f" ({_pairs(stats.dead_letters_by_reason)})" if stats.dead_letters else ""),
        ),
    ]
    click.echo(render.format_table(("", ""), lines).split("\n", 1)[1], file=_stdout())


def _pairs(pairs: Iterable[tuple[object, int]]) -> str:
    return ", ".join(f"{name} {count}" for name, count in pairs)


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
    conn = query.open_reader(db_path)
    try:
        if counts:
            _print_counts(dead_letters.count_by_reason(conn), output_format)
            return
        fetch = limit + 1 if limit else None  # one more than shown tells if rows were left
        rows = dead_letters.list_dead_letters(conn, reason=reason, limit=fetch)
    finally:
        conn.close()
    shown = rows[:limit] if limit else rows
    _print_letters(shown, render.resolve_format(output_format, _stdout()))
    if limit and len(rows) > limit:
        click.echo(f"miniscan: showing the first {limit} rows; --limit 0 shows all", err=True)


def _print_counts(counts: list[tuple[str, int]], output_format: str | None) -> None:
    out = _stdout()
    fmt = render.resolve_format(output_format, out)
    if fmt == "json":
        render.write_json_lines(({"reason": r, "count": n} for r, n in counts), out)
    elif fmt == "csv":
        render.write_csv(("reason", "count"), counts, out)
    else:
        total = [("total", sum(n for _, n in counts))]
        click.echo(render.format_table(("REASON", "COUNT"), [*counts, *total]), file=out)


def _letter_dict(row: dead_letters.StoredDeadLetter) -> dict[str, object]:
    return {
        "id": row.id,
        "reason": row.reason,
        "detail": row.detail,
        "message_id": row.message_id,
        "received_at": row.received_at,
        "payload_bytes": len(row.payload),
        "payload_base64": base64.b64encode(row.payload).decode("ascii"),
    }


def _print_letters(rows: list[dead_letters.StoredDeadLetter], fmt: str) -> None:
    out = _stdout()
    if fmt == "json":
        render.write_json_lines((_letter_dict(row) for row in rows), out)
    elif fmt == "csv":
        dicts = [_letter_dict(row) for row in rows]
        headers = list(dicts[0]) if dicts else list(_letter_dict(_EMPTY_LETTER))
        render.write_csv(headers, (list(d.values()) for d in dicts), out)
    elif not rows:
        click.echo("no dead letters", err=True)
    else:
        table = [
            (
                r.id,
                render.iso_time(r.received_at),
                r.reason,
                r.message_id or "-",
                len(r.payload),
                render.shorten(r.detail, 40) or "-",
                render.shorten(_payload_text(r.payload), 50),
            )
            for r in rows
        ]
        headers = ("ID", "RECEIVED", "REASON", "MESSAGE ID", "BYTES", "DETAIL", "PAYLOAD")
        click.echo(render.format_table(headers, table), file=out)


_EMPTY_LETTER = dead_letters.StoredDeadLetter(0, b"", "", "", "", 0.0)


def _payload_text(payload: bytes) -> str:
    return payload.decode("utf-8", errors="backslashreplace")


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
    conn = query.open_reader(db_path)
    try:
        row = dead_letters.get_dead_letter(conn, letter_id)
    finally:
        conn.close()
    if row is None:
        raise CommandFailed(f"no dead letter with id {letter_id} in {db_path}")
    if output_format == "raw":
        sys.stdout.flush()
        sys.stdout.buffer.write(row.payload)
        sys.stdout.buffer.flush()
    elif output_format == "json":
        render.write_json_lines([_letter_dict(row)], _stdout())
    else:
        fields = [
            ("id", row.id),
            ("reason", row.reason),
            ("detail", row.detail or "-"),
            ("message id", row.message_id or "-"),
            ("received", f"{render.iso_time(row.received_at)} ({row.received_at})"),
            ("payload", f"{len(row.payload)} bytes"),
        ]
        click.echo(render.format_table(("", ""), fields).split("\n", 1)[1], file=_stdout())
        click.echo(render.printable_payload(row.payload), file=_stdout())


@dead_letters_group.command("replay")
@db_option
@click.option("--reason", help="Replay the dead letters with this reason.")
@click.option("--id", "ids", type=int, multiple=True, help="Replay this dead letter (repeatable).")
@click.option("--all", "replay_all", is_flag=True, help="Replay every dead letter.")
@click.option(
    "--project",
    envvar="PUBSUB_PROJECT_ID",
    default=pubsub.DEFAULT_PROJECT,
    show_default=True,
    help="Google Cloud project (env PUBSUB_PROJECT_ID).",
)
@click.option(
    "--topic", default=pubsub.DEFAULT_TOPIC, show_default=True, help="Topic to republish to."
)
@click.option("--dry-run", is_flag=True, help="Only say what would be replayed.")
@click.option(
    "--connect-timeout",
    envvar="MINISCAN_CONNECT_TIMEOUT",
    type=click.FloatRange(min=0, min_open=True),
    default=pubsub.ADMIN_TIMEOUT_S,
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
    topic_path = f"projects/{project}/topics/{topic}"
    if dry_run:
        listed = f": ids {_id_list(result.selected_ids)}" if result.selected else ""
        click.echo(f"would replay {result.selected} dead letters to {topic_path}{listed}")
        return
    click.echo(
        f"replayed {result.republished} of {result.selected} dead letters to {topic_path};"
        f" removed {result.deleted} from {db_path}"
    )
    for letter_id, error in result.failures[:20]:
        click.echo(f"miniscan: dead letter {letter_id} kept: {error}", err=True)
    if result.failures:
        raise CommandFailed(
            f"{len(result.failures)} dead letters could not be republished and were kept"
        )


def _id_list(ids: list[int], shown: int = 20) -> str:
    text = ", ".join(str(i) for i in ids[:shown])
    return text + (f", ... ({len(ids) - shown} more)" if len(ids) > shown else "")


def _at_most(
    rows: Iterator[query.ScanRow], limit: int
) -> tuple[Iterator[query.ScanRow], Callable[[], bool]]:
    """Yield at most `limit` rows (0: all); the callable says whether more were left."""
    if not limit:
        return rows, lambda: False
    more = []

    def first_rows() -> Iterator[query.ScanRow]:
        yield from itertools.islice(rows, limit)
        more.extend(itertools.islice(rows, 1))

    return first_rows(), lambda: bool(more)


def _stdout() -> Any:
    # Looked up at each call, not bound at import: click's test runner swaps sys.stdout.
    return sys.stdout


ADMIN_COMMANDS: list[click.Command] = [query_command, stats_command, dead_letters_group]
