"""Admin calls on Pub/Sub: create the topic and the subscription when they are missing, and
list what subscribes to a topic.

Owns: `ensure_topic`, `ensure_subscription` and `topic_subscriptions`, each with a bounded
deadline so that an unreachable broker is a clear `PubSubUnavailable`, not a hang. Used by
`miniscan setup`, the scanner, the dead-letter replay (through `broker.publisher`), the demo
and the tests.

Never: publish, pull or acknowledge, or print; callers decide how to report a failure.
"""

from __future__ import annotations

from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1

from broker.client import ADMIN_TIMEOUT_S, PubSubUnavailable, bounded_retry, unreachable_message
from contracts.defaults import DEFAULT_ACK_DEADLINE_S


def ensure_topic(
    publisher: pubsub_v1.PublisherClient, project: str, topic: str,
    deadline: float = ADMIN_TIMEOUT_S,
) -> bool:  # fmt: skip
    """Create the topic unless it exists; True when this call created it."""
    path = publisher.topic_path(project, topic)
    try:
        publisher.create_topic(
            request={"name": path}, retry=bounded_retry(deadline), timeout=deadline
        )
        return True
    except gexc.AlreadyExists:
        return False
    except gexc.RetryError as exc:
        raise PubSubUnavailable(unreachable_message(path, exc)) from None
    except gexc.GoogleAPICallError as exc:
        raise PubSubUnavailable(f"cannot create topic {path}: {exc.message}") from None


def ensure_subscription(
    subscriber: pubsub_v1.SubscriberClient,
    project: str,
    topic: str,
    subscription: str,
    ack_deadline_s: int = DEFAULT_ACK_DEADLINE_S,
    deadline: float = ADMIN_TIMEOUT_S,
) -> bool:
    """Create the subscription on the topic unless it exists; True when this call created it."""
    sub_path = subscriber.subscription_path(project, subscription)
    topic_path = f"projects/{project}/topics/{topic}"
    try:
        subscriber.create_subscription(
            request={
                "name": sub_path,
                "topic": topic_path,
                "ack_deadline_seconds": ack_deadline_s,
            },
            retry=bounded_retry(deadline),
            timeout=deadline,
        )
        return True
    except gexc.AlreadyExists:
        return False
    except gexc.RetryError as exc:
        raise PubSubUnavailable(unreachable_message(sub_path, exc)) from None
    except gexc.NotFound:
        raise PubSubUnavailable(
            f"cannot create subscription {sub_path}: topic {topic_path} does not exist"
        ) from None
    except gexc.GoogleAPICallError as exc:
        raise PubSubUnavailable(f"cannot create subscription {sub_path}: {exc.message}") from None


def topic_subscriptions(
    publisher: pubsub_v1.PublisherClient, topic_path: str, deadline: float = ADMIN_TIMEOUT_S
) -> list[str]:
    """The paths of the subscriptions attached to the topic; PubSubUnavailable when Pub/Sub
    does not list them."""
    try:
        return list(
            publisher.list_topic_subscriptions(
                request={"topic": topic_path}, retry=bounded_retry(deadline), timeout=deadline
            )
        )
    except Exception as exc:  # any client error: report it, so the caller acts on nothing
        raise PubSubUnavailable(f"cannot list subscriptions of {topic_path}: {exc}") from None
