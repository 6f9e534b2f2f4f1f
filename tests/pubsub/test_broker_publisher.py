"""TopicPublisher in-process, against a fake client: what `publish_confirmed` reports and
what `publish` calls back. The real client against the emulator is covered by
test_store_replay.py (the replay) and test_scanner_roundtrip.py (the scanner)."""

from __future__ import annotations

import concurrent.futures

from broker.publisher import TopicPublisher


class FakeClient:
    """Refuses bodies starting with b"refuse" at once; fails the futures of b"fail..."."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes, dict]] = []

    def publish(self, topic: str, data: bytes, **kwargs) -> concurrent.futures.Future:
        if data.startswith(b"refuse"):
            raise ValueError("refused at once")
        self.calls.append((topic, data, kwargs))
        future: concurrent.futures.Future = concurrent.futures.Future()
        if data.startswith(b"fail"):
            future.set_exception(RuntimeError("never confirmed"))
        else:
            future.set_result("message-id")
        return future


def test_publish_confirmed_reports_refusals_then_failures_each_in_order():
    fake = FakeClient()
    publisher = TopicPublisher("proj", "topic", fake)
    messages = [
        (b"fail 0", {}),
        (b"ok 1", {"row": "1"}),
        (b"refuse 2", {}),
        (b"fail 3", {}),
        (b"refuse 4", {}),
        (b"ok 5", {"row": "5"}),
    ]
    outcome = publisher.publish_confirmed(messages, timeout_s=1.0)
    assert outcome.confirmed == [1, 5]
    assert [index for index, _ in outcome.failed] == [2, 4, 0, 3]
    assert isinstance(outcome.failed[0][1], ValueError)
    assert isinstance(outcome.failed[2][1], RuntimeError)
    published = {data: kwargs for _, data, kwargs in fake.calls}
    assert published[b"ok 1"]["row"] == "1" and published[b"ok 1"]["timeout"] == 1.0
    assert {topic for topic, _, _ in fake.calls} == {"projects/proj/topics/topic"}


def test_publish_calls_back_with_none_or_the_error():
    publisher = TopicPublisher("proj", "topic", FakeClient())
    settled: list[BaseException | None] = []
    publisher.publish(b"ok", settled.append)
    publisher.publish(b"fail", settled.append)
    assert settled[0] is None and isinstance(settled[1], RuntimeError)
