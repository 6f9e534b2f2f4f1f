"""Test traffic for pipeline tests: payloads with a known final table, published for real.

Owns: the tests' choice of workload (`scanner.workload`, the builder the benchmark uses,
with the options that make the tests harder than the benchmark: scans tied in the same
second so that the tie rules decide, services spelled in lower case, and on request poison
messages), and publishing it to the emulator. Reading the table back is
`testkit.table`.

Never: decide anything about decoding or precedence; the expected table is the builder's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from broker import client
from scanner.workload import Workload
from scanner.workload import build_workload as build_scanner_workload

__all__ = [
    "PacedPublisher",
    "Workload",
    "build_workload",
    "leftover_messages",
    "publish_all",
]

TIES = 0.05  # a share of scans in the same second as their key's previous one
LOWER_CASE = 0.2  # a share of scans whose service the decoders must upper-case


def build_workload(messages: int, keys: int, seed: int = 7, poison: int = 0) -> Workload:
    """`messages` scans over `keys` keys (out of order, 2% duplicated), plus `poison` bad."""
    return build_scanner_workload(
        messages, keys, seed, ties=TIES, lower_case=LOWER_CASE, poison=poison
    )


def publish_all(project: str, topic: str, payloads: Iterable[bytes]) -> int:
    publisher = client.publisher_client()
    path = publisher.topic_path(project, topic)
    futures = [publisher.publish(path, payload) for payload in payloads]
    for future in futures:
        future.result(timeout=60)
    return len(futures)


class PacedPublisher(threading.Thread):
    """Publishes the payloads at about `rate` a second, straight to the emulator, so that
    scans keep arriving during a fault; `published` counts each one Pub/Sub confirmed."""

    def __init__(self, target, payloads: list[bytes], rate: float):
        super().__init__(daemon=True)
        self.target, self.payloads, self.rate = target, payloads, rate
        self.published = 0

    def run(self) -> None:
        publisher = client.publisher_client()
        path = publisher.topic_path(self.target.project, self.target.topic)
        started = time.monotonic()
        futures = []
        for i, payload in enumerate(self.payloads):
            futures.append(publisher.publish(path, payload))
            ahead = started + i / self.rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)  # pacing the publisher, not waiting for a result
        for future in futures:
            future.result(timeout=120)
            self.published += 1


def leftover_messages(target) -> int:
    """Messages still deliverable on the subscription (none once everything was acked)."""
    subscriber = client.subscriber_client()
    try:
        response = subscriber.pull(
            request={
                "subscription": subscriber.subscription_path(target.project, target.subscription),
                "max_messages": 100,
                "return_immediately": True,
            },
            timeout=10,
        )
        return len(response.received_messages)
    finally:
        subscriber.close()
