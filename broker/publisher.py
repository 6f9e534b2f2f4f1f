"""Publishing to one topic through one client: the only place miniscan publishes.

Owns: `TopicPublisher`, one PublisherClient bound to one topic, and the two ways miniscan
publishes through it. The scanner hands it a stream (`publish`: each confirmation or failure
arrives later, on the client's threads, as a callback); the dead-letter replay hands it a
chunk with attributes and waits for each answer (`publish_confirmed`). Both make sure the
topic exists first (`ensure_topic`); the replay also asks what subscribes (`subscriptions`).
Which client is used (the batching one of `broker.client` for the scanner's firehose, the
plain one for the replay) is the caller's choice, so pacing and flow control stay as tuned.

Never: decide what to publish or what a failure means (the scanner counts, the replay keeps
rows), print, or pull.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from google.cloud import pubsub_v1
from google.cloud.pubsub_v1.publisher.futures import Future

from broker import admin, client

# A message as the replay hands it over: its body and its attributes.
OutgoingMessage = tuple[bytes, Mapping[str, str]]
ClientFactory = Callable[..., pubsub_v1.PublisherClient]


@dataclass
class ConfirmedPublish:
    """What `publish_confirmed` learnt: indexes (into the messages given) that Pub/Sub
    confirmed, and (index, error) of the others: refused at once first, then those whose
    confirmation failed, each group in the order given."""

    confirmed: list[int] = field(default_factory=list)
    failed: list[tuple[int, BaseException]] = field(default_factory=list)


class TopicPublisher:
    """One publishing client bound to `projects/<project>/topics/<topic>`."""

    def __init__(self, project: str, topic: str, publisher: pubsub_v1.PublisherClient) -> None:
        self.project, self.topic = project, topic
        self.topic_path = f"projects/{project}/topics/{topic}"
        self._client = publisher

    @classmethod
    def plain(cls, project: str, topic: str) -> TopicPublisher:
        """With the library's default batching: for a few confirmed publishes (the replay)."""
        return cls(project, topic, client.publisher_client())

    def ensure_topic(self, deadline: float = client.ADMIN_TIMEOUT_S) -> bool:
        """Create the topic unless it exists; True when this call created it."""
        return admin.ensure_topic(self._client, self.project, self.topic, deadline=deadline)

    def subscriptions(self, deadline: float = client.ADMIN_TIMEOUT_S) -> list[str]:
        """The paths of the subscriptions attached to the topic."""
        return admin.topic_subscriptions(self._client, self.topic_path, deadline=deadline)

    def publish(self, data: bytes, on_settled: Callable[[BaseException | None], None]) -> None:
        """Hand one message to the client, which batches it; `on_settled` later gets None
        once Pub/Sub confirmed it, or the error. Blocks while the client's flow control says
        too much is unconfirmed."""
        future = self._client.publish(self.topic_path, data)
        future.add_done_callback(lambda settled: on_settled(settled.exception()))

    def publish_confirmed(
        self, messages: Sequence[OutgoingMessage], timeout_s: float
    ) -> ConfirmedPublish:
        """Publish every message, then wait (each call and each answer bounded by
        `timeout_s`) for each; a refusal or failure of one never stops the others."""
        outcome = ConfirmedPublish()
        pending: list[tuple[int, Future]] = []
        for index, (data, attributes) in enumerate(messages):
            try:
                future = self._client.publish(
                    self.topic_path,
                    data,
                    retry=client.bounded_retry(timeout_s),
                    timeout=timeout_s,
                    **attributes,
                )
            except Exception as exc:  # a refused publish must only fail its own message
                outcome.failed.append((index, exc))
            else:
                pending.append((index, future))
        for index, future in pending:
            try:
                future.result(timeout=timeout_s)
            except Exception as exc:  # same: the caller decides what a failure keeps
                outcome.failed.append((index, exc))
            else:
                outcome.confirmed.append(index)
        return outcome

    def stop(self) -> None:
        """Send what is still batched and close the client; its answers still arrive."""
        self._client.stop()
