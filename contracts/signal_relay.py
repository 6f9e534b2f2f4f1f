"""SIGINT and SIGTERM turned into a `threading.Event`, set from a thread, never from a handler.

Owns: the context manager a command's main thread wraps its work in so that a stop signal
sets an Event: the Python-level handler does nothing; the interpreter's C-level handler
writes the signal's number to a wake-up pipe (`signal.set_wakeup_fd`), and a relay thread
reads it and sets the Event. On leaving: the previous handlers and wake-up fd are restored
and the relay thread ends.

Why not `event.set()` in the handler: Python runs a handler in the main thread between two
bytecodes, which may be while that thread is inside `event.wait()` holding the Event's own
(non-reentrant) lock; `set()` then waits for that lock forever. A scanner stopped with
Ctrl-C hung exactly so in a test run.

Never: act on the signal beyond setting the Event (the command decides what stopping
means), or be entered from a thread other than the main one (Python only allows the main
thread to install handlers).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
RELAY_JOIN_S = 1.0


@contextmanager
def stop_signals_set(stop: threading.Event) -> Iterator[None]:
    """While inside, SIGINT and SIGTERM set `stop` (from a relay thread) and do nothing else."""
    wakeup_read, wakeup_write = os.pipe()
    os.set_blocking(wakeup_write, False)
    relay = threading.Thread(
        target=_relay, args=(wakeup_read, stop), name="stop-signal-relay", daemon=True
    )
    relay.start()
    previous_fd = signal.set_wakeup_fd(wakeup_write)
    previous = {sig: signal.signal(sig, _reach_the_pipe) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        signal.set_wakeup_fd(previous_fd)
        os.close(wakeup_write)  # the relay reads end-of-file and returns
        relay.join(RELAY_JOIN_S)
        if not relay.is_alive():
            os.close(wakeup_read)


def _reach_the_pipe(signum: int, frame: object) -> None:
    """Does nothing, on purpose: with a Python-level handler in place, the signal goes to
    the wake-up pipe instead of killing the process (SIGTERM) or raising KeyboardInterrupt
    (SIGINT); the relay thread acts on it."""


def _relay(wakeup_read: int, stop: threading.Event) -> None:
    while chunk := os.read(wakeup_read, 64):
        if any(signum in STOP_SIGNALS for signum in chunk):
            stop.set()
