"""A non-blocking sender for one pipe: the supervisor must never block on a slow child.

Owns: a queue and a thread that drains it into one `Connection`. A child that stops reading
(stalled, stopped with SIGSTOP) fills its pipe; the thread blocks, the supervisor does not,
and the stall detector kills the child. The queue is bounded in practice by the decoders'
in-flight limits, which cap how much can be on its way anywhere in the tree.

Never: decide what to send or reorder messages.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection

log = logging.getLogger(__name__)
_CLOSE = object()


@dataclass(frozen=True, slots=True)
class RawFrame:
    """Bytes that are already a pickled message: sent as they are. A wrapper, not a bytes
    subclass, so that a view into the frame as it arrived travels without a copy (each copy
    of a multi-MiB batch showed in the supervisor's peak memory, issue 12)."""

    data: bytes | memoryview


class Outbox:
    def __init__(self, link: Connection, name: str) -> None:
        self._link = link
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self.broken = False
        self._thread = threading.Thread(target=self._drain, name=f"outbox-{name}", daemon=True)
        self._thread.start()

    def put(self, message: object) -> None:
        if not self.broken:
            self._queue.put(message)

    def close(self) -> None:
        """Stop after what is queued; does not wait (the peer may be dead)."""
        self._queue.put(_CLOSE)

    def _drain(self) -> None:
        while True:
            message = self._queue.get()
            if message is _CLOSE:
                return
            if self.broken:
                continue
            try:
                if isinstance(message, RawFrame):
                    self._link.send_bytes(message.data)
                else:
                    self._link.send(message)
            except (OSError, ValueError):
                # The child died or the link was closed: drop what is left; the supervisor
                # learns of the death from the process sentinel and acts there.
                self.broken = True
            except Exception:
                # Anything else (a message that does not pickle) is a bug; a silently dead
                # thread would starve the child while it keeps heartbeating, so say it.
                log.exception("sending to %s failed: dropping its messages", self._thread.name)
                self.broken = True
