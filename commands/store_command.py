"""What every store command shares: its options, one-line failures and output stream.

Owns: `CommandFailed` and `reports_failures` (an expected failure of the store or of Pub/Sub
becomes one `miniscan: ...` line on stderr and exit code 1; a closed pipe a quiet exit), the
`--db`, `--format` and `--limit` options of `miniscan query`, `stats` and `dead-letters`,
and the small rules behind them (`fetch_limit`, `stdout`).

Exit codes: 0 done; 1 expected failure, reported as one `miniscan: ...` line on stderr
(no database at the path, a refused file or schema, PostgreSQL or Pub/Sub unreachable, a
publish failed); a PostgreSQL URL is only ever shown without its password;
2 bad usage (click's own).

Never: read the store, print results, or leave a traceback for an expected failure.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable
from typing import Any

import click

from broker import client
from commands import render
from contracts import defaults
from store import dead_letters
from store.errors import StoreError

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}


class CommandFailed(click.ClickException):
    """An expected failure: one `miniscan: ...` line on stderr, exit code 1."""

    def show(self, file: Any = None) -> None:
        click.echo(f"miniscan: {self.format_message()}", err=True)


def reports_failures(command: Callable[..., None]) -> Callable[..., None]:
    """Turn the store's and Pub/Sub's expected errors into a one-line message and exit 1."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> None:
        try:
            command(*args, **kwargs)
        except (StoreError, client.PubSubUnavailable, dead_letters.ReplayRefused) as exc:
            raise CommandFailed(str(exc)) from None
        except BrokenPipeError:
            # The reader of our output left (`miniscan query | head`): stop quietly, as
            # Unix tools do, and keep Python from complaining while it flushes stdout.
            _silence_stdout()
            sys.exit(1)

    return run


def _silence_stdout() -> None:
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


db_option = click.option(
    "--db",
    "db_path",
    envvar=defaults.DB_PATH_ENV,
    default=defaults.DEFAULT_DB_PATH,
    show_default=True,
    type=click.Path(dir_okay=False),
    help=f"SQLite file or postgresql:// URL (env {defaults.DB_PATH_ENV}).",
)
format_option = click.option(
    "--format",
    "output_format",
    type=click.Choice(render.FORMATS),
    default=None,
    help="Output format [default: table on a terminal, json (one object per line) otherwise].",
)
limit_option = click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=1000,
    show_default=True,
    help="At most this many rows (0: all).",
)


def fetch_limit(limit: int) -> int | None:
    # One row more than shown tells whether rows were left out.
    return limit + 1 if limit else None


def stdout() -> Any:
    # Looked up at each call, not bound at import: click's test runner swaps sys.stdout.
    return sys.stdout
