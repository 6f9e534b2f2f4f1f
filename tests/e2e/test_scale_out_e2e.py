"""Scale out (issue 14): many supervisors, one subscription, one PostgreSQL; one SQLite file,
exactly one supervisor.

"Many hosts, simulated here": three real `miniscan-supervisor` trees, each alone in its process
group as on its own machine, pull one subscription of the real emulator and write one real
PostgreSQL database while scans keep being published. One tree is SIGKILLed whole mid-run (no
graceful anything: its leases run out and Pub/Sub redelivers what it held), another is stopped
with SIGTERM and started again. The table read back from PostgreSQL must be exactly the one
the messages define, every poison message dead-lettered once, and the subscription drained:
nothing lost.

The other side of the rule: a second supervisor on a SQLite file that already has one is
refused at start-up with one line and exit 3, and a PostgreSQL password never reaches a log
or an error.
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest
from scan_traffic import PacedPublisher, build_workload, leftover_messages
from supervisor_harness import BIN, RunningSupervisor

from contracts import defaults
from contracts.exit_codes import EXIT_STARTUP
from store.errors import StoreError
from store.reader import describe_target
from store.writer_lock import WriterLocked, hold_writer_lock
from testkit.processes import group_alive
from testkit.table import count_dead_letters, read_table
from testkit.waiting import wait_until

# Scans arrive for about 40 s (a backlog published up front drained in under 10 s with three
# trees), so that the kill and the restart land mid-run, under load.
MESSAGES, RATE = 24000, 600.0
THROTTLED = ("--max-in-flight", "200")
# Messages a SIGKILLed tree held come back once their lease runs out: the subscription's ack
# deadline (`pubsub_target` uses the default), plus the time for a live tree to take them.
REDELIVERY_S = defaults.DEFAULT_ACK_DEADLINE_S + 5


def table_complete(url: str, workload) -> bool:
    try:
        return read_table(url) == workload.expected and count_dead_letters(url) == workload.poison
    except StoreError:
        return False  # no tables yet


def stored(supervisor: RunningSupervisor) -> float:
    return supervisor.metrics().get("miniscan_messages_stored_total", 0)


def idle(supervisor: RunningSupervisor) -> bool:
    """Nothing pulled and unacked, nothing waiting for a commit."""
    depth = supervisor.metrics(("miniscan_queue_depth",))
    return bool(depth) and not any(depth.values())


@pytest.fixture
def trees(pubsub_target, tmp_path):
    """Start supervisor trees on this test's subscription; kill whatever is left at the end."""
    started: list[RunningSupervisor] = []

    def start(db: str, *extra: str) -> RunningSupervisor:
        log_path = tmp_path / f"supervisor-{len(started)}.log"
        supervisor = RunningSupervisor(pubsub_target, db, log_path, *extra, workers=1)
        started.append(supervisor)
        return supervisor

    yield start, started
    for supervisor in started:
        supervisor.kill_tree()


# About 50 s (40 s of them the paced load): inside `make test`, not a long_fault step.
# About 50 s: in the bounded slow step of .ci/run (make test-faults), so that `make test`
# stays under 10 minutes on 2 cores.
@pytest.mark.long_fault
@pytest.mark.emulator
def test_three_trees_share_one_postgres_through_a_kill_and_a_restart(
    pubsub_target, postgres_url, trees
):
    start, started = trees
    # A password on the URL (the test cluster trusts local connections, so any will do):
    # it must reach the writers' connections and never a log line.
    url = postgres_url.replace("@", ":s3cret-pw@", 1)
    workload = build_workload(messages=MESSAGES, keys=4000, poison=12)
    first, second, third = (start(url, *THROTTLED) for _ in range(3))
    for tree in (first, second, third):
        assert tree.wait_ready(90), f"not ready: {tree.log()[-2000:]}"
    publisher = PacedPublisher(pubsub_target, workload.payloads, RATE)
    publisher.start()
    wait_until(lambda: min(map(stored, (first, second, third))) > 300, 90, "every tree storing")

    first.kill()  # SIGKILL to its whole process group: supervisor, decoder and writer at once
    killed_at = time.monotonic()
    # Its children die with it; they are gone once init has reaped them.
    wait_until(lambda: not group_alive(first.process.pid), 10, "the killed tree to be gone")

    assert second.stop() == 0  # SIGTERM: drain, flush, ack, exit
    restarted = start(url, *THROTTLED)
    assert restarted.wait_ready(90), f"not ready: {restarted.log()[-2000:]}"
    assert publisher.is_alive(), "restarted after the load was over: proves little"

    publisher.join(180)
    assert publisher.published == len(workload.payloads)
    live = (third, restarted)
    wait_until(lambda: table_complete(url, workload), 240, "the full table in PostgreSQL")
    # The killed tree's unacked messages come back only when their leases run out; until
    # then the subscription is not drained, however complete the table already looks.
    wait_until(
        lambda: time.monotonic() - killed_at > REDELIVERY_S and all(map(idle, live)),
        120,
        "the killed tree's leases to run out and every live tree to be idle",
    )
    assert stored(restarted) > 0, "the restarted tree took no part"
    for tree in live:
        assert tree.stop() == 0
    assert leftover_messages(pubsub_target) == 0
    assert read_table(url) == workload.expected
    assert count_dead_letters(url) == workload.poison
    for tree in started:
        log = tree.log()
        assert "s3cret" not in log
        assert "Traceback" not in log
    assert f"(db {describe_target(url)}," in third.log()


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60):
    return subprocess.run(
        [str(BIN / "miniscan-supervisor"), *args],
        capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})},
    )  # fmt: skip


@pytest.mark.emulator
def test_a_second_supervisor_on_one_sqlite_file_is_refused(pubsub_target, tmp_path, trees):
    start, _ = trees
    db = tmp_path / "data" / "scans.db"
    db.parent.mkdir()  # --db's folder must exist (issue 28)
    first = start(str(db))
    assert first.wait_ready(90), first.log()[-2000:]
    # Another spelling of the same file (through a symlinked folder) meets the same lock.
    os.symlink(db.parent, tmp_path / "alias")
    second = run_cli(
        "--subscription", pubsub_target.subscription, "--db", str(tmp_path / "alias" / "scans.db"),
        "--metrics-port", "0", env={"PUBSUB_EMULATOR_HOST": pubsub_target.host},
    )  # fmt: skip
    assert second.returncode == EXIT_STARTUP
    assert second.stderr.count("\n") == 1 and "Traceback" not in second.stderr
    assert "already has a writer" in second.stderr and "postgresql://" in second.stderr
    assert first.process.poll() is None, "the first supervisor was disturbed"
    first.kill()  # SIGKILL, whole group: the kernel drops the lock with the process
    hold_writer_lock(db).close()


@pytest.mark.emulator
def test_an_unreachable_postgres_is_waited_for_and_a_refused_one_is_a_one_line_error(
    pubsub_target, postgres_cluster, tmp_path
):
    """Issue 25: a database not reachable yet is weather (waited for, a line every few
    seconds); a refused password is a one-line error and exit 3. Neither shows the password."""
    env = {**os.environ, "PUBSUB_EMULATOR_HOST": pubsub_target.host}
    args = [str(BIN / "miniscan-supervisor"), "--subscription", pubsub_target.subscription,
            "--metrics-port", "0"]  # fmt: skip
    # Nothing listens on port 1. The URL comes from MINISCAN_DB, as every command reads it.
    url = f"postgresql://{postgres_cluster.user}:s3cret-pw@127.0.0.1:1/miniscan"
    log_path = tmp_path / "waiting.log"
    with open(log_path, "w") as log:
        waiting = subprocess.Popen(args, env={**env, "MINISCAN_DB": url}, stderr=log, stdout=log)
    try:
        wait_until(lambda: "database not reachable yet" in log_path.read_text(), 60, "waiting")
        assert waiting.poll() is None, "exited instead of waiting"
    finally:
        waiting.terminate()
        waiting.wait(30)
    redacted = f"cannot connect to postgresql://{postgres_cluster.user}@127.0.0.1:1/miniscan"
    assert redacted in log_path.read_text() and "s3cret" not in log_path.read_text()

    postgres_cluster.add_password_role("pw_carol", "Right-pw")
    refused = f"postgresql://pw_carol:s3cret-pw@127.0.0.1:{postgres_cluster.port}/postgres"
    result = run_cli(
        "--subscription", pubsub_target.subscription, "--metrics-port", "0",
        env={"PUBSUB_EMULATOR_HOST": pubsub_target.host, "MINISCAN_DB": refused},
    )  # fmt: skip
    assert result.returncode == EXIT_STARTUP
    assert "s3cret" not in result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "Traceback" not in result.stderr
    assert "password authentication failed" in errors[0]


def test_the_writer_lock_is_exclusive_per_file_and_absent_for_postgres(tmp_path):
    db = tmp_path / "new" / "scans.db"
    with hold_writer_lock(db) as held:
        assert held.lock_path == str(db.resolve()) + ".writer.lock"
        with pytest.raises(WriterLocked, match="already has a writer"):
            hold_writer_lock(tmp_path / "new" / ".." / "new" / "scans.db")
    hold_writer_lock(db).close()  # released on close
    assert not db.exists(), "the lock never creates the database itself"
    for _ in range(2):  # any number of holders for one PostgreSQL URL
        assert hold_writer_lock("postgresql://u:pw@127.0.0.1:1/x").lock_path is None


def test_a_second_supervisor_is_refused_before_it_touches_pubsub(tmp_path):
    """No emulator needed: the lock is the first check, ahead of the subscription's."""
    db = tmp_path / "scans.db"
    with hold_writer_lock(db):
        result = run_cli(
            "--db", str(db), "--metrics-port", "0", env={"PUBSUB_EMULATOR_HOST": "127.0.0.1:9"}
        )
    assert result.returncode == EXIT_STARTUP
    assert result.stderr.startswith("miniscan-supervisor: error: ")
    assert "already has a writer" in result.stderr and result.stderr.count("\n") == 1
