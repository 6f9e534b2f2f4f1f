"""Output of the store's commands: a readable table on a terminal, JSON lines or CSV for scripts.

Owns: choosing the default format, and turning rows (sequences of plain values) into text.

Never: read the database or decide what the rows are.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TextIO

FORMATS = ("table", "json", "csv")
_ESCAPES = str.maketrans({"\r": "\\r", "\n": "\\n", "\t": "\\t"})


def resolve_format(requested: str | None, stream: TextIO) -> str:
    """An explicit --format wins; otherwise a table for a person, JSON lines for a pipe."""
    if requested:
        return requested
    isatty = getattr(stream, "isatty", None)
    return "table" if isatty is not None and isatty() else "json"


def format_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """Left-aligned columns separated by two spaces, with a header line."""
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    return "\n".join(lines)


def format_fields(pairs: Iterable[Sequence[object]]) -> str:
    """Label and value columns, as `format_table` aligns them, without a header line."""
    return format_table(("", ""), pairs).split("\n", 1)[1]


def write_json_lines(records: Iterable[dict[str, object]], out: TextIO) -> int:
    """One compact JSON object per line; returns how many were written."""
    written = 0
    for record in records:
        out.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
        written += 1
    return written


def write_csv(headers: Sequence[str], rows: Iterable[Sequence[object]], out: TextIO) -> int:
    """RFC 4180 CSV with a header row; returns the number of data rows."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(headers)
    written = 0
    for row in rows:
        writer.writerow(row)
        written += 1
    return written


def shorten(text: str, width: int) -> str:
    """One visible line of at most `width` characters: control characters escaped."""
    flat = text.translate(_ESCAPES)
    flat = "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in flat)
    return flat if len(flat) <= width else flat[: width - 3] + "..."


def printable_payload(payload: bytes, width: int = 16) -> str:
    """UTF-8 text as is (other control characters escaped), anything else as a hex dump."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return "\n".join(
            f"{offset:08x}  {payload[offset : offset + width].hex(' ')}"
            for offset in range(0, len(payload), width)
        )
    return "".join(ch if ch.isprintable() or ch in "\n\t" else f"\\x{ord(ch):02x}" for ch in text)


def iso_time(timestamp: float | None) -> str:
    """Unix seconds as ISO 8601 UTC (seconds precision), '-' when unknown."""
    if timestamp is None:
        return "-"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def _cell(value: object) -> str:
    return "-" if value is None else str(value)
