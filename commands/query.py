"""`miniscan query` and `miniscan stats`: read the scans of a store.

Owns: declaring and parsing their options (an IP in the decoder's canonical form, a service
in upper case, `--since` as a time or an age) and wiring them to `store.reader` (one reader
interface for a SQLite file and a PostgreSQL URL alike) and `commands.report` (what each
prints). Both read through a read-only connection, so they work while supervisors write,
and never create or migrate a store.

Never: hold SQL, branch on the backend, or format output itself.
"""

from __future__ import annotations

import time
from typing import Any

import click

from commands import render, report
from commands.since import parse_since
from commands.store_command import (
    CONTEXT_SETTINGS,
    db_option,
    fetch_limit,
    format_option,
    limit_option,
    reports_failures,
    stdout,
)
from contracts.canonical import canonical_ip
from store import reader


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
            ip=ip, port=port, service=service, since=since, limit=fetch_limit(limit)
        )
        rows, truncated = report.at_most(found, limit)
        report.write_scans(rows, render.resolve_format(output_format, stdout()), stdout())
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
@click.option(
    "--full",
    is_flag=True,
    help="Also read every row, for exact distinct IPs, oldest scan and data versions (minutes"
    " on 100M rows). Without it, stats answers at once from the counts the writer keeps:"
    " rows, services and the newest scan exact; IPs the query planner's estimate, where the"
    " database has one; the others not read.",
)
@reports_failures
def stats_command(db_path: str, output_format: str | None, full: bool) -> None:
    """Summarise the database: rows, IPs, scan times, services, dead letters by reason."""
    with reader.open_store_reader(db_path) as store:
        stats = store.read_stats(full=full)
    report.write_stats(stats, render.resolve_format(output_format, stdout()), stdout())
