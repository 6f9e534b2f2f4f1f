"""The records that flow from the decoders into the store.

Owns: `ScanRecord` (one valid, normalized scan) and `DeadLetter` (one message that could not
be stored, kept with its reason). Both are small, frozen, picklable dataclasses, because they
cross process boundaries on their way to the single writer.

Never: validate, decode or touch SQLite; decoding lives in `workers.decode`, SQL in `store.db`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ScanRecord:
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

    def __reduce__(self) -> tuple:
        # Pickle by position: the dataclass default looks up fields() per record, which
        # tripled the cost of every batch crossing a pipe (bench/RESULTS.md).
        return (ScanRecord, (self.ip, self.port, self.service, self.timestamp,
                             self.response, self.data_version))  # fmt: skip


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
