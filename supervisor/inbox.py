"""A reader thread for one pipe: the supervisor must never block on a half-sent message.

Owns: reading whole messages from one child's `Connection` as raw bytes and handing them to
the supervisor's loop through a shared queue, waking the loop through its wake-up socket.
`Connection.recv` blocks until a whole message arrived; a child frozen half-way through
sending a large batch (SIGSTOP, a paused container) would otherwise freeze the supervisor,
and with it stall detection and signal handling.

Never: unpickle (the loop decides what to decode and what to forward untouched) or drop a
message: the end of the stream is reported as `None` after everything before it.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
from multiprocessing.connection import Connection


class Inbox:
    def __init__(
        self,
        link: Connection,
        key: int,
        deliveries: queue.SimpleQueue[tuple[int, bytes | None]],
        wake: socket.socket,
    ) -> None:
        self._link = link
        self._key = key
        self._deliveries = deliveries
        self._wake = wake
        self._thread = threading.Thread(target=self._read, name=f"inbox-{key}", daemon=True)
        self._thread.start()

    def join(self, timeout: float) -> bool:
        """Wait until the child's end is closed and everything it sent was delivered."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _read(self) -> None:
        while True:
            try:
                data: bytes | None = self._link.recv_bytes()
            except (EOFError, OSError):
                data = None
            self._deliveries.put((self._key, data))
            # If the wake-up socket is full, the loop is awake anyway.
            with contextlib.suppress(OSError):
                self._wake.send(b"\0")
            if data is None:
                return
