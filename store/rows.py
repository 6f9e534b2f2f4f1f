"""The shapes every store returns and takes, whichever the backend.

Owns: `ScanRow`, `StoreStats` and `StoredDeadLetter` (what readers return, so that the
commands print the same thing for a SQLite file and a PostgreSQL database), `WriteResult`
(what a writer's committed batch did) and `payload_digest`, the half of a dead letter's
identity that both schemas store beside its bytes.

Never: hold SQL, open connections, or know which backend filled a row.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, astuple, dataclass, fields


@dataclass(frozen=True, slots=True)
class ScanRow:
    """One row of `scans`, as stored."""

    ip: str
    port: int
    service: str
    last_scanned: int
    first_seen: int
    response: str
    data_version: int

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def as_tuple(self) -> tuple[object, ...]:
        return astuple(self)


SCAN_FIELDS = tuple(f.name for f in fields(ScanRow))
_SCAN_COLUMNS = ", ".join(SCAN_FIELDS)


@dataclass(frozen=True)
class StoreStats:
    """A summary of the database, read from one snapshot.

    Rows and services come from the kept counts (schema version 4) and are always exact;
    the other scan figures are exact only when `exact` names them (`stats --full` reads
    every row for them), else None, with the planner's estimate, where there is one, in
    `estimates` (see store.kept_counts).
    """

    path: str  # a file path, or a PostgreSQL URL without its password
    file_bytes: int  # see size_of
    schema_version: int
    scan_rows: int
    distinct_ips: int | None
    oldest_scan: int | None  # None: no rows, or not read (see exact)
    newest_scan: int | None
    services: list[tuple[str, int]]  # most frequent first
    data_versions: list[tuple[int, int]] | None
    dead_letters: int
    dead_letters_by_reason: list[tuple[str, int]]  # most frequent first
    exact: tuple[str, ...]  # which of store.kept_counts.SCAN_FIGURES are exact
    estimates: dict[str, int]  # figure -> the planner's estimate, for figures not read
    # What file_bytes measures: "file" (the SQLite file plus its WAL) or "tables"
    # (PostgreSQL's scans and dead_letters with their indexes and TOAST: a database has no
    # one file, and its other tables are not miniscan's).
    size_of: str = "file"

    def as_dict(self) -> dict[str, object]:
        summary = asdict(self)
        summary["services"] = dict(self.services)
        if self.data_versions is not None:
            summary["data_versions"] = {str(v): n for v, n in self.data_versions}
        summary["exact"] = list(self.exact)
        summary["dead_letters_by_reason"] = dict(self.dead_letters_by_reason)
        return summary


@dataclass(frozen=True, slots=True)
class StoredDeadLetter:
    """One row of `dead_letters`."""

    id: int
    payload: bytes
    reason: str
    detail: str
    message_id: str
    received_at: float


@dataclass(frozen=True)
class WriteResult:
    """What one committed batch did.

    scans: scan records in the batch (all of them are now reflected in the table);
    new_keys: keys that did not exist before this batch (the table grew by this much);
    dead_letters: dead letters newly stored (a message id already stored is not counted);
    changed_keys: rows inserted or changed (a stale record changes nothing).
    """

    scans: int
    new_keys: int
    dead_letters: int
    changed_keys: int = 0


def payload_digest(payload: bytes) -> bytes:
    """The digest stored beside a letter's bytes: half of its identity (schema version 2)."""
    return hashlib.sha256(payload).digest()
