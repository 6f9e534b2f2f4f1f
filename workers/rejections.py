"""Why a scan message was refused: the `Rejection` exception and the table of its reasons.

Owns: `Rejection`, the only exception `workers.decode.decode_scan` raises, and `REASONS`, the
reasons it can carry (their descriptions live in the one table, `contracts.reasons`).
The worker stores the raw payload with that reason in `dead_letters` and acknowledges the
message, so a reason must stay short, stable and low-cardinality (it is a metric label too).

Never: decode anything, do I/O, or build a reason outside `contracts.reasons` (tests assert
that every rejection's reason is in `REASONS`).
"""

from __future__ import annotations

from contracts.reasons import DECODE_REASONS

# The reasons decode_scan can give: every reason but the two the pipeline adds itself.
REASONS: frozenset[str] = DECODE_REASONS


class Rejection(Exception):
    """A scan message that cannot become a `ScanRecord`, with why.

    `reason` is one of `REASONS`; `detail` is a human-readable one-liner that never echoes
    more than a short preview of the input. Picklable, so it may cross a process boundary.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}"


def preview(value: object) -> str:
    """Describe an offending JSON value in a few dozen characters, on one line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    kind = "string" if isinstance(value, str) else "number"
    text = repr(value)  # repr escapes newlines and control characters: stays one line
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{kind} {text}"
