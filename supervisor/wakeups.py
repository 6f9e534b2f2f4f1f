"""What wakes the supervisor's loop: a child's message, a child's death, or a signal.

Owns: the wake-up socket (the inboxes and the signal wake-up fd write to it), the queue the
inboxes fill with (incarnation key, frame) pairs, and the selector the loop waits on: the
wake-up socket and every child's process sentinel, kept from turn to turn and rebuilt only
when the children change. Building it anew on every turn, as
multiprocessing.connection.wait does, was a fixed cost on each relayed batch and ack
(issue 13, RESULTS "third pass").

Never: read a pipe (`supervisor.inbox` does), unpickle, or decide what a message means.
"""

from __future__ import annotations

import queue
import selectors
import socket
from collections.abc import Iterable, Iterator

from supervisor.running_child import RunningChild


class Wakeups:
    def __init__(self) -> None:
        # `waker`: the end the inboxes and the signal wake-up fd write to; the loop reads the other.
        self._woken, self.waker = socket.socketpair()
        self.waker.setblocking(False)
        self.deliveries: queue.SimpleQueue[tuple[int, bytes | None]] = queue.SimpleQueue()
        self._selector: selectors.BaseSelector | None = None
        self._selector_keys: tuple[int, ...] = ()

    def wait(self, children: Iterable[RunningChild], timeout: float) -> list[RunningChild]:
        """Wait up to `timeout` for a message or a death; the children whose process ended
        (the wake-up socket is drained on the way: its messages are in `deliveries`)."""
        events = self._selector_for(list(children)).select(timeout=timeout)
        ready = [key.data for key, _ in events]
        if None in ready:
            self._woken.recv(65536)
        return [child for child in ready if child is not None]

    def take_deliveries(self) -> Iterator[tuple[int, bytes | None]]:
        """Every (incarnation key, frame) the inboxes have read so far, oldest first; a None
        frame marks the end of that incarnation's pipe."""
        while True:
            try:
                yield self.deliveries.get_nowait()
            except queue.Empty:
                return

    def _selector_for(self, children: list[RunningChild]) -> selectors.BaseSelector:
        """Keyed by incarnation, not by file descriptor: a new child's sentinel may reuse the
        number of a reaped one's."""
        keys = tuple(child.key for child in children)
        if self._selector is None or keys != self._selector_keys:
            if self._selector is not None:
                self._selector.close()
            self._selector = selectors.DefaultSelector()
            self._selector.register(self._woken, selectors.EVENT_READ, None)
            for child in children:
                self._selector.register(child.process.sentinel, selectors.EVENT_READ, child)
            self._selector_keys = keys
        return self._selector
