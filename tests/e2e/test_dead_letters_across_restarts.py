"""Dead letters survive what reuses message ids: Google's emulator numbers messages from 1
again on every start, so two runs on one database see the same ids for different poison
(issue 12: with a unique index on the id alone, the second run's letters were acked and
silently dropped)."""

from __future__ import annotations

import pytest
from conftest import PubSubTarget
from scan_traffic import publish_all
from supervisor_harness import RunningSupervisor

from broker import admin, client
from store.sqlite.reader import open_reader
from testkit.emulator import emulator_env, start_emulator
from testkit.waiting import wait_until

pytestmark = pytest.mark.emulator

PROJECT = "test-project"


def letters(db_path) -> list[tuple[str, bytes]]:
    try:
        conn = open_reader(str(db_path))
    except Exception:
        return []
    try:
        return conn.execute("SELECT message_id, payload FROM dead_letters ORDER BY id").fetchall()
    finally:
        conn.close()


def run_once_on_a_fresh_emulator(tmp_path, db_path, run: int, poison: list[bytes]) -> None:
    """Start an emulator of our own, publish `poison`, let a supervisor store it, stop both."""
    emulator = start_emulator(project=PROJECT, log_dir=str(tmp_path))
    with emulator_env(emulator.host):
        try:
            target = PubSubTarget(emulator.host, PROJECT, "scan-topic", "scan-sub")
            publisher, subscriber = client.publisher_client(), client.subscriber_client()
            admin.ensure_topic(publisher, PROJECT, target.topic)
            admin.ensure_subscription(subscriber, PROJECT, target.topic, target.subscription)
            subscriber.close()
            before = len(letters(db_path))
            publish_all(PROJECT, target.topic, poison)
            supervisor = RunningSupervisor(target, db_path, tmp_path / f"supervisor-{run}.log")
            try:
                wait_until(lambda: len(letters(db_path)) == before + len(poison), 60,
                           f"run {run}'s dead letters")  # fmt: skip
                assert supervisor.stop() == 0
            finally:
                supervisor.kill_tree()
        finally:
            emulator.stop()


def test_a_restarted_emulator_reuses_ids_and_every_dead_letter_is_kept(tmp_path):
    db_path = tmp_path / "scans.db"
    first = [b"not json, first run %d" % i for i in range(5)]
    second = [b"not json, second run %d" % i for i in range(5)]
    run_once_on_a_fresh_emulator(tmp_path, db_path, 1, first)
    run_once_on_a_fresh_emulator(tmp_path, db_path, 2, second)
    stored = letters(db_path)
    assert sorted(payload for _, payload in stored) == sorted(first + second)
    ids = [message_id for message_id, _ in stored]
    assert len(set(ids)) < len(ids), "the emulator did not reuse ids: the test proves nothing"
