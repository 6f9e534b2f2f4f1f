"""The filters of `find_scans`, as one SELECT that either backend runs.

Owns: `find_scans_sql`, the meaning of `miniscan query`'s filters (each given one must match
exactly, `since` is inclusive, rows come in key order, `limit` caps them), written once for
both readers; only the placeholder style differs (`?` for SQLite, `%s` for psycopg).

Never: run a query, open a connection, or hold SQL that differs between the backends (each
backend's reader holds its own).
"""

from __future__ import annotations


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
