"""Publish payloads to one topic: batched, paced to a rate, counted, and flushed on stop.

Owns: the scanner's publishing lifecycle, in three steps a caller can drive one by one
(`ScanPublisher.connect`, `.run`, `.flush`) or all at once (`publish_payloads`): make sure
the topic exists within a bounded deadline, hand each payload to the batching client
(a `broker.publisher.TopicPublisher`) no earlier than its due time (`start + index / rate`),
count what Pub/Sub confirmed, report progress every few seconds, and on stop hand every
pending batch over and wait, bounded, for Pub/Sub's answer so that the count returned is
exactly what was published.

Pacing follows a schedule rather than sleeping 1/rate between messages: several thousand
sleeps a second would oversleep and undershoot the rate, while a schedule lets the loop
catch up in bursts that the client batches anyway.

Never: build payloads (`scanner.generate`, `scanner.replay`), call the Pub/Sub library
(`broker` does), print (progress goes to a callback), or install signal handlers: the CLI
does, and sets the `stop` event watched here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from broker import client
from broker.client import PubSubUnavailable
from broker.publisher import ClientFactory, TopicPublisher

DEFAULT_PROGRESS_INTERVAL_S = 5.0
FLUSH_TIMEOUT_S = client.PUBLISH_DEADLINE_S + 10.0


class PublishFailed(PubSubUnavailable):
    """Pub/Sub refused or never confirmed some messages; `published` were confirmed."""

    def __init__(self, message: str, published: int) -> None:
        super().__init__(message)
        self.published = published


@dataclass(frozen=True, slots=True)
class Progress:
    """A periodic report: totals so far and the rate since the previous report."""

    published: int  # confirmed by Pub/Sub
    failed: int
    elapsed_s: float
    recent_rate: float  # confirmed messages per second since the previous report


def format_progress(progress: Progress) -> str:
    line = (
        f"published {progress.published} "
        f"({progress.recent_rate:.0f}/s recently, {progress.elapsed_s:.1f}s elapsed)"
    )
    return line + (f", {progress.failed} failed" if progress.failed else "")


def due_time(start: float, index: int, rate: float | None) -> float:
    """When message `index` (0-based) may go out; `rate` None means at once."""
    return start if rate is None else start + index / rate


def one_line(error: BaseException) -> str:
    """An exception as a single short line, whatever gRPC packed into its message."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 300 else text[:297] + "..."


class _Outcomes:
    """Counts publishes as they settle; callbacks arrive on the client's threads."""

    def __init__(self) -> None:
        self._settled = threading.Condition()
        self.confirmed = 0
        self.failed = 0
        self.first_error: str | None = None

    def record(self, error: BaseException | None) -> None:
        with self._settled:
            if error is None:
                self.confirmed += 1
            else:
                self.failed += 1
                self.first_error = self.first_error or one_line(error)
            self._settled.notify_all()

    def wait_settled(self, submitted: int, timeout_s: float) -> bool:
        with self._settled:
            return self._settled.wait_for(
                lambda: self.confirmed + self.failed >= submitted, timeout_s
            )


class _ProgressClock:
    """Decides when a progress report is due and what the recent rate was."""

    def __init__(self, start: float, interval_s: float) -> None:
        self.start = start
        self.interval_s = interval_s
        self.next_at = start + interval_s
        self._last_at = start
        self._last_published = 0

    def report(self, now: float, outcomes: _Outcomes) -> Progress:
        published = outcomes.confirmed
        recent_rate = (published - self._last_published) / max(now - self._last_at, 1e-9)
        self._last_at, self._last_published = now, published
        self.next_at = now + self.interval_s
        return Progress(published, outcomes.failed, now - self.start, recent_rate)


class ScanPublisher:
    """Publishes to one topic through one batching client; see the module docstring."""

    def __init__(
        self,
        project: str,
        topic: str,
        connect_timeout_s: float = client.ADMIN_TIMEOUT_S,
        publish_deadline_s: float = client.PUBLISH_DEADLINE_S,
        client_factory: ClientFactory = client.batching_publisher_client,
    ) -> None:
        self.topic_path = f"projects/{project}/topics/{topic}"
        self._project, self._topic = project, topic
        self._connect_timeout_s = connect_timeout_s
        self._publish_deadline_s = publish_deadline_s
        self._client_factory = client_factory
        self._publisher: TopicPublisher | None = None
        self._outcomes = _Outcomes()
        self.submitted = 0

    @property
    def published(self) -> int:
        return self._outcomes.confirmed

    def connect(self) -> bool:
        """Build the client and create the topic unless it exists; True when created here.

        Raises PubSubUnavailable when Pub/Sub does not answer within the connect timeout.
        """
        publisher = self._client_factory(publish_deadline_s=self._publish_deadline_s)
        self._publisher = TopicPublisher(self._project, self._topic, publisher)
        return self._publisher.ensure_topic(deadline=self._connect_timeout_s)

    def run(
        self,
        payloads: Iterable[bytes],
        rate: float | None,
        stop: threading.Event | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        progress_interval_s: float = DEFAULT_PROGRESS_INTERVAL_S,
    ) -> None:
        """Hand payloads to the client, paced, until they run out, `stop` is set, or a
        publish fails. Does not flush: call `flush` afterwards, also after an exception."""
        if self._publisher is None:
            raise RuntimeError("connect() first")
        if rate is not None and rate <= 0:
            raise ValueError(f"rate must be positive or None (unlimited), not {rate}")
        stop = stop or threading.Event()
        start = time.monotonic()
        clock = _ProgressClock(start, progress_interval_s)
        for index, payload in enumerate(payloads):
            due = due_time(start, index, rate)
            if not self._wait_until(due, stop, clock, on_progress) or self._outcomes.failed:
                return
            self._publisher.publish(payload, self._outcomes.record)
            self.submitted += 1

    def _wait_until(
        self,
        due: float,
        stop: threading.Event,
        clock: _ProgressClock,
        on_progress: Callable[[Progress], None] | None,
    ) -> bool:
        """Wait for `due`, reporting progress meanwhile; False as soon as `stop` is set."""
        while not stop.is_set():
            now = time.monotonic()
            if now >= clock.next_at:
                progress = clock.report(now, self._outcomes)
                if on_progress is not None:
                    on_progress(progress)
            if now >= due:
                return True
            # An Event wait, not a sleep: Ctrl-C (which sets `stop`) ends it at once.
            stop.wait(min(due, clock.next_at) - now)
        return False

    def flush(self, timeout_s: float = FLUSH_TIMEOUT_S) -> int:
        """Send every pending batch, wait for Pub/Sub's answers, return the confirmed count.

        Raises PublishFailed when a message failed or stayed unconfirmed past `timeout_s`.
        """
        if self._publisher is None:
            return 0
        self._publisher.stop()
        settled = self._outcomes.wait_settled(self.submitted, timeout_s)
        outcomes = self._outcomes
        if outcomes.failed:
            raise PublishFailed(
                f"publishing to {self.topic_path} failed for {outcomes.failed} message(s) "
                f"after {outcomes.confirmed} were published: {outcomes.first_error}",
                outcomes.confirmed,
            )
        if not settled:
            unconfirmed = self.submitted - outcomes.confirmed
            raise PublishFailed(
                f"Pub/Sub did not confirm {unconfirmed} message(s) to {self.topic_path} "
                f"within {timeout_s:.0f}s; {outcomes.confirmed} were published",
                outcomes.confirmed,
            )
        return outcomes.confirmed


def publish_payloads(
    project: str,
    topic: str,
    payloads: Iterable[bytes],
    rate: float | None,
    stop: threading.Event | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    progress_interval_s: float = DEFAULT_PROGRESS_INTERVAL_S,
    connect_timeout_s: float = client.ADMIN_TIMEOUT_S,
) -> int:
    """Create the topic if missing, publish `payloads` at `rate` messages/s (None = as fast
    as possible) until they run out or `stop` is set, flush, and return how many Pub/Sub
    confirmed. Raises PubSubUnavailable (PublishFailed for failed publishes)."""
    publisher = ScanPublisher(project, topic, connect_timeout_s=connect_timeout_s)
    publisher.connect()
    try:
        publisher.run(payloads, rate, stop, on_progress, progress_interval_s)
    finally:
        published = publisher.flush()
    return published
