"""What every store command shares: its options, one-line failures and output stream.

Owns: `CommandFailed` and `reports_failures` (an expected failure of the store or of Pub/Sub
becomes one `miniscan: ...` line on stderr and exit code 1; a closed pipe a quiet exit), the
`--db`, `--format` and `--limit` options of `miniscan query`, `stats` and `dead-letters`,
and the small rules behind them (`fetch_limit`, `stdout`).

Exit codes (`contracts.exit_codes`): 0 done; 3 no database at the path, a refused file or
schema, PostgreSQL or Pub/Sub unreachable; 1 any other expected failure (no such dead
letter, a publish failed or was refused); each is one `miniscan: ...` line on stderr; a
PostgreSQL URL is only ever shown
without its password; 2 bad usage (click's own, and a --db that is no file path in an
existing folder nor a PostgreSQL URL).

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

from broker.errors import PubSubUnavailable
from commands import render
from contracts import console
from contracts.exit_codes import EXIT_ERROR, EXIT_STARTUP
from store import dead_letters
from store.errors import StoreError

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}


class CommandFailed(click.ClickException):
    """An expected failure: one `miniscan: ...` line on stderr; exit code 1 (it failed),
    or 3 when a part it needs is missing, unreachable or refused it."""

    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file: Any = None) -> None:
        click.echo(f"miniscan: {self.format_message()}", err=True)


def reports_failures(command: Callable[..., None]) -> Callable[..., None]:
    """Turn the store's and Pub/Sub's expected errors into a one-line message and exit 3
    (a replay Pub/Sub refused: 1)."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> None:
        try:
            command(*args, **kwargs)
        except dead_letters.ReplayRefused as exc:
            raise CommandFailed(str(exc)) from None
        except (StoreError, PubSubUnavailable) as exc:
            raise CommandFailed(str(exc), EXIT_STARTUP) from None
        except BrokenPipeError:
            # The reader of our output left (`miniscan query | head`): stop quietly, as
            # Unix tools do, and keep Python from complaining while it flushes stdout.
            _silence_stdout()
            sys.exit(EXIT_ERROR)

    return run


def _silence_stdout() -> None:
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


db_option = console.db_option("SQLite file or postgresql:// URL.")
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
