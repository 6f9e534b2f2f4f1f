"""Publisher-side and admin Pub/Sub calls: clients, topics, subscriptions, publishing.

Owns: building Pub/Sub clients (they honour PUBSUB_EMULATOR_HOST by themselves), including
the batching publisher the scanner uses, creating the topic and the subscription when
missing, and checking that Pub/Sub answers at all, each with a bounded deadline so that an
unreachable broker is a clear error, not a hang.

Never: pull or acknowledge messages (that is `workers.pubsub`), or print; callers decide how
to report a `PubSubUnavailable`.
"""

from __future__ import annotations

from google.api_core import exceptions as gexc
from google.api_core import retry as gretry
from google.auth import exceptions as auth_exceptions
from google.cloud import pubsub_v1
from google.cloud.pubsub_v1 import types as pubsub_types

DEFAULT_PROJECT = "test-project"
DEFAULT_TOPIC = "scan-topic"
DEFAULT_SUBSCRIPTION = "scan-sub"
# Short on purpose: miniscan extends leases of what it holds, so this deadline is only the
# time a message held by a killed process waits before Pub/Sub redelivers it (issue 5).
DEFAULT_ACK_DEADLINE_S = 10
ADMIN_TIMEOUT_S = 15.0
# How long one publish may keep retrying before its future fails: long enough to ride out a
# broker restart, short enough that a scanner whose broker is gone exits instead of waiting
# the client's default 600 s.
PUBLISH_DEADLINE_S = 60.0
NO_CREDENTIALS_HINT = (
    "no Google Cloud credentials found: set PUBSUB_EMULATOR_HOST=host:port to use the "
    "emulator, or configure Application Default Credentials for real Pub/Sub"
)


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
    """A PublisherClient; PubSubUnavailable (not a google.auth error) when there are no
    credentials and no emulator."""
    try:
        return pubsub_v1.PublisherClient(**kwargs)
    except auth_exceptions.GoogleAuthError:
        raise PubSubUnavailable(NO_CREDENTIALS_HINT) from None


def subscriber_client() -> pubsub_v1.SubscriberClient:
    """A SubscriberClient; PubSubUnavailable when there are no credentials and no emulator."""
    try:
        return pubsub_v1.SubscriberClient()
    except auth_exceptions.GoogleAuthError:
        raise PubSubUnavailable(NO_CREDENTIALS_HINT) from None


def publish_retry(deadline: float = PUBLISH_DEADLINE_S) -> gretry.Retry:
    """Retry what the client's own publish retry does, but give up after `deadline` s."""
    return gretry.Retry(
        predicate=gretry.if_exception_type(
            gexc.Aborted,
            gexc.Cancelled,
            gexc.DeadlineExceeded,
            gexc.InternalServerError,
            gexc.ResourceExhausted,
            gexc.ServiceUnavailable,
            gexc.Unknown,
        ),
        initial=0.1,
        maximum=5.0,
        timeout=deadline,
    )


def batching_publisher_client(
    max_messages: int = 1000,
    max_latency_s: float = 0.02,
    max_in_flight: int = 20_000,
    publish_deadline_s: float = PUBLISH_DEADLINE_S,
) -> pubsub_v1.PublisherClient:
    """A PublisherClient tuned for a firehose: large batches, bounded memory, bounded retry.

    Batches of up to `max_messages` (a request stays far below Pub/Sub's 10 MB limit: scans
    are ~150 bytes) are what let one process publish thousands of messages a second; a
    batch goes out at the latest `max_latency_s` after its first message, so slow rates
    stay timely. `max_in_flight` unconfirmed messages make publish() block instead of
    queueing without bound when the broker is slower than the producer.
    """
    return publisher_client(
        batch_settings=pubsub_types.BatchSettings(
            max_messages=max_messages, max_bytes=5_000_000, max_latency=max_latency_s
        ),
        publisher_options=pubsub_types.PublisherOptions(
            flow_control=pubsub_types.PublishFlowControl(
                message_limit=max_in_flight,
                byte_limit=100_000_000,
                limit_exceeded_behavior=pubsub_types.LimitExceededBehavior.BLOCK,
            ),
            retry=publish_retry(publish_deadline_s),
            timeout=min(publish_deadline_s, 30.0),
        ),
    )


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
