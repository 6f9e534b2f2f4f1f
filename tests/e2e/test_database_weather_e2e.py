"""The database's weather, end to end (issue 25): a PostgreSQL crash that two supervisors
share, and a SQLite write lock held by another process, both under a steady feed.

What must hold: both trees stay up with the same pids (no child restarts, no exit), /readyz
says 503 during the outage, the table afterwards is exactly the one the messages define,
every poison message is dead-lettered once, and nothing is left unacked once the trees stop
with exit 0 (at most a late redelivery of a message already stored). The faults last 45 s,
5 minutes and 30 s: these are long_fault scenarios. A start-up before the database is up
waits for it (about 15 s: in the main suite).
"""

from __future__ import annotations

import time

import apsw
import pytest
from scan_traffic import PacedPublisher, build_workload
from supervisor_harness import RunningSupervisor

from broker import client
from store.errors import StoreError
from testkit.postgres_cluster import start_cluster
from testkit.table import count_dead_letters, read_table
from testkit.waiting import wait_until

THROTTLED = ("--max-in-flight", "200")


def leftover_payloads(target) -> list[bytes]:
    """What is still deliverable on the subscription (nothing once everything was acked)."""
    subscriber = client.subscriber_client()
    try:
        path = subscriber.subscription_path(target.project, target.subscription)
        response = subscriber.pull(
            request={"subscription": path, "max_messages": 100, "return_immediately": True},
            timeout=10,
        )
        return [received.message.data for received in response.received_messages]
    finally:
        subscriber.close()


def restarts(tree: RunningSupervisor) -> float:
    found = tree.metrics(("miniscan_child_restarts",))
    return sum(value for name, value in found.items() if name.endswith("_total"))


def stored(tree: RunningSupervisor) -> float:
    return tree.metrics().get("miniscan_messages_stored_total", 0)


def idle(tree: RunningSupervisor) -> bool:
    depth = tree.metrics(("miniscan_queue_depth",))
    return bool(depth) and not any(depth.values())


def table_complete(db: str, workload) -> bool:
    try:
        return read_table(db) == workload.expected and count_dead_letters(db) == workload.poison
    except StoreError:
        return False


@pytest.fixture
def trees(pubsub_target, tmp_path):
    started: list[RunningSupervisor] = []

    def start(db: str) -> RunningSupervisor:
        log_path = tmp_path / f"supervisor-{len(started)}.log"
        tree = RunningSupervisor(pubsub_target, db, log_path, *THROTTLED, workers=1)
        started.append(tree)
        return tree

    yield start
    for tree in started:
        tree.kill_tree()


def ride_out(trees: list[RunningSupervisor], pubsub_target, workload, publisher, db: str,
             fault_starts, fault_lasts_s: float, fault_ends) -> None:  # fmt: skip
    """Inject the fault into a flowing stream, keep it for `fault_lasts_s`, end it, then check
    that nothing restarted, nothing was lost and nothing is left unacked."""
    wait_until(lambda: min(map(stored, trees)) > 200, 90, "every tree storing")
    pids = [(tree.process.pid, tree.all_child_pids()) for tree in trees]
    fault_starts()
    began = time.monotonic()
    for tree in trees:
        wait_until(lambda t=tree: t.http_status("/readyz") == 503, 30, "/readyz saying 503")
    time.sleep(max(0.0, fault_lasts_s - (time.monotonic() - began)))  # the fault itself
    assert all(tree.process.poll() is None for tree in trees), "a tree exited in the outage"
    fault_ends()
    for tree in trees:
        wait_until(lambda t=tree: t.http_status("/readyz") == 200, 60, "/readyz ready again")
    publisher.join(600)
    assert publisher.published == len(workload.payloads)
    wait_until(lambda: table_complete(db, workload), 240, "the full table after the outage")
    wait_until(lambda: all(map(idle, trees)), 120, "every tree idle")
    assert [(tree.process.pid, tree.all_child_pids()) for tree in trees] == pids
    assert [restarts(tree) for tree in trees] == [0] * len(trees), "a child was restarted"
    for tree in trees:
        assert tree.stop() == 0
    # Nothing unacked is left but, at most, a late redelivery of a message already stored
    # (a stopping decoder hands its last pull back: issue 25 item 8, not the database's).
    assert set(leftover_payloads(pubsub_target)) <= set(workload.payloads)
    assert read_table(db) == workload.expected
    assert count_dead_letters(db) == workload.poison
    for tree in trees:
        log = tree.log()
        assert "Traceback" not in log and "database unavailable" in log


@pytest.mark.long_fault
@pytest.mark.emulator
@pytest.mark.parametrize(
    "outage_s",
    [pytest.param(45, id="45s"), pytest.param(300, id="5min", marks=pytest.mark.timeout(900))],
)
def test_two_trees_ride_out_a_postgres_crash(pubsub_target, trees, outage_s):
    cluster = start_cluster()  # its own: the session's cluster serves other tests
    try:
        url = cluster.create_database()
        workload = build_workload(messages=60 * (outage_s + 60), keys=2000, poison=10)
        both = [trees(url), trees(url)]
        for tree in both:
            assert tree.wait_ready(90), f"not ready: {tree.log()[-2000:]}"
        # Published over the whole outage and beyond: the feed never stops.
        publisher = PacedPublisher(pubsub_target, workload.payloads, rate=60.0)
        publisher.start()
        ride_out(both, pubsub_target, workload, publisher, url,
                 cluster.crash, outage_s, cluster.restart)  # fmt: skip
    finally:
        cluster.stop()


@pytest.mark.long_fault
@pytest.mark.emulator
def test_a_sqlite_write_lock_held_for_30_seconds_is_ridden_out(pubsub_target, trees, tmp_path):
    (tmp_path / "data").mkdir()  # --db names a file in an existing folder
    db = str(tmp_path / "data" / "scans.db")
    workload = build_workload(messages=4000, keys=1500, poison=10)
    tree = trees(db)
    assert tree.wait_ready(90), f"not ready: {tree.log()[-2000:]}"
    publisher = PacedPublisher(pubsub_target, workload.payloads, rate=60.0)
    publisher.start()
    other = apsw.Connection(db)  # another process than the supervisor's tree: this one

    def hold_lock() -> None:
        other.execute("BEGIN IMMEDIATE")

    def release_lock() -> None:
        other.execute("ROLLBACK")
        other.close()

    ride_out([tree], pubsub_target, workload, publisher, db, hold_lock, 30, release_lock)


@pytest.mark.emulator
def test_a_database_not_reachable_at_start_up_is_waited_for(pubsub_target, trees):
    """Issue 25: as for Pub/Sub, a start-up before the database is up waits (a log line every
    few seconds) instead of exiting 3; it starts as soon as the database answers."""
    cluster = start_cluster()
    try:
        url = cluster.create_database()
        cluster.crash()
        tree = trees(url)
        wait_until(lambda: "database not reachable yet" in tree.log(), 60, "the waiting line")
        assert tree.process.poll() is None, f"exited instead of waiting: {tree.log()[-2000:]}"
        cluster.restart()
        assert tree.wait_ready(90), f"not ready: {tree.log()[-2000:]}"
        assert tree.stop() == 0
        assert "Traceback" not in tree.log()
    finally:
        cluster.stop()
