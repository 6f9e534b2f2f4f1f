"""Looking at the tests' PostgreSQL server directly, beside the store under test.

Owns: a few calls the PostgreSQL store's tests make on a database of the session's
throw-away cluster (`testkit.postgres_cluster`): run one statement, set a database default,
list what the default schema holds, and ask whether the store's writer waits on a lock.

Never: start or stop a server, or go through the store (what the tests check it against).
"""

from __future__ import annotations

import psycopg
from psycopg import sql as pg_sql


def sql(url: str, statement: str, params: tuple = ()) -> list[tuple]:
    """Run one statement on its own autocommit connection; the rows it returned."""
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(statement, params)
        return cur.fetchall() if cur.description else []


def set_database_default(url: str, setting: str, value: str) -> None:
    """ALTER DATABASE ... SET: for the sessions opened from now on (the store's)."""
    with psycopg.connect(url, autocommit=True) as conn:
        statement = pg_sql.SQL("ALTER DATABASE {} SET {} = {}").format(
            pg_sql.Identifier(conn.info.dbname),
            pg_sql.Identifier(setting),
            pg_sql.Literal(value),
        )
        conn.execute(statement)


def catalog(url: str) -> list[tuple]:
    """Every relation of the default schema: name, kind, comment, columns; and the rows of
    its tables, so that 'unchanged' means unchanged."""
    relations = sql(
        url,
        "SELECT c.relname, c.relkind, obj_description(c.oid, 'pg_class'),"
        " (SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', '"
        "  ORDER BY attnum) FROM pg_attribute WHERE attrelid = c.oid AND attnum > 0)"
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = current_schema() ORDER BY c.relname",
    )
    rows = [sql(url, f'SELECT * FROM "{name}" ORDER BY 1') for name, kind, *_ in relations
            if kind in ("r", "v")]  # fmt: skip
    return [*relations, *rows]


def writer_waits_on_a_lock(url: str) -> bool:
    return bool(sql(
        url,
        "SELECT 1 FROM pg_stat_activity WHERE datname = current_database()"
        " AND application_name = 'miniscan' AND wait_event_type = 'Lock'",
    ))  # fmt: skip
