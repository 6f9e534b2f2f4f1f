"""What a decoder holds: every pulled message that is not settled yet, with its lease.

Owns: the bookkeeping behind a decoder's leases and budgets, as plain data with no threads,
clocks or Pub/Sub in it (the caller passes `now` and holds the lock): which ack ids are held,
the bytes each one weighs (so the in-flight budget is bounded in bytes, not only in count:
issue 12 found a few 2 MiB messages taking the tree to 1 GiB), the payload and message id of
each (so a record the database refuses can still become a dead letter with the bytes
received), when each lease runs out, which leases are being extended right now, and when a
message was first pulled (leases are not extended past `max_lease_s`, like the client
library's `max_lease_duration`).

Also the lease facts the decoder works by (MIN_ACK_DEADLINE_S, LEASE_MARGIN_S, MAX_LEASE_S).

Never: call Pub/Sub, sleep, read the clock, or decide what to send: `workers.decoder_process`
does, using the answers this gives.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The shortest ack deadline Pub/Sub allows; we assume no more than this of any subscription.
MIN_ACK_DEADLINE_S = 10.0
# Extend a lease when less than this is left on it; one extension round-trip fits easily.
LEASE_MARGIN_S = 4.0
# Leases are not extended past this (the client library's max_lease_duration default): a
# message held an hour is stuck somewhere, and a redelivery is the way out.
MAX_LEASE_S = 3600.0


@dataclass(slots=True)
class Held:
    payload: bytes  # the bytes received, kept until settled
    message_id: str
    pulled_at: float  # monotonic
    lease_end: float  # monotonic; Pub/Sub redelivers after this unless extended
    extending: bool = False  # an extension call is under way
    dead_lettered: bool = False  # already sent back as a store_rejected dead letter


@dataclass
class HeldMessages:
    lease_s: float
    max_lease_s: float
    messages: dict[str, Held] = field(default_factory=dict)
    bytes_held: int = 0

    def __len__(self) -> int:
        return len(self.messages)

    def add(self, ack_id: str, payload: bytes, message_id: str, now: float, lease_end: float):
        if ack_id in self.messages:  # the same delivery registered twice: keep one
            self.release([ack_id])
        self.messages[ack_id] = Held(payload, message_id, now, lease_end)
        self.bytes_held += len(payload)

    def release(self, ack_ids: list[str]) -> int:
        """Forget these (acked, nacked or expired); ids not held are ignored. Returns how
        many were held."""
        released = 0
        for ack_id in ack_ids:
            held = self.messages.pop(ack_id, None)
            if held is not None:
                self.bytes_held -= len(held.payload)
                released += 1
        return released

    def take_all(self) -> list[str]:
        ack_ids = list(self.messages)
        self.messages.clear()
        self.bytes_held = 0
        return ack_ids

    def get(self, ack_id: str) -> Held | None:
        return self.messages.get(ack_id)

    def room(self, max_messages: int, max_bytes: int) -> tuple[int, int]:
        """(messages, bytes) that may still be pulled; either may be zero or negative."""
        return max_messages - len(self.messages), max_bytes - self.bytes_held

    def due_for_extension(self, now: float, margin_s: float) -> list[str]:
        """Leases that end within `margin_s` and are not being extended; marks them as
        being extended. The caller reports back with `extended` or `extension_failed`."""
        due = [
            ack_id
            for ack_id, held in self.messages.items()
            if not held.extending
            and held.lease_end - now < margin_s
            and now - held.pulled_at < self.max_lease_s
        ]
        for ack_id in due:
            self.messages[ack_id].extending = True
        return due

    def extended(self, ack_ids: list[str], sent_at: float) -> None:
        """The extension sent at `sent_at` succeeded: the leases run `lease_s` from then."""
        for ack_id in ack_ids:
            held = self.messages.get(ack_id)
            if held is not None:
                held.lease_end = sent_at + self.lease_s
                held.extending = False

    def extension_failed(self, ack_ids: list[str]) -> None:
        """Unmark them, so that the next turn tries again while the lease lasts."""
        for ack_id in ack_ids:
            held = self.messages.get(ack_id)
            if held is not None:
                held.extending = False

    def expired(self, now: float) -> list[str]:
        """Messages whose lease ran out (extension failed, or held past `max_lease_s`):
        Pub/Sub redelivers them to someone, so holding them only blocks the budget."""
        return [ack_id for ack_id, held in self.messages.items() if held.lease_end <= now]
