"""Proof of life while the writer opens its database, for the supervisor's start-up deadline.

Owns: `still_opening`, a context manager whose thread sends `StillOpening` on the child's
link about once a second while the body runs, and logs a line every 30 s. Opening is quick,
except when a schema migration counts every row once (schema 4 counts rows per service:
about 5 minutes for 100M rows on SQLite here, issue 26); without this the supervisor killed
such a writer as "not ready after 60s" and the retried migration started over, forever.

Never: send once the context has exited (its thread is joined first, so the caller's own
sends on the link never interleave with it), touch the database, or name the database in a
log line (a URL may hold a password).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection

from contracts.messages import StillOpening

log = logging.getLogger(__name__)

INTERVAL_S = 1.0
LOG_EVERY_S = 30.0


@contextmanager
def still_opening(
    link: Connection, role: str, interval_s: float | None = None, log_every_s: float = LOG_EVERY_S
) -> Iterator[None]:
    """Say `StillOpening` every `interval_s` (INTERVAL_S) while the body runs (nothing if it
    is quicker)."""
    interval_s = interval_s or INTERVAL_S
    started = time.monotonic()
    done = threading.Event()

    def tell() -> None:
        next_log = started + log_every_s
        while not done.wait(interval_s):
            now = time.monotonic()
            try:
                link.send(StillOpening(role=role, seconds=now - started))
            except OSError:  # the supervisor is gone; the exit code will tell the story
                return
            if now >= next_log:
                next_log += log_every_s
                log.info("still opening the database after %.0f s: a schema migration counts"
                         " every row once (minutes at 100M rows)", now - started)  # fmt: skip

    thread = threading.Thread(target=tell, name="still-opening", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
