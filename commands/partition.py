"""`miniscan partition`: spread PostgreSQL's `scans` over hash partitions of ip.

Owns: the command's options (`--db`, `--partitions`), refusing a store that is no PostgreSQL
URL at the door (exit 2, nothing created: a SQLite file has no partitions), and the one line
it prints. The work, in one transaction, is `store.postgres.partition`'s; psycopg is loaded
only when the command runs (`store.backend.import_postgres`: an optional extra).

Exit codes (`contracts.exit_codes`): 0 done; 2 bad usage (click's own, a --db that is not a
PostgreSQL URL); 3 no current miniscan tables, scans partitioned already, PostgreSQL
unreachable or refusing (one `miniscan: ...` line, nothing changed).

Never: hold SQL, open a connection itself, or run while writers write (the docs ask for the
processors to be stopped; a writer still running waits on the lock, then carries on).
"""

from __future__ import annotations

import click

from commands.store_command import CONTEXT_SETTINGS, db_option, reports_failures
from store.backend import import_postgres, is_postgres_url

# store.postgres.partition.MAX_PARTITIONS, which also refuses more; not imported here, since
# that would load psycopg for --help (tests/stores/test_store_partition.py holds them equal).
MAX_PARTITIONS = 1024


@click.command("partition", context_settings=CONTEXT_SETTINGS)
@db_option
@click.option(
    "--partitions",
    type=click.IntRange(2, MAX_PARTITIONS),
    required=True,
    help="Hash partitions of ip to spread scans over (16 suits 100M-1B rows).",
)
@reports_failures
def partition_command(db_path: str, partitions: int) -> None:
    """Move PostgreSQL's scans into hash partitions of ip, in one transaction (stop the
    processors first: the table is locked while its rows move)."""
    if not is_postgres_url(db_path):
        raise click.BadParameter(
            "partitioning needs a postgresql:// URL; a SQLite file is never partitioned",
            param_hint="'--db'",
        )
    where, moved = import_postgres().partition.partition_database(db_path, partitions)
    click.echo(f"{where}: scans holds {moved} rows in {partitions} partitions by hash of ip")
