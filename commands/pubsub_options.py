"""The options of every `miniscan` command that reaches Pub/Sub: which project, which topic,
how long to wait for an answer.

Owns: one spelling of `--connect-timeout` (name, environment variable, default from
`broker.client`) for `miniscan setup` and `miniscan dead-letters replay`; `--project` and
`--topic` are every console script's, from `contracts.console`, re-exported here. Each
command words the help of what differs for it.

Never: reach Pub/Sub, or declare an option only one command takes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from broker import client
from contracts.console import project_option, subscription_option, topic_option

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]

__all__ = ["connect_timeout_option", "project_option", "subscription_option", "topic_option"]


def connect_timeout_option(what: str) -> Decorator:
    """`--connect-timeout` in seconds (env MINISCAN_CONNECT_TIMEOUT); `what` says what is
    bounded by it, as a sentence without its full stop."""
    return click.option(
        "--connect-timeout",
        envvar="MINISCAN_CONNECT_TIMEOUT",
        show_envvar=True,
        type=click.FloatRange(min=0, min_open=True),
        default=client.ADMIN_TIMEOUT_S,
        show_default=True,
        help=f"{what}.",
    )
