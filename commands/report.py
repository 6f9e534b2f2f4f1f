"""What the store's commands print: scans, the summary, dead letters and a replay's outcome.

Owns: which columns, headings and notes each command shows, in the format asked for
(`commands.render` turns them into a table, JSON lines or CSV), and showing at most --limit
rows while saying when more were left. Results go to the stream given; notes such as
"no matching scans" go to stderr, so that a pipe only ever gets data.

Never: read the database, parse options or choose an exit code (`commands.query` and
`commands.dead_letters` do), or know which store the rows came from: both readers return
the same shapes.
"""

from __future__ import annotations

import base64
import itertools
from collections.abc import Callable, Iterable, Iterator
from typing import TextIO, TypeVar

import click

from commands import render
from store.dead_letters import ReplayResult
from store.rows import SCAN_FIELDS, ScanRow, StoredDeadLetter, StoreStats

RESPONSE_WIDTH = 60  # characters of a response shown in a table row
Row = TypeVar("Row")


def at_most(rows: Iterable[Row], limit: int) -> tuple[Iterator[Row], Callable[[], bool]]:
    """Yield at most `limit` rows (0: all); the callable says whether more were left.

    Fetch one row more than `limit` so that the callable can tell, once the rows are used up.
    """
    rows = iter(rows)
    if not limit:
        return rows, lambda: False
    more: list[Row] = []

    def first_rows() -> Iterator[Row]:
        yield from itertools.islice(rows, limit)
        more.extend(itertools.islice(rows, 1))

    return first_rows(), lambda: bool(more)


def note_truncated(limit: int) -> None:
    click.echo(f"miniscan: showing the first {limit} rows; --limit 0 shows all", err=True)


def write_scans(rows: Iterable[ScanRow], fmt: str, out: TextIO) -> None:
    if fmt == "json":
        render.write_json_lines((row.as_dict() for row in rows), out)
    elif fmt == "csv":
        render.write_csv(SCAN_FIELDS, (row.as_tuple() for row in rows), out)
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


# How the text names the scan figures that may be estimated or not read.
_FIGURE_NAMES = {"distinct_ips": "IPs", "oldest_scan": "oldest scan",
                 "newest_scan": "newest scan", "data_versions": "data versions"}  # fmt: skip


def write_stats(stats: StoreStats, fmt: str, out: TextIO) -> None:
    """The summary. A figure that is not exact shows as `~N` (the planner's estimate) or `?`
    (not read), and a last line says which and that --full reads them; JSON gives null for
    those, `exact` naming the exact figures and `estimates` the estimated ones."""
    if fmt == "json":
        render.write_json_lines([stats.as_dict()], out)
        return

    def figure(name: str, exact: str) -> str:
        if name in stats.exact:
            return exact
        estimate = stats.estimates.get(name)
        return "?" if estimate is None else f"~{estimate}"

    ips = figure("distinct_ips", str(stats.distinct_ips))
    oldest = figure("oldest_scan", render.iso_time(stats.oldest_scan))
    newest = figure("newest_scan", render.iso_time(stats.newest_scan))
    versions = _pairs((f"v{v}", n) for v, n in stats.data_versions or ()) or "-"
    # A SQLite line reads as it always did; PostgreSQL's size is its tables', not a file's.
    in_tables = " in tables" if stats.size_of == "tables" else ""
    lines = [
        (
            "database",
            f"{stats.path} ({render.human_bytes(stats.file_bytes)}{in_tables},"
            f" schema version {stats.schema_version})",
        ),
        ("scans", f"{stats.scan_rows} rows, {ips} IPs"),
        ("scanned", f"{oldest} .. {newest}"),
        ("services", _pairs(stats.services) or "-"),
        ("data versions", figure("data_versions", versions)),
        (
            "dead letters",
            f"{stats.dead_letters}"
            + (f" ({_pairs(stats.dead_letters_by_reason)})" if stats.dead_letters else ""),
        ),
    ]
    note = _not_exact_note(stats)
    if note:
        lines.append(("note", note))
    click.echo(render.format_fields(lines), file=out)


def _not_exact_note(stats: StoreStats) -> str:
    estimated = [label for name, label in _FIGURE_NAMES.items()
                 if name not in stats.exact and name in stats.estimates]  # fmt: skip
    unread = [label for name, label in _FIGURE_NAMES.items()
              if name not in stats.exact and name not in stats.estimates]  # fmt: skip
    if not estimated and not unread:
        return ""
    parts = [f"{', '.join(estimated)}: the query planner's estimate (~)"] if estimated else []
    parts += [f"{', '.join(unread)}: not read (?)"] if unread else []
    return "; ".join([*parts, "--full reads every row for exact figures"])


def write_counts(counts: list[tuple[str, int]], fmt: str, out: TextIO) -> None:
    """How many dead letters per reason, with a total in the table."""
    if fmt == "json":
        render.write_json_lines(({"reason": r, "count": n} for r, n in counts), out)
    elif fmt == "csv":
        render.write_csv(("reason", "count"), counts, out)
    else:
        total = [("total", sum(n for _, n in counts))]
        click.echo(render.format_table(("REASON", "COUNT"), [*counts, *total]), file=out)


def letter_dict(row: StoredDeadLetter) -> dict[str, object]:
    """A dead letter as plain JSON values, its payload in base64."""
    return {
        "id": row.id,
        "reason": row.reason,
        "detail": row.detail,
        "message_id": row.message_id,
        "received_at": row.received_at,
        "payload_bytes": len(row.payload),
        "payload_base64": base64.b64encode(row.payload).decode("ascii"),
    }


_EMPTY_LETTER = StoredDeadLetter(0, b"", "", "", "", 0.0)


def write_letters(rows: list[StoredDeadLetter], fmt: str, out: TextIO) -> None:
    if fmt == "json":
        render.write_json_lines((letter_dict(row) for row in rows), out)
    elif fmt == "csv":
        dicts = [letter_dict(row) for row in rows]
        headers = list(dicts[0]) if dicts else list(letter_dict(_EMPTY_LETTER))
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


def write_letter(row: StoredDeadLetter, fmt: str, out: TextIO) -> None:
    """One dead letter in full; `raw` is the payload bytes exactly as received, nothing else."""
    if fmt == "raw":
        out.flush()
        out.buffer.write(row.payload)
        out.buffer.flush()
    elif fmt == "json":
        render.write_json_lines([letter_dict(row)], out)
    else:
        fields = [
            ("id", row.id),
            ("reason", row.reason),
            ("detail", row.detail or "-"),
            ("message id", row.message_id or "-"),
            ("received", f"{render.iso_time(row.received_at)} ({row.received_at})"),
            ("payload", f"{len(row.payload)} bytes"),
        ]
        click.echo(render.format_fields(fields), file=out)
        click.echo(render.printable_payload(row.payload), file=out)


def write_replay(result: ReplayResult, topic_path: str, dry_run: bool) -> None:
    """What was (or would be) replayed; a line on stderr for each of the first kept rows."""
    if dry_run:
        listed = f": ids {_id_list(result.selected_ids)}" if result.selected else ""
        click.echo(f"would replay {result.selected} dead letters to {topic_path}{listed}")
        return
    click.echo(
        f"replayed {result.republished} of {result.selected} dead letters to {topic_path};"
        f" removed {result.deleted} from {result.where}"
    )
    for letter_id, error in result.failures[:20]:
        click.echo(f"miniscan: dead letter {letter_id} kept: {error}", err=True)


def _pairs(pairs: Iterable[tuple[object, int]]) -> str:
    return ", ".join(f"{name} {count}" for name, count in pairs)


def _payload_text(payload: bytes) -> str:
    return payload.decode("utf-8", errors="backslashreplace")


def _id_list(ids: list[int], shown: int = 20) -> str:
    text = ", ".join(str(i) for i in ids[:shown])
    return text + (f", ... ({len(ids) - shown} more)" if len(ids) > shown else "")
