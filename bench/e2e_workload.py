"""The latency mode's payloads: scans that carry their own send time in the response, so
that a reader of the database can tell how long each took.

The throughput and memory modes' backlog, and the table it must produce, are
`scanner.workload` (the same builder the end-to-end tests use); this module adds only what
the latency mode needs on top.

Never: touch Pub/Sub, SQLite or the clock (the send time is passed in).
"""

from __future__ import annotations

from scanner.workload import BASE_TIME, scan_payload


def latency_payload(index: int, sent_at: float) -> bytes:
    """A scan of a key no other latency message uses, whose response is its send time.

    One fresh key per message makes every commit a new row, so the reader finds each
    message by rowid instead of re-reading the table.
    """
    ip = f"172.{16 + (index >> 16 & 15)}.{index >> 8 & 255}.{index & 255}"
    return scan_payload(ip, 80, "HTTP", BASE_TIME + index, f"sent_at={sent_at:.6f}", 1 + index % 2)


def sent_at_of(response: str) -> float | None:
    """The send time a latency payload carried, or None for any other response."""
    if not response.startswith("sent_at="):
        return None
    return float(response.removeprefix("sent_at="))
