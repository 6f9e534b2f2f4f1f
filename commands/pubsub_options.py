"""The options of every `miniscan` command that reaches Pub/Sub: which project, which topic,
how long to wait for an answer.

Owns: one spelling of `--project`, `--topic` and `--connect-timeout` (names, environment
variables, defaults from `contracts.defaults` and `broker.client`) for `miniscan setup` and
`miniscan dead-letters replay`; each command words the help of what differs for it.

Never: reach Pub/Sub, or declare an option only one command takes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from broker import client
from contracts import defaults

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]

project_option = click.option(
    "--project",
    envvar="PUBSUB_PROJECT_ID",
    default=defaults.DEFAULT_PROJECT,
    show_default=True,
    help="Google Cloud project (env PUBSUB_PROJECT_ID).",
)


def topic_option(help_text: str) -> Decorator:
    """`--topic`, defaulting to the deployment's topic; `help_text` says what it is for."""
    return click.option(
        "--topic", default=defaults.DEFAULT_TOPIC, show_default=True, help=help_text
    )


def connect_timeout_option(what: str) -> Decorator:
    """`--connect-timeout` in seconds (env MINISCAN_CONNECT_TIMEOUT); `what` says what is
    bounded by it, as a sentence without its full stop."""
    return click.option(
        "--connect-timeout",
        envvar="MINISCAN_CONNECT_TIMEOUT",
        type=click.FloatRange(min=0, min_open=True),
        default=client.ADMIN_TIMEOUT_S,
        show_default=True,
        help=f"{what} (env MINISCAN_CONNECT_TIMEOUT).",
    )
