"""The emulator fixture itself: a message published to a fresh topic can be pulled back."""

from __future__ import annotations

import pytest

from broker import client

pytestmark = pytest.mark.emulator


def test_publish_then_pull_round_trips(pubsub_target):
    publisher = client.publisher_client()
    topic_path = publisher.topic_path(pubsub_target.project, pubsub_target.topic)
    publisher.publish(topic_path, b"hello").result(timeout=30)

    subscriber = client.subscriber_client()
    sub_path = subscriber.subscription_path(pubsub_target.project, pubsub_target.subscription)
    try:
        response = subscriber.pull(
            request={"subscription": sub_path, "max_messages": 10}, timeout=30
        )
        assert [m.message.data for m in response.received_messages] == [b"hello"]
    finally:
        subscriber.close()
