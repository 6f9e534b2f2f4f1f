"""Replaying dead letters against the real Pub/Sub emulator: payloads come back byte for
byte, rows go only once their publish is confirmed, and a failed publish keeps its row."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import Future
from pathlib import Path

import pytest
from click.testing import CliRunner

from broker import client
from broker.publisher import TopicPublisher
from commands.miniscan import main as miniscan
from contracts.records import DeadLetter
from store import dead_letters
from store.sqlite.reader import list_dead_letters, open_reader
from store.sqlite.writer import ScanStore

pytestmark = pytest.mark.emulator

PAYLOADS = [
    b'{"ip": "1.1.1.7", "port": 80',  # cut short: invalid_json
    b"\x00\xff\xfe binary \x80",  # not even UTF-8
    b"",  # Pub/Sub takes an empty body only with an attribute: replay adds one
    b"x" * 3000,
    b"{}",
]


def make_db(tmp_path: Path, letters: list[DeadLetter]) -> Path:
    path = tmp_path / "scan_results.db"
    with ScanStore.open(path) as store:
        store.write_batch([], letters)
    return path


def remaining(path: Path) -> list[tuple[int, bytes, str]]:
    conn = open_reader(path)
    try:
        return [(d.id, d.payload, d.reason) for d in list_dead_letters(conn)]
    finally:
        conn.close()


def pull_exactly(target, count: int, deadline_s: float = 30.0) -> list[tuple[bytes, str]]:
    """Pull and ack until `count` messages came back or the deadline passed:
    (data, the dead letter id attribute) of each."""
    subscriber = client.subscriber_client()
    path = subscriber.subscription_path(target.project, target.subscription)
    got: list[tuple[bytes, str]] = []
    try:
        give_up = time.monotonic() + deadline_s
        while len(got) < count and time.monotonic() < give_up:
            response = subscriber.pull(
                request={"subscription": path, "max_messages": 100}, timeout=5
            )
            if response.received_messages:
                got.extend(
                    (m.message.data, m.message.attributes[dead_letters.REPLAY_ATTRIBUTE])
                    for m in response.received_messages
                )
                subscriber.acknowledge(
                    request={
                        "subscription": path,
                        "ack_ids": [m.ack_id for m in response.received_messages],
                    }
                )
    finally:
        subscriber.close()
    return got


def letters_with(payloads: list[bytes], reason: str = "invalid_json") -> list[DeadLetter]:
    return [
        DeadLetter(p, reason, f"msg-{uuid.uuid4().hex[:8]}", 1_700_000_000.0 + i)
        for i, p in enumerate(payloads)
    ]


def test_replay_republishes_exact_bytes_and_removes_only_those_rows(
    tmp_path, pubsub_target, monkeypatch
) -> None:
    path = make_db(tmp_path, letters_with(PAYLOADS) + letters_with([b"keep me"], "bad_port"))
    monkeypatch.setattr(dead_letters, "REPLAY_CHUNK", 3)  # several chunks of publish+delete
    result = CliRunner().invoke(
        miniscan,
        ["dead-letters", "replay", "--reason", "invalid_json", "--db", str(path),
         "--project", pubsub_target.project, "--topic", pubsub_target.topic],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "replayed 5 of 5 dead letters" in result.stdout and "removed 5" in result.stdout
    pulled = pull_exactly(pubsub_target, len(PAYLOADS))
    assert sorted(data for data, _ in pulled) == sorted(PAYLOADS)
    assert sorted(int(row_id) for _, row_id in pulled) == [1, 2, 3, 4, 5]
    assert [(payload, reason) for _, payload, reason in remaining(path)] == [
        (b"keep me", "bad_port")
    ]


class FailingFor:
    """A real publishing client, except that chosen payloads get a future that fails."""

    def __init__(self, real, failing: set[bytes]) -> None:
        self._real = real
        self._failing = failing

    def __getattr__(self, name: str):
        return getattr(self._real, name)

    def publish(self, topic: str, data: bytes, **kwargs) -> Future:
        if data in self._failing:
            failed: Future = Future()
            failed.set_exception(RuntimeError("injected publish failure"))
            return failed
        return self._real.publish(topic, data, **kwargs)


def test_failed_publish_keeps_its_row(tmp_path, pubsub_target) -> None:
    payloads = [b"one", b"two", b"three"]
    path = make_db(tmp_path, letters_with(payloads))
    failing = FailingFor(client.publisher_client(), failing={b"two"})
    publisher = TopicPublisher(pubsub_target.project, pubsub_target.topic, failing)
    try:
        result = dead_letters.replay_dead_letters(
            path, project=pubsub_target.project, topic=pubsub_target.topic,
            publisher=publisher, ids=[1, 2, 3],
        )  # fmt: skip
    finally:
        publisher.stop()
    assert (result.selected, result.republished, result.deleted) == (3, 2, 2)
    assert [(i, "injected" in error) for i, error in result.failures] == [(2, True)]
    assert [(i, payload) for i, payload, _ in remaining(path)] == [(2, b"two")]
    assert sorted(data for data, _ in pull_exactly(pubsub_target, 2)) == [b"one", b"three"]


def test_replay_refuses_a_topic_nobody_subscribes_to(tmp_path, pubsub_emulator) -> None:
    path = make_db(tmp_path, letters_with([b"lonely"]))
    result = CliRunner().invoke(
        miniscan,
        ["dead-letters", "replay", "--all", "--db", str(path),
         "--topic", f"no-subscribers-{uuid.uuid4().hex[:8]}"],
    )  # fmt: skip
    assert result.exit_code == 1
    assert result.stderr.startswith("miniscan: topic ") and "no subscription" in result.stderr
    assert [payload for _, payload, _ in remaining(path)] == [b"lonely"]


def test_unreachable_pubsub_is_one_line_and_keeps_rows(tmp_path, monkeypatch) -> None:
    path = make_db(tmp_path, letters_with([b"stay"]))
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", "127.0.0.1:9")  # discard port: nothing listens
    result = CliRunner().invoke(
        miniscan,
        ["dead-letters", "replay", "--all", "--db", str(path), "--connect-timeout", "1"],
    )
    assert result.exit_code == 3
    assert result.stderr.startswith("miniscan: Pub/Sub at 127.0.0.1:9 did not answer")
    assert result.stderr.count("\n") == 1  # one line, no traceback
    assert [payload for _, payload, _ in remaining(path)] == [b"stay"]
