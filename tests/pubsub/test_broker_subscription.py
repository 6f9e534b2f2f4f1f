"""broker.subscription against the real emulator: large messages, and outages as weather."""

from __future__ import annotations

import pytest

from broker import client
from broker.subscription import PubSubOutage, Subscription
from contracts import metrics

BIG = 3 * 1024 * 1024  # three of these exceed gRPC's default 4 MiB receive limit


@pytest.mark.emulator
def test_a_pull_of_several_multi_mib_messages_arrives_whole(pubsub_target):
    publisher = client.publisher_client()
    topic = publisher.topic_path(pubsub_target.project, pubsub_target.topic)
    payloads = [bytes([65 + i]) * BIG for i in range(3)]
    for future in [publisher.publish(topic, payload) for payload in payloads]:
        future.result(timeout=60)
    subscription = Subscription(pubsub_target.project, pubsub_target.subscription)
    try:
        received: list[bytes] = []
        for _ in range(10):  # bounded: the emulator may split the backlog over pulls
            pulled = subscription.pull(10, timeout=10)
            subscription.acknowledge([m.ack_id for m in pulled])
            received += [m.data for m in pulled]
            if len(received) == len(payloads):
                break
    finally:
        subscription.close()
    assert sorted(received) == payloads


def errors(call: str, code: str) -> float:
    return metrics.PUBSUB_ERRORS.labels(call, code)._value.get()


def test_unreachable_pubsub_is_an_outage_and_is_counted(monkeypatch):
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", "127.0.0.1:9")  # nothing listens on discard
    subscription = Subscription("test-project", "scan-sub")
    try:
        before = errors("pull", "UNAVAILABLE")
        with pytest.raises(PubSubOutage):
            subscription.pull(10, timeout=5)
        assert errors("pull", "UNAVAILABLE") == before + 1
        before = errors("acknowledge", "UNAVAILABLE")
        with pytest.raises(PubSubOutage, match="gave up after 1s"):
            subscription.acknowledge(["an-ack-id"], deadline=1.0)
        assert errors("acknowledge", "UNAVAILABLE") > before
    finally:
        subscription.close()
