"""What the kept counts of `scans` mean, whichever the backend (schema version 4, issue 26).

Owns: the rows a writer adds to `scan_counts` for a batch (`kept_count_rows`: the keys it
inserted and the newest scan time, per service), what a reader makes of that table
(`read_kept_counts`: the row total, the rows per service, the newest scan when it is known),
and which figures of `miniscan stats` are exact, estimated or not read (`scan_figures`),
so that both stores fill `store.rows.StoreStats` alike.

Never: hold SQL or touch a database: each backend's `scan_counts` module keeps and reads
the table; this module only does the arithmetic both share.

The newest scan per service is exact because the writer only ever raises `last_scanned`
(newest wins) and adds the newest time of each batch. Deleting by hand the row that held a
service's newest time leaves the true newest unknown: the delete triggers then set it to
NULL, and NULL stays (SQL's max of NULL is NULL) until `recount_scans`; readers say
"unknown" instead of showing a time no row has any more.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

# The figures of `StoreStats` that describe `scans`, in the order `stats` shows them.
SCAN_FIGURES = ("scan_rows", "distinct_ips", "oldest_scan", "newest_scan", "services",
                "data_versions")  # fmt: skip
SERVICE = 2  # the positions in a reduced scan row (store.merge.UpsertRow)
LAST_SCANNED = 3


def kept_count_rows(
    scan_rows: Iterable[Sequence[object]], new_by_service: Mapping[str, int]
) -> list[tuple[str, int, int]]:
    """(service, new keys, newest scan time) for each service of a batch, in service order
    (the lock order of PostgreSQL's writers). Every service of the batch is there, new keys
    or not: an update may raise its newest time."""
    newest: dict[str, int] = {}
    for row in scan_rows:
        service, scanned = row[SERVICE], row[LAST_SCANNED]
        if scanned > newest.get(service, -1):
            newest[service] = scanned
    return [(service, new_by_service.get(service, 0), newest[service])
            for service in sorted(newest)]  # fmt: skip


@dataclass(frozen=True)
class KeptCounts:
    """What `scan_counts` says: exact, and read without touching `scans`."""

    rows: int
    services: list[tuple[str, int]]  # every service that has rows, most rows first
    newest_scan: int | None  # None: no rows, or not known (newest_known)
    newest_known: bool


def read_kept_counts(by_service: Iterable[Sequence[object]]) -> KeptCounts:
    """From (service, rows, newest scan, slots whose newest is unknown) per service, as
    `SELECT service, sum(row_count), max(newest_scan), count(*) - count(newest_scan) FROM
    scan_counts GROUP BY service` gives them. Services whose rows were all deleted count
    for nothing, their unknown newest time included."""
    present = [(str(s), int(n), newest, int(unknown)) for s, n, newest, unknown in by_service
               if int(n) > 0]  # fmt: skip
    services = sorted(((s, n) for s, n, _, _ in present), key=lambda pair: (-pair[1], pair[0]))
    known = all(unknown == 0 for _, _, _, unknown in present)
    newest = max((int(t) for _, _, t, _ in present), default=None) if known else None
    return KeptCounts(sum(n for _, n in services), services, newest, known)


@dataclass(frozen=True)
class FullRead:
    """The figures only reading every row of `scans` gives (`stats --full`)."""

    distinct_ips: int
    oldest_scan: int | None
    newest_scan: int | None
    data_versions: list[tuple[int, int]]


def scan_figures(
    kept: KeptCounts,
    top_services: int,
    full: FullRead | None = None,
    ips_estimate: int | None = None,
) -> dict[str, object]:
    """The scan fields of `StoreStats`: rows and services from the kept counts, always; the
    rest from `full` when every row was read, else None, with the planner's estimate of
    distinct IPs (if any) under `estimates` and `exact` naming what is exact."""
    figures: dict[str, object] = {
        "scan_rows": kept.rows,
        "services": kept.services[:top_services],
        "distinct_ips": None,
        "oldest_scan": None,
        "newest_scan": kept.newest_scan,
        "data_versions": None,
    }
    exact = ["scan_rows", "services"]
    estimates: dict[str, int] = {}
    if full is not None:
        figures.update(distinct_ips=full.distinct_ips, oldest_scan=full.oldest_scan,
                       newest_scan=full.newest_scan, data_versions=full.data_versions)  # fmt: skip
        exact = list(SCAN_FIGURES)
    else:
        if kept.newest_known:
            exact.append("newest_scan")
        if ips_estimate is not None:
            estimates["distinct_ips"] = ips_estimate
    figures["exact"] = tuple(name for name in SCAN_FIGURES if name in exact)
    figures["estimates"] = estimates
    return figures
