"""The records that flow from the decoders into the store.

Owns: `ScanRecord` (one valid, normalized scan) and `DeadLetter` (one message that could not
be stored, kept with its reason). Both are small, immutable and picklable, because they cross
process boundaries on their way to the single writer. `ScanRecord` is a NamedTuple: one is
built per message and unpickled per message, and as a frozen dataclass that was a third of
the writer's CPU (issue 13, bench/RESULTS.md).

Never: validate, decode or touch SQLite; decoding lives in `workers.decode`, SQL in
`store/sqlite/` and `store/postgres/`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple


class ScanRecord(NamedTuple):
    """One normalized scan: the newest one per (ip, port, service) is kept."""

    ip: str  # canonical text form, str(ipaddress.ip_address(...))
    port: int  # 0..65535
    service: str  # stripped, upper-cased, non-empty
    timestamp: int  # the scan's own time, unix seconds
    response: str  # the decoded response text
    data_version: int  # the wire format version it arrived in

    @property
    def key(self) -> tuple[str, int, str]:
        return (self.ip, self.port, self.service)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message that could not be stored, kept with a machine-readable reason."""

    payload: bytes  # the raw message bytes, exactly as received
    reason: str  # short and machine-readable: `invalid_json`, `bad_port`, ...
    message_id: str  # the Pub/Sub message id ('' when unknown)
    received_at: float  # unix seconds when miniscan received it
    detail: str = ""  # a human-readable explanation, may be empty

    def __reduce__(self) -> tuple:
        return (DeadLetter, (self.payload, self.reason, self.message_id, self.received_at,
                             self.detail))  # fmt: skip
