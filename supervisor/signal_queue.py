"""SIGINT and SIGTERM in the supervisor: queued by a handler that does nothing else.

Owns: installing the supervisor's handlers for the stop signals and the wake-up fd that
makes a signal end the loop's `wait()` at once, restoring what was there before, and the
queue of signals received and not yet acted on.

Never: act on a signal inside the handler (no logging, locking or killing there: the loop
takes them one by one with `take()` and decides), or touch the signal mask (that is
`supervisor.spawning`).
"""

from __future__ import annotations

import signal
from types import FrameType

from contracts.signal_relay import STOP_SIGNALS


class SignalQueue:
    def __init__(self) -> None:
        self.pending: list[int] = []
        self._previous_handlers: dict[int, object] = {}
        self._previous_wakeup_fd = -1

    def install(self, wakeup_fd: int) -> None:
        self._previous_wakeup_fd = signal.set_wakeup_fd(wakeup_fd)
        self._previous_handlers = {sig: signal.signal(sig, self._on_signal) for sig in STOP_SIGNALS}

    def restore(self) -> None:
        for sig, handler in self._previous_handlers.items():
            signal.signal(sig, handler)
        signal.set_wakeup_fd(self._previous_wakeup_fd)

    def take(self) -> int | None:
        """The oldest signal not yet acted on, or None."""
        return self.pending.pop(0) if self.pending else None

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.pending.append(signum)  # only this: the loop acts on it
