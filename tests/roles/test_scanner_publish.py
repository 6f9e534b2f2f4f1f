"""The publish loop in-process, against a fake client: pacing, stop, failures, progress.

The real client against the real emulator is covered by test_scanner_roundtrip.py; here
the fake confirms or fails each message at once, so what is measured is the loop itself.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import threading
import time

import pytest
from google.api_core import exceptions as gexc

from scanner import publish
from scanner.publish import Progress, PublishFailed, ScanPublisher


class FakePublisherClient:
    """Just the PublisherClient calls ScanPublisher makes; futures settle at once unless
    `confirm` is False, and fail from the `fail_from`-th message on."""

    def __init__(self, fail_from: int | None = None, confirm: bool = True) -> None:
        self.fail_from = fail_from
        self.confirm = confirm
        self.published: list[bytes] = []
        self.stopped = False
        self.created_topics: list[str] = []
        self.on_publish = lambda count: None

    def topic_path(self, project: str, topic: str) -> str:
        return f"projects/{project}/topics/{topic}"

    def create_topic(self, request: dict, retry: object = None, timeout: object = None) -> None:
        self.created_topics.append(request["name"])

    def publish(self, topic: str, data: bytes) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        if self.fail_from is not None and len(self.published) >= self.fail_from:
            future.set_exception(gexc.ServiceUnavailable("broker\ngone"))
        elif self.confirm:
            self.published.append(data)
            future.set_result(str(len(self.published)))
        self.on_publish(len(self.published))
        return future

    def stop(self) -> None:
        self.stopped = True


def connected(client: FakePublisherClient) -> ScanPublisher:
    publisher = ScanPublisher("proj", "topic", client_factory=lambda **_: client)
    assert publisher.connect() is True
    assert client.created_topics == ["projects/proj/topics/topic"]
    return publisher


def payloads(count: int) -> list[bytes]:
    return [b"scan %d" % i for i in range(count)]


def test_publishes_everything_then_flush_stops_the_client_and_counts():
    client = FakePublisherClient()
    publisher = connected(client)
    publisher.run(payloads(50), rate=None)
    assert publisher.flush() == 50
    assert client.stopped
    assert client.published == payloads(50)


def test_rate_paces_the_messages_and_no_rate_does_not():
    paced = connected(FakePublisherClient())
    started = time.monotonic()
    paced.run(payloads(100), rate=200.0)
    paced_s = time.monotonic() - started
    unpaced = connected(FakePublisherClient())
    started = time.monotonic()
    unpaced.run(payloads(100), rate=None)
    unpaced_s = time.monotonic() - started
    assert paced.flush() == unpaced.flush() == 100
    assert paced_s >= 0.45  # 99 gaps of 1/200 s
    assert paced_s < 5.0
    assert unpaced_s < 0.2


def test_stop_ends_the_run_before_the_next_message():
    client = FakePublisherClient()
    stop = threading.Event()
    client.on_publish = lambda count: stop.set() if count == 10 else None
    publisher = connected(client)
    publisher.run(itertools.repeat(b"forever"), rate=1000.0, stop=stop)
    assert publisher.flush() == 10


def test_a_stop_set_from_another_thread_wakes_a_slow_rate_at_once():
    publisher = connected(FakePublisherClient())
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    publisher.run(itertools.repeat(b"slow"), rate=0.1, stop=stop)  # next one due in 10 s
    assert time.monotonic() - started < 2.0
    assert publisher.flush() == 1


def test_a_failed_publish_stops_the_run_and_flush_reports_it_on_one_line():
    client = FakePublisherClient(fail_from=5)
    publisher = connected(client)
    publisher.run(itertools.repeat(b"x"), rate=None)
    assert publisher.submitted == 6
    with pytest.raises(PublishFailed) as caught:
        publisher.flush()
    assert caught.value.published == 5
    message = str(caught.value)
    assert "failed for 1 message(s) after 5 were published" in message
    assert "broker gone" in message
    assert "\n" not in message


def test_messages_never_confirmed_make_flush_fail_within_its_timeout():
    publisher = connected(FakePublisherClient(confirm=False))
    publisher.run(payloads(3), rate=None)
    started = time.monotonic()
    with pytest.raises(PublishFailed, match="did not confirm 3 message"):
        publisher.flush(timeout_s=0.2)
    assert time.monotonic() - started < 2.0


def test_progress_is_reported_periodically_with_growing_totals():
    reports: list[Progress] = []
    publisher = connected(FakePublisherClient())
    publisher.run(payloads(60), rate=200.0, on_progress=reports.append, progress_interval_s=0.05)
    assert len(reports) >= 3
    totals = [report.published for report in reports]
    assert totals == sorted(totals)
    assert 0 < totals[-1] <= 60
    assert all(report.recent_rate < 1000 for report in reports)


def test_run_refuses_a_non_positive_rate_and_needs_connect_first():
    with pytest.raises(RuntimeError, match="connect"):
        ScanPublisher("p", "t").run([], rate=None)
    with pytest.raises(ValueError, match="rate"):
        connected(FakePublisherClient()).run([], rate=0)


def test_format_progress_is_one_readable_line():
    line = publish.format_progress(Progress(1200, 0, 6.04, 199.6))
    assert line == "published 1200 (200/s recently, 6.0s elapsed)"
    assert publish.format_progress(Progress(5, 2, 1.0, 5.0)).endswith(", 2 failed")


def test_due_time_follows_a_schedule_from_the_start():
    assert publish.due_time(100.0, 0, 4.0) == 100.0
    assert publish.due_time(100.0, 10, 4.0) == 102.5
    assert publish.due_time(100.0, 10, None) == 100.0
