"""Subscriber-side Pub/Sub calls: pull, acknowledge, nack and lease extension.

Owns: the one SubscriberClient of a decoder process and every call it makes, each with a
bounded timeout, chunked to stay under Pub/Sub's request limits. We use unary `pull` rather
than the streaming-pull callback API: measured on this machine against the emulator, unary
pull + acknowledge moved 9,000-19,700 messages/s in one process, streaming pull with default
settings about 2,000/s; unary pull also lets miniscan own the leases of what it holds (issue 5).

Never: decode, touch SQLite, or decide when to ack; callers do that. Must be created inside
the process that uses it: gRPC channels do not survive fork().
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from google.api_core import exceptions as gexc

from broker.client import PubSubUnavailable, bounded_retry, subscriber_client, unreachable_message

# Pub/Sub rejects acknowledge/modifyAckDeadline requests over 512 KB; ack ids run up to a
# few hundred bytes on real Pub/Sub, so 1,000 ids a request stays well under it.
ACK_CHUNK = 1000
RPC_TIMEOUT_S = 30.0


class SubscriptionMissing(PubSubUnavailable):
    """The subscription does not exist: a configuration error, not a transient one."""


@dataclass(frozen=True, slots=True)
class PulledMessage:
    """The parts of a received message that miniscan uses."""

    ack_id: str
    data: bytes
    message_id: str
    publish_time: float  # unix seconds


class Subscription:
    """One subscription, seen from one process."""

    def __init__(self, project: str, subscription: str) -> None:
        self._client = subscriber_client()
        self.path = self._client.subscription_path(project, subscription)

    def check(self, deadline: float = 15.0) -> None:
        """Raise SubscriptionMissing or PubSubUnavailable unless the subscription answers."""
        try:
            self._client.get_subscription(
                request={"subscription": self.path}, retry=bounded_retry(deadline), timeout=deadline
            )
        except gexc.NotFound:
            raise SubscriptionMissing(
                f"subscription {self.path} does not exist (create it with `miniscan setup`)"
            ) from None
        except gexc.RetryError as exc:
            raise PubSubUnavailable(unreachable_message(self.path, exc)) from None
        except gexc.GoogleAPICallError as exc:
            raise PubSubUnavailable(
                f"cannot read subscription {self.path}: {exc.message}"
            ) from None

    def pull(self, max_messages: int, timeout: float = RPC_TIMEOUT_S) -> list[PulledMessage]:
        """Long-poll for up to `max_messages`; an empty list when none arrived in time."""
        try:
            response = self._client.pull(
                request={"subscription": self.path, "max_messages": max_messages},
                retry=None,
                timeout=timeout,
            )
        except gexc.DeadlineExceeded:
            return []
        # Read the underlying protobuf, not the proto-plus wrappers: converting every field
        # of every message through them was 37% of a decoder's CPU (bench/RESULTS.md).
        raw = type(response).pb(response)
        return [
            PulledMessage(
                ack_id=received.ack_id,
                data=received.message.data,
                message_id=received.message.message_id,
                publish_time=received.message.publish_time.seconds
                + received.message.publish_time.nanos / 1e9,
            )
            for received in raw.received_messages
        ]

    def acknowledge(self, ack_ids: Iterable[str]) -> None:
        for chunk in _chunks(ack_ids):
            self._client.acknowledge(
                request={"subscription": self.path, "ack_ids": chunk},
                retry=bounded_retry(RPC_TIMEOUT_S),
                timeout=RPC_TIMEOUT_S,
            )

    def modify_deadline(self, ack_ids: Iterable[str], seconds: int) -> None:
        """Extend leases by `seconds`, or with 0 hand the messages back for redelivery now."""
        for chunk in _chunks(ack_ids):
            self._client.modify_ack_deadline(
                request={
                    "subscription": self.path,
                    "ack_ids": chunk,
                    "ack_deadline_seconds": seconds,
                },
                retry=bounded_retry(RPC_TIMEOUT_S),
                timeout=RPC_TIMEOUT_S,
            )

    def nack(self, ack_ids: Iterable[str]) -> None:
        self.modify_deadline(ack_ids, 0)

    def close(self) -> None:
        self._client.close()


def _chunks(ack_ids: Iterable[str]) -> Iterable[list[str]]:
    batch: list[str] = []
    for ack_id in ack_ids:
        batch.append(ack_id)
        if len(batch) == ACK_CHUNK:
            yield batch
            batch = []
    if batch:
        yield batch
