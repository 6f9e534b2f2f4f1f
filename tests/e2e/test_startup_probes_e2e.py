"""/healthz answers while the supervisor is still opening its database, and /readyz says why
it is not ready: a schema migration of 100M rows takes minutes (issue 26), and a Kubernetes
startup probe that found no server (it used to start after the database was open) killed
the container mid-migration, forever. Here the open is held back by a lock on the file, as
long as the test likes; the migration itself is measured by bench/upgrade_at_scale.py."""

from __future__ import annotations

import apsw
import pytest
from supervisor_harness import RunningSupervisor

from store.sqlite.writer import ScanStore
from testkit.scrape import fetch
from testkit.waiting import wait_until

pytestmark = pytest.mark.emulator


def test_health_answers_while_the_database_is_being_opened(pubsub_target, tmp_path) -> None:
    db = tmp_path / "scans.db"
    ScanStore.open(db).close()
    holder = apsw.Connection(str(db))
    holder.execute("BEGIN EXCLUSIVE")  # the supervisor's open waits behind this lock
    supervisor = RunningSupervisor(pubsub_target, db, tmp_path / "log")
    try:
        status, _ = wait_until(
            lambda: (answer := fetch(supervisor.url("/readyz"), timeout=5))[1].startswith(
                b"starting: opening the database") and answer, timeout=60,
            what="/readyz naming the open")  # fmt: skip
        assert status == 503
        assert supervisor.http_status("/healthz") == 200  # alive: no probe kills it
        assert supervisor.spawned() == []  # no child before the database is open
        holder.execute("COMMIT")
        assert supervisor.wait_ready(60), supervisor.log()[-2000:]
        assert supervisor.stop() == 0
    finally:
        holder.close()
        supervisor.kill()
