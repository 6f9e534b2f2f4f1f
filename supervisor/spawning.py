"""Starting a child process without letting a stop signal slip in while it boots.

Owns: `stop_signals_blocked`, which blocks SIGINT and SIGTERM in the supervisor for a block
(dramatiq's pattern), and `start_with_stop_signals_blocked`, which starts a process inside
it. A child inherits the blocked mask through fork and exec, so a Ctrl-C sent to the whole
process group while the child's interpreter is still importing is held pending until
`supervisor.children` has installed the child's own handlers and unblocked them; without
this the child died of KeyboardInterrupt and a clean stop ended in exit 1. The supervisor's
own copy of a signal that arrived meanwhile is delivered as soon as the mask is restored.

Never: install handlers, or leave the mask changed after the block (even when it raises).
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator
from multiprocessing import resource_tracker
from multiprocessing.process import BaseProcess

from contracts.signal_relay import STOP_SIGNALS


@contextlib.contextmanager
def stop_signals_blocked() -> Iterator[None]:
    """SIGINT and SIGTERM blocked for the block: what it starts inherits the mask."""
    # Start the resource tracker first, with our mask as it is: when `Process.start()`
    # launches it, CPython unblocks SIGINT and SIGTERM afterwards, and the child we start
    # would boot unprotected.
    resource_tracker.ensure_running()
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def start_with_stop_signals_blocked(
    process: BaseProcess, before_start: Callable[[], None] | None = None
) -> None:
    """Start `process`; `before_start`, if given, runs first inside the same window (what it
    launches, such as the decoders' fork server, inherits the blocked mask too)."""
    with stop_signals_blocked():
        if before_start is not None:
            before_start()
        process.start()
