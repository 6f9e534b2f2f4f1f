"""`miniscan setup`: create the topic and the subscription a deployment pulls from.

Owns: the command's own options (the Pub/Sub ones are `contracts.console`'s) and the two
lines it prints (created, or already there). Safe to run again: what exists is left as it
is. Exit codes (`contracts.exit_codes`): 0 done; 3 Pub/Sub unreachable or it refused (one
line, no traceback); 2 bad usage (click's own).

Never: call the Pub/Sub library itself (`broker.admin` does), or change an existing
subscription.
"""

from __future__ import annotations

import click

from broker import admin, client
from broker.client import PubSubUnavailable
from contracts import defaults
from contracts.console import (
    CouldNotStart,
    connect_timeout_option,
    project_option,
    subscription_option,
    topic_option,
)


@click.command("setup", context_settings={"help_option_names": ["-h", "--help"]})
@project_option
@topic_option("Topic the scans go to.")
@subscription_option("Subscription miniscan pulls from.")
@click.option(
    "--ack-deadline",
    type=click.IntRange(10, 600),
    default=defaults.DEFAULT_ACK_DEADLINE_S,
    show_default=True,
    help="Ack deadline of a new subscription, in seconds (an existing one is left as is).",
)
@connect_timeout_option("Seconds to keep retrying an unreachable Pub/Sub before giving up.")
def setup_command(
    project: str, topic: str, subscription: str, ack_deadline: int, connect_timeout: float
) -> None:
    """Create the topic and the subscription when missing (safe to run again)."""
    try:
        publisher = client.publisher_client()
        topic_created = admin.ensure_topic(publisher, project, topic, deadline=connect_timeout)
        subscriber = client.subscriber_client()
        try:
            subscription_created = admin.ensure_subscription(
                subscriber, project, topic, subscription, ack_deadline, deadline=connect_timeout
            )
        finally:
            subscriber.close()
    except PubSubUnavailable as exc:
        raise CouldNotStart(str(exc)) from None
    topic_path = f"projects/{project}/topics/{topic}"
    subscription_path = f"projects/{project}/subscriptions/{subscription}"
    click.echo(
        f"created topic {topic_path}" if topic_created else f"topic {topic_path} already exists"
    )
    click.echo(
        f"created subscription {subscription_path} (ack deadline {ack_deadline}s)"
        if subscription_created
        else f"subscription {subscription_path} already exists (left unchanged)"
    )
