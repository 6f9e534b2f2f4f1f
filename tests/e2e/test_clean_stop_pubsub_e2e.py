"""A clean stop leaves nothing behind at Pub/Sub (issue 25): no pull of a stopping decoder
takes messages that nobody will read.

A decoder that exited with its long poll still open left that pull at the server; Google's
emulator hands messages published in the next seconds to it even though the client is gone
(a cancelled pull is not honoured either), so they stayed invisible for the subscription's
whole ack deadline. Here the deadline is 120 s: everything must be stored within seconds.
Run on Google's emulator and on the built-in server. Nor does a clean stop leave its
temporary metrics directory behind.
"""

from __future__ import annotations

import json
import time
import uuid
from types import SimpleNamespace

import pubsub_servers
import pytest
from scan_traffic import publish_all
from supervisor_harness import RunningSupervisor

from broker import admin, client
from store.sqlite.reader import open_reader
from testkit.emulator import emulator_env
from testkit.waiting import wait_until

# About 12 s a server: in the bounded slow step of .ci/run (make test-faults), so that
# `make test` stays under 10 minutes on 2 cores.
pytestmark = [pytest.mark.emulator, pytest.mark.long_fault]

pubsub_server = pubsub_servers.pubsub_server
ACK_DEADLINE_S = 120
MESSAGES = 300  # more than the two decoders' open pulls (100 each at most) could take
STORED_WITHIN_S = 30  # seconds, not minutes: a lost pull would hold its messages for 120 s


def scans(port: int, count: int) -> list[bytes]:
    now = int(time.time())
    return [json.dumps({"ip": f"10.9.{i // 250}.{i % 250}", "port": port, "service": "http",
                        "timestamp": now, "data_version": 2,
                        "data": {"response_str": "ok"}}).encode()
            for i in range(count)]  # fmt: skip


def stored(db_path) -> int:
    try:
        conn = open_reader(str(db_path))
    except Exception:
        return 0  # not created yet
    try:
        return conn.execute("SELECT count(*) FROM scans").fetchone()[0]
    finally:
        conn.close()


def test_messages_published_after_a_clean_stop_are_stored_within_seconds(
    pubsub_server, tmp_path, monkeypatch
):
    temp = tmp_path / "temp"  # where the supervisors make their metrics directories
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    suffix = uuid.uuid4().hex[:8]
    target = SimpleNamespace(host=pubsub_server.host, project="test-project",
                             topic=f"t-{suffix}", subscription=f"s-{suffix}")  # fmt: skip
    db_path = tmp_path / "scans.db"
    with emulator_env(pubsub_server.host):
        subscriber = client.subscriber_client()
        admin.ensure_topic(client.publisher_client(), target.project, target.topic)
        admin.ensure_subscription(subscriber, target.project, target.topic,
                                  target.subscription, ack_deadline_s=ACK_DEADLINE_S)  # fmt: skip
        subscriber.close()
        publish_all(target.project, target.topic, scans(1, 1))
        first = RunningSupervisor(target, db_path, tmp_path / "first.log")
        try:
            # Stored and idle: each decoder has a long poll open when the stop comes.
            wait_until(lambda: stored(db_path) == 1, 60, "the warm-up scan")
            assert len(list(temp.glob("miniscan-metrics-*"))) == 1
            stopping = time.monotonic()
            assert first.stop() == 0
            print(f"{pubsub_server.kind}: clean stop took {time.monotonic() - stopping:.1f}s")
            assert list(temp.glob("miniscan-metrics-*")) == []  # removed at the clean exit
        finally:
            first.kill_tree()
        publish_all(target.project, target.topic, scans(2, MESSAGES))
        second = RunningSupervisor(target, db_path, tmp_path / "second.log")
        try:
            started = time.monotonic()
            wait_until(lambda: stored(db_path) == 1 + MESSAGES, STORED_WITHIN_S,
                       f"{MESSAGES} scans published after a clean stop")  # fmt: skip
            print(f"{pubsub_server.kind}: {MESSAGES} stored "
                  f"{time.monotonic() - started:.1f}s after the new start")  # fmt: skip
            assert second.stop() == 0
        finally:
            second.kill_tree()
