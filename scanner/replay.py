"""Read scans to replay from a JSON-lines file: one scan, as published, per line.

Owns: splitting the file into lines, deciding which lines are well-formed enough to publish,
and reporting every other line with its line number. A well-formed line is a JSON object
with all six scan keys; it is published byte for byte as it stands in the file (without the
line ending), so fixtures reach Pub/Sub exactly as written. Values are not checked here on
purpose: a fixture may carry a bad port or an unknown `data_version` to exercise miniscan's
dead-lettering, and deciding what is valid is the decoders' job (`workers/`). Blank lines
are skipped without a report: they separate, they are not scans.

Never: publish, print, or skip a non-blank line without reporting it through `on_malformed`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

REQUIRED_KEYS = ("ip", "port", "service", "timestamp", "data_version", "data")


@dataclass(frozen=True, slots=True)
class MalformedLine:
    """A line that was skipped, and why."""

    line_number: int  # 1-based, as editors show it
    reason: str

    def describe(self) -> str:
        return f"line {self.line_number}: {self.reason}"


def malformed_reason(line: bytes) -> str | None:
    """Why a stripped, non-blank line cannot be replayed, or None when it can."""
    try:
        scan = json.loads(line)
    except UnicodeDecodeError as exc:
        return f"not UTF-8 ({exc.reason} at byte {exc.start + 1})"
    except json.JSONDecodeError as exc:
        return f"not valid JSON ({exc.msg} at column {exc.colno})"
    if not isinstance(scan, dict):
        return f"a JSON {type(scan).__name__}, not an object"
    missing = [key for key in REQUIRED_KEYS if key not in scan]
    if missing:
        return "missing " + ", ".join(missing)
    return None


def replay_payloads(
    lines: Iterable[bytes], on_malformed: Callable[[MalformedLine], None]
) -> Iterator[bytes]:
    """The publishable lines of `lines`, stripped; every other non-blank one goes to
    `on_malformed` in order, before the next payload is yielded."""
    for line_number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line:
            continue
        reason = malformed_reason(line)
        if reason is None:
            yield line
        else:
            on_malformed(MalformedLine(line_number, reason))


def replay_file(path: str, on_malformed: Callable[[MalformedLine], None]) -> Iterator[bytes]:
    """`replay_payloads` over a file, read lazily; `-` reads standard input."""
    if path == "-":
        yield from replay_payloads(sys.stdin.buffer, on_malformed)
        return
    with open(path, "rb") as lines:
        yield from replay_payloads(lines, on_malformed)
