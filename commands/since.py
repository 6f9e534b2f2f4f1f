"""The `--since` of `miniscan query`: a moment given as unix seconds, a time or an age.

Owns: `parse_since(text, now)`, a pure function from what a person types (1714560000,
2024-05-01T12:00Z, 2h) to unix seconds.

Never: read the clock (the caller passes `now`) or know about click.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

_AGE = re.compile(r"(\d+)([smhdw])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str, now: float) -> int:
    """Unix seconds, an ISO 8601 time (UTC unless it says otherwise) or an age before `now`
    such as 30m, 2h, 7d; ValueError with a one-line message for anything else."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    if age := _AGE.fullmatch(text):
        return int(now) - int(age[1]) * _UNIT_S[age[2]]
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r}: expected unix seconds, an ISO 8601 time (2024-05-01T12:00Z)"
            " or an age like 30m, 2h, 7d"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())
