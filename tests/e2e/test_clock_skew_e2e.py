"""A scanner with a wrong clock (issue 25): its 2031 scan is a dead letter, and the row it
would have frozen keeps taking real scans."""

from __future__ import annotations

import json
import time

import pytest
from scan_traffic import publish_all
from supervisor_harness import RunningSupervisor

from store.sqlite.reader import open_reader
from testkit.waiting import wait_until

pytestmark = pytest.mark.emulator

YEAR_2031 = 1_924_992_000


def scan(timestamp: int, response: str) -> bytes:
    return json.dumps({"ip": "198.51.100.9", "port": 22, "service": "ssh",
                       "timestamp": timestamp, "data_version": 2,
                       "data": {"response_str": response}}).encode()  # fmt: skip


def read(db_path, sql: str) -> list[tuple]:
    try:
        conn = open_reader(str(db_path))
    except Exception:
        return []  # not created yet
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_a_scan_from_2031_is_a_dead_letter_and_the_real_one_is_stored(pubsub_target, tmp_path):
    db_path = tmp_path / "scans.db"
    now = int(time.time())
    publish_all(pubsub_target.project, pubsub_target.topic,
                [scan(YEAR_2031, "wrong clock"), scan(now, "real")])  # fmt: skip
    supervisor = RunningSupervisor(pubsub_target, db_path, tmp_path / "supervisor.log")
    try:
        wait_until(lambda: read(db_path, "SELECT reason FROM dead_letters")
                   == [("timestamp_in_future",)], 60, "the 2031 scan's dead letter")  # fmt: skip
        wait_until(lambda: read(db_path, "SELECT 1 FROM scans"), 60, "the real scan")
        assert read(db_path, "SELECT last_scanned, response FROM scans") == [(now, "real")]
        ((detail,),) = read(db_path, "SELECT detail FROM dead_letters")
        assert str(YEAR_2031) in detail and "2031-01-01T00:00:00Z" in detail
        assert supervisor.stop() == 0
    finally:
        supervisor.kill_tree()
