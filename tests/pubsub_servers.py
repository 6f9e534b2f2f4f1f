"""Both local Pub/Sub servers for tests/test_pubsub_conformance.py, and a client for each test.

Owns: the module-scoped `pubsub_server` fixture, parametrised over Google's emulator and the
built-in server (each started by `testkit.emulator.start_emulator` with its kind forced; Google's
skipped where it is not installed), and `Target`: a fresh project with a topic and a
subscription on that server, with the few calls the suite makes, each bounded.

Never: assert anything; the suite does.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1

from broker import client
from testkit.emulator import (
    BUILTIN,
    GOOGLE,
    Emulator,
    EmulatorError,
    find_emulator_command,
    start_emulator,
)


@pytest.fixture(scope="module", params=[GOOGLE, BUILTIN])
def pubsub_server(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[Emulator]:
    kind = request.param
    try:
        find_emulator_command("127.0.0.1", 1, "test-project", kind)
    except EmulatorError:
        pytest.skip("Google's Pub/Sub emulator is not installed: the built-in server alone")
    emulator = start_emulator(kind=kind, log_dir=str(tmp_path_factory.mktemp(f"pubsub-{kind}")))
    assert emulator.kind == kind
    try:
        yield emulator
    finally:
        emulator.stop()


@dataclass
class Target:
    """A fresh project with a topic and a subscription (ack deadline 10 s) on one server."""

    kind: str
    project: str
    topic: str
    subscription: str
    publisher: pubsub_v1.PublisherClient
    subscriber: pubsub_v1.SubscriberClient

    def publish(self, data: bytes, **attributes: str) -> str:
        return self.publisher.publish(self.topic, data, **attributes).result(timeout=60)

    def pull(self, max_messages: int = 10, timeout: float = 10.0, now: bool = False) -> list:
        """One pull; the raw ReceivedMessages ([] when the long poll ran out)."""
        request = {"subscription": self.subscription, "max_messages": max_messages}
        if now:
            request["return_immediately"] = True
        try:
            response = self.subscriber.pull(request=request, timeout=timeout, retry=None)
        except gexc.DeadlineExceeded:
            return []
        return list(type(response).pb(response).received_messages)

    def pull_until(self, count: int, within: float = 30.0) -> list:
        """Pull (without acking) until `count` messages came, or `within` s passed."""
        received: list = []
        deadline = time.monotonic() + within
        while len(received) < count and time.monotonic() < deadline:
            received += self.pull(timeout=min(10.0, max(1.0, deadline - time.monotonic())))
        return received

    def ack(self, *ack_ids: str) -> None:
        self.subscriber.acknowledge(request={"subscription": self.subscription, "ack_ids": ack_ids})

    def modack(self, seconds: int, *ack_ids: str) -> None:
        self.subscriber.modify_ack_deadline(
            request={
                "subscription": self.subscription,
                "ack_ids": ack_ids,
                "ack_deadline_seconds": seconds,
            }
        )


@pytest.fixture
def target(pubsub_server: Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[Target]:
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_server.host)
    project = f"conformance-{uuid.uuid4().hex[:8]}"
    publisher = client.publisher_client()
    subscriber = client.subscriber_client()
    topic = f"projects/{project}/topics/scans"
    subscription = f"projects/{project}/subscriptions/scan-sub"
    publisher.create_topic(request={"name": topic})
    subscriber.create_subscription(request={"name": subscription, "topic": topic})
    try:
        yield Target(pubsub_server.kind, project, topic, subscription, publisher, subscriber)
    finally:
        subscriber.close()


def data_of(received: list) -> list[bytes]:
    return sorted(m.message.data for m in received)
