"""What /healthz and /readyz say before the tree runs, and the word a long start-up step gives.

Owns: `StartupPhase`, the start-up's current step ("checking the subscription", "opening the
database") and since when; the probes the HTTP server asks until `hand_over` gives it the
tree's own; and, while one step lasts (`slow_step`), a log line every 30 s. Opening the
database migrates it: schema 4 counts the rows once, 95 s for 100M rows on SQLite here
(issue 26). The HTTP server used to start after that, and Kubernetes' startup probe
(`deploy/kubernetes`, 90 s) killed the container mid-migration, which then started over.

Never: decide anything about the start-up (`supervisor.run` does), or block: the probes run
on the HTTP server's thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # supervisor.http imports prometheus_client, which must wait for the
    from supervisor.http import Probe  # metrics directory (supervisor.run's order)

log = logging.getLogger(__name__)

LOG_EVERY_S = 30.0


class StartupPhase:
    """Alive and not ready, naming its step, until the tree takes the probes over."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._step = "starting"
        self._since = time.monotonic()
        self._alive: Probe | None = None
        self._ready: Probe | None = None

    def step(self, what: str) -> None:
        with self._lock:
            self._step, self._since = what, time.monotonic()

    def hand_over(self, alive: Probe, ready: Probe) -> None:
        with self._lock:
            self._alive, self._ready = alive, ready

    def is_alive(self) -> tuple[bool, str]:
        with self._lock:
            alive, saying = self._alive, self._saying()
        return alive() if alive else (True, saying)

    def is_ready(self) -> tuple[bool, str]:
        with self._lock:
            ready, saying = self._ready, self._saying()
        return ready() if ready else (False, saying)

    def _saying(self) -> str:
        return f"starting: {self._step} ({time.monotonic() - self._since:.0f}s)"

    @contextmanager
    def slow_step(self, what: str, why: str, log_every_s: float = LOG_EVERY_S) -> Iterator[None]:
        """Name the step for the probes, and log "still <what> after N s: <why>" every
        `log_every_s` while it lasts (nothing when it is quicker)."""
        self.step(what)
        started, done = time.monotonic(), threading.Event()

        def tell() -> None:
            while not done.wait(log_every_s):
                log.info("still %s after %.0f s: %s", what, time.monotonic() - started, why)

        thread = threading.Thread(target=tell, name="startup-word", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()
