"""Publisher-side and admin Pub/Sub calls: clients, topics, subscriptions, publishing.

Owns: building Pub/Sub clients (they honour PUBSUB_EMULATOR_HOST by themselves), creating the
topic and the subscription when missing, and checking that Pub/Sub answers at all, each with
a bounded deadline so that an unreachable broker is a clear error, not a hang.

Never: pull or acknowledge messages (that is `workers.pubsub`), or print; callers decide how
to report a `PubSubUnavailable`.
"""

from __future__ import annotations

from google.api_core import exceptions as gexc
from google.api_core import retry as gretry
from google.cloud import pubsub_v1

DEFAULT_PROJECT = "test-project"
DEFAULT_TOPIC = "scan-topic"
DEFAULT_SUBSCRIPTION = "scan-sub"
# Short on purpose: miniscan extends leases of what it holds, so this deadline is only the
# time a message held by a killed process waits before Pub/Sub redelivers it (issue 5).
DEFAULT_ACK_DEADLINE_S = 10
ADMIN_TIMEOUT_S = 15.0


class PubSubUnavailable(RuntimeError):
    """Pub/Sub did not answer within the bounded retry, or refused the call."""


def bounded_retry(deadline: float = ADMIN_TIMEOUT_S) -> gretry.Retry:
    """Retry transient errors (unavailable, deadline) with backoff, for at most `deadline` s."""
    return gretry.Retry(
        predicate=gretry.if_exception_type(
            gexc.ServiceUnavailable, gexc.DeadlineExceeded, gexc.InternalServerError
        ),
        initial=0.2,
        maximum=2.0,
        timeout=deadline,
    )


def publisher_client(**kwargs) -> pubsub_v1.PublisherClient:
    return pubsub_v1.PublisherClient(**kwargs)


def subscriber_client() -> pubsub_v1.SubscriberClient:
    return pubsub_v1.SubscriberClient()


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
        raise PubSubUnavailable(_unreachable(path, exc)) from None
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
        raise PubSubUnavailable(_unreachable(sub_path, exc)) from None
    except gexc.NotFound:
        raise PubSubUnavailable(
            f"cannot create subscription {sub_path}: topic {topic_path} does not exist"
        ) from None
    except gexc.GoogleAPICallError as exc:
        raise PubSubUnavailable(f"cannot create subscription {sub_path}: {exc.message}") from None


def _unreachable(path: str, exc: Exception) -> str:
    import os

    where = os.environ.get("PUBSUB_EMULATOR_HOST") or "pubsub.googleapis.com"
    return f"Pub/Sub at {where} did not answer for {path} (gave up after bounded retry)"
