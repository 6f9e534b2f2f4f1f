"""Durations as an operator types them: `3600`, `90s`, `30m`, `1h`, `1h30m`, `2d`.

Owns: `parse_duration(text) -> seconds`, a pure function that raises ValueError with a
message fit for a one-line error.

Never: import click or read the environment; the command line wraps this in its option type.
"""

from __future__ import annotations

import math
import re

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_WHOLE = re.compile(rf"(?:{_PART.pattern})+")
_NOT_A_DURATION = "{text!r} is not a duration: give seconds, or e.g. 90s, 30m, 1h, 1h30m"


def parse_duration(text: str) -> float:
    """Seconds from a bare number of seconds or from number-and-unit parts (ms, s, m, h, d)."""
    cleaned = text.strip().lower()
    try:
        seconds = float(cleaned)
    except ValueError:
        if not _WHOLE.fullmatch(cleaned):
            raise ValueError(_NOT_A_DURATION.format(text=text)) from None
        seconds = sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _PART.findall(cleaned))
    # float() takes "nan" and "inf" (and "1e999" becomes inf): no range check refuses a NaN,
    # since every comparison with it is False, so a NaN skew would have let anything pass.
    if not math.isfinite(seconds):
        raise ValueError(_NOT_A_DURATION.format(text=text))
    return seconds
