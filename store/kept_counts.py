"""What the kept counts of `scans` mean, whichever the backend (schema version 4, issue 26).

Owns: the rows a writer adds to `scan_counts` for a batch (`kept_count_rows`: the keys it
inserted and the newest scan time, per service), so that both stores keep it alike.

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
