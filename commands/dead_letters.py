"""`miniscan dead-letters`: list, show and replay the messages that could not be stored.

Owns: declaring and parsing the group's options and wiring them to `store.reader` (listing
and showing, on a SQLite file or a PostgreSQL URL alike), `store.dead_letters` (the replay
procedure) and `commands.report` (what each prints). Listing and showing are read-only;
`replay` deletes only what Pub/Sub confirmed it republished.

Never: hold SQL or Pub/Sub calls, branch on the backend, or format output itself.
"""

from __future__ import annotations

import click

from commands import render, report
from commands.store_command import (
    CONTEXT_SETTINGS,
    CommandFailed,
    db_option,
    fetch_limit,
    format_option,
    limit_option,
    reports_failures,
    stdout,
)
from contracts.console import connect_timeout_option, project_option, topic_option
from contracts.exit_codes import EXIT_ERROR
from contracts.reasons import ALL_REASONS
from store import dead_letters, reader

# An unknown reason is refused with the list of known ones (click names every choice).
KNOWN_REASON = click.Choice(sorted(ALL_REASONS))


@click.group("dead-letters", context_settings=CONTEXT_SETTINGS)
def dead_letters_group() -> None:
    """Messages that could not be stored: list them, show one, replay them to the topic."""


@dead_letters_group.command("list")
@db_option
@click.option(
    "--reason",
    type=KNOWN_REASON,
    help="Only dead letters with this reason (e.g. invalid_json; a wrong one lists them all).",
)
@click.option("--counts", is_flag=True, help="Only the number of dead letters per reason.")
@format_option
@limit_option
@reports_failures
def list_command(
    db_path: str, reason: str | None, counts: bool, output_format: str | None, limit: int
) -> None:
    """List dead letters, oldest first (or, with --counts, how many per reason)."""
    fmt = render.resolve_format(output_format, stdout())
    with reader.open_store_reader(db_path) as store:
        if counts:
            report.write_counts(store.count_by_reason(), fmt, stdout())
            return
        found = store.list_dead_letters(reason=reason, limit=fetch_limit(limit))
    rows, truncated = report.at_most(found, limit)
    report.write_letters(list(rows), fmt, stdout())
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
    report.write_letter(row, output_format, stdout())


@dead_letters_group.command("replay")
@db_option
@click.option("--reason", type=KNOWN_REASON, help="Replay the dead letters with this reason.")
@click.option("--id", "ids", type=int, multiple=True, help="Replay this dead letter (repeatable).")
@click.option("--all", "replay_all", is_flag=True, help="Replay every dead letter.")
@project_option
@topic_option("Topic to republish to.")
@click.option("--dry-run", is_flag=True, help="Only say what would be replayed.")
@connect_timeout_option("Seconds to wait for Pub/Sub per call.")
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
            f"{len(result.failures)} dead letters could not be republished and were kept",
            EXIT_ERROR,
        )
