"""The filters of the readers' searches, as SELECTs that either backend runs.

Owns: `find_scans_sql` and `dead_letters_sql`, the meaning of `miniscan query`'s and
`miniscan dead-letters`' filters (each given one must match exactly, `since` and `after_id`
bound the rows, rows come in key or id order, `limit` caps them), written once for both
readers. Only the placeholder style (`?` for SQLite, `%s` for psycopg) and the way a list
of ids is matched differ, and the caller passes them.

Never: run a query, open a connection, or hold SQL that differs between the backends (each
backend's reader holds its own).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable


def find_scans_sql(
    columns: str,
    placeholder: str,
    ip: str | None,
    port: int | None,
    service: str | None,
    since: int | None,
    limit: int | None,
) -> tuple[str, list[object]]:
    """The SELECT behind `find_scans` and its parameters, for either store's placeholder
    style (`?` for SQLite, `%s` for psycopg): every given filter, key order."""
    clauses, params = [], []
    for column, value in (("ip", ip), ("port", port), ("service", service)):
        if value is not None:
            clauses.append(f"{column} = {placeholder}")
            params.append(value)
    if since is not None:
        clauses.append(f"last_scanned >= {placeholder}")
        params.append(since)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    sql = f"SELECT {columns} FROM scans{where} ORDER BY ip, port, service"
    if limit is not None:
        sql += f" LIMIT {placeholder}"
        params.append(limit)
    return sql, params


# How a backend matches a list of ids: the sorted ids in, a clause and its parameters out.
IdsMatch = Callable[[list[int]], tuple[str, list[object]]]


def dead_letters_sql(
    columns: str,
    placeholder: str,
    ids_match: IdsMatch,
    reason: str | None,
    ids: Iterable[int],
    after_id: int,
    limit: int | None,
) -> tuple[str, list[object]]:
    """The SELECT behind `list_dead_letters` and its parameters: id order (oldest first),
    ids above `after_id`, filtered by reason and/or ids."""
    clauses, params = [f"id > {placeholder}"], [after_id]
    if reason is not None:
        clauses.append(f"reason = {placeholder}")
        params.append(reason)
    wanted = sorted(set(ids))
    if wanted:
        clause, values = ids_match(wanted)
        clauses.append(clause)
        params.extend(values)
    sql = f"SELECT {columns} FROM dead_letters WHERE {' AND '.join(clauses)} ORDER BY id"
    if limit is not None:
        sql += f" LIMIT {placeholder}"
        params.append(limit)
    return sql, params
