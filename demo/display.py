"""The demo's status line on screen: redrawn in place on a terminal, plain lines elsewhere.

Owns: writing the line `demo.status` formats: on a terminal one line redrawn in place, never
wider than the terminal is now; elsewhere (a pipe, a file) a plain line every few seconds.

Never: scrape, compute figures (`demo.status` does) or read the clock (the caller passes it).
"""

from __future__ import annotations

import math
import shutil
from typing import TextIO

PLAIN_STATUS_EVERY_S = 5.0  # not a terminal: a line every few seconds, not a redraw


class StatusDisplay:
    """Redraws one line on a terminal, never wider than the terminal (a line that wraps
    cannot be redrawn in place: each redraw would add a line); elsewhere prints a plain line
    every few seconds."""

    def __init__(self, out: TextIO, quiet: bool) -> None:
        self._out = out
        self._quiet = quiet
        self._tty = out.isatty()
        self._drawn = 0  # columns of the line now on the terminal
        self._last_plain = -math.inf

    def width(self) -> int | None:
        """Columns a status line may take now, None when not a terminal. Asked at every
        redraw, so that a resized terminal is followed; one column is left free because
        writing the last one makes some terminals wrap at once."""
        if not self._tty:
            return None
        return max(shutil.get_terminal_size().columns - 1, 1)

    def show(self, line: str, now: float) -> None:
        if self._quiet:
            return
        width = self.width()
        if width is not None:
            line = line[:width]  # the caller compacts it to `width()`; this only guards
            self._out.write("\r" + line.ljust(min(self._drawn, width)))
            self._drawn = len(line)
        elif now - self._last_plain >= PLAIN_STATUS_EVERY_S:
            self._out.write(line + "\n")
            self._last_plain = now
        self._out.flush()

    def end(self) -> None:
        """Leave the redrawn line in place before anything else is printed."""
        if self._drawn:
            self._out.write("\n")
            self._out.flush()
            self._drawn = 0
