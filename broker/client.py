"""Pub/Sub clients for production code: how every miniscan process reaches Pub/Sub.

Owns: building Pub/Sub clients (they honour PUBSUB_EMULATOR_HOST by themselves) with one
credential check that turns "no credentials" into `PubSubUnavailable`, the batching publisher
the scanner uses, and the bounded retries every call runs under, so that an unreachable
broker is a clear error, not a hang.

Never: publish (that is `broker.publisher`), pull or acknowledge messages (that is
`broker.subscription`), create topics (that is `broker.admin`), or print; callers decide how
to report a `PubSubUnavailable`.
"""

from __future__ import annotations

import os

import grpc
from google.api_core import exceptions as gexc
from google.api_core import retry as gretry
from google.auth import exceptions as auth_exceptions
from google.cloud import pubsub_v1
from google.cloud.pubsub_v1 import types as pubsub_types
from google.pubsub_v1.services.subscriber.transports.grpc import SubscriberGrpcTransport

from broker.errors import PubSubUnavailable
from contracts import defaults

ADMIN_TIMEOUT_S = defaults.DEFAULT_CONNECT_TIMEOUT_S
# How long one publish may keep retrying before its future fails: long enough to ride out a
# broker restart, short enough that a scanner whose broker is gone exits instead of waiting
# the client's default 600 s.
PUBLISH_DEADLINE_S = 60.0
NO_CREDENTIALS_HINT = (
    "no Google Cloud credentials found: set PUBSUB_EMULATOR_HOST=host:port to use the "
    "emulator, or configure Application Default Credentials for real Pub/Sub"
)


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
    """A SubscriberClient; PubSubUnavailable when there are no credentials and no emulator.

    Against the emulator the library's own channel keeps gRPC's 4 MiB receive limit, and a
    pull of a few large messages failed with "Received message larger than max" (issue 12):
    there we build the channel ourselves, without size limits, as the library does for real
    Pub/Sub (whose messages go up to 10 MB)."""
    emulator = os.environ.get("PUBSUB_EMULATOR_HOST")
    try:
        if emulator:
            return pubsub_v1.SubscriberClient(transport=_emulator_transport(emulator))
        return pubsub_v1.SubscriberClient()
    except auth_exceptions.GoogleAuthError:
        raise PubSubUnavailable(NO_CREDENTIALS_HINT) from None


EMULATOR_CHANNEL_OPTIONS = (
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
    # gRPC waits up to 120 s between reconnect attempts after a long outage; a decoder
    # should be back within seconds of its broker (issue 12).
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 5000),
)


def _emulator_transport(host: str) -> SubscriberGrpcTransport:
    channel = grpc.insecure_channel(host, options=EMULATOR_CHANNEL_OPTIONS)
    return SubscriberGrpcTransport(channel=channel, host=host)


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


def unreachable_message(path: str, exc: Exception) -> str:
    where = os.environ.get("PUBSUB_EMULATOR_HOST") or "pubsub.googleapis.com"
    return f"Pub/Sub at {where} did not answer for {path} (gave up after bounded retry)"
