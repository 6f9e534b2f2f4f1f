"""The benchmark's own Pub/Sub calls: a fresh topic and subscription per candidate, the
backlog published as fast as the batching client allows, and the check for leftovers.

Owns: naming and creating the pair (through `broker.admin`, the same calls `miniscan
setup` makes, so the subscription has miniscan's default 10 s ack deadline), publishing a
list of payloads and waiting until Pub/Sub confirmed every one, counting what a
subscription still delivers (anything not acknowledged comes back once its ack deadline
ran out), and deleting the pair so that the emulator does not keep old backlogs in memory.

Never: start candidates or the emulator, or acknowledge what it counts.
"""

from __future__ import annotations

import re
import uuid
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

from google.api_core import exceptions as gexc

from broker import admin, client
from contracts import defaults

PROJECT = defaults.DEFAULT_PROJECT
PUBLISH_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Target:
    project: str
    topic: str
    subscription: str

    @property
    def subscription_path(self) -> str:
        return f"projects/{self.project}/subscriptions/{self.subscription}"

    @property
    def topic_path(self) -> str:
        return f"projects/{self.project}/topics/{self.topic}"


def create_target(label: str, project: str = PROJECT) -> Target:
    """A new topic and subscription whose names start with `label` (made name-safe)."""
    safe = re.sub(r"[^A-Za-z0-9-]+", "-", label).strip("-")
    suffix = f"{safe}-{uuid.uuid4().hex[:8]}"
    target = Target(project, f"bench-topic-{suffix}", f"bench-sub-{suffix}")
    publisher = client.publisher_client()
    subscriber = client.subscriber_client()
    try:
        admin.ensure_topic(publisher, project, target.topic)
        admin.ensure_subscription(subscriber, project, target.topic, target.subscription)
    finally:
        subscriber.close()
    return target


def publish_backlog(target: Target, payloads: Sequence[bytes]) -> int:
    """Publish every payload; return once Pub/Sub confirmed them all (raises otherwise)."""
    publisher = client.batching_publisher_client()
    futures = [publisher.publish(target.topic_path, payload) for payload in payloads]
    for future in futures:
        future.result(timeout=PUBLISH_TIMEOUT_S)
    publisher.stop()
    return len(futures)


def count_deliverable(target: Target) -> int:
    """Messages the subscription hands out right now, not acked (they stay leased until
    their ack deadline, so a second call soon after sees none of them)."""
    subscriber = client.subscriber_client()
    found = 0
    try:
        while True:
            with warnings.catch_warnings():
                # Deprecated for real Pub/Sub, but it is exactly "what is there now?": without
                # it the emulator holds an empty pull open for about two seconds.
                warnings.simplefilter("ignore", DeprecationWarning)
                response = subscriber.pull(
                    request={
                        "subscription": target.subscription_path,
                        "max_messages": 1000,
                        "return_immediately": True,
                    },
                    timeout=30,
                )
            if not response.received_messages:
                return found
            found += len(response.received_messages)
    finally:
        subscriber.close()


def delete_target(target: Target) -> None:
    subscriber = client.subscriber_client()
    publisher = client.publisher_client()
    try:
        subscriber.delete_subscription(request={"subscription": target.subscription_path})
        publisher.delete_topic(request={"topic": target.topic_path})
    except gexc.NotFound:
        pass
    finally:
        subscriber.close()
