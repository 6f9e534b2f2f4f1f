"""End to end: the real `miniscan-supervisor` against the real emulator and a real SQLite file.

Each test publishes a workload whose final table is known (out of order, duplicated, with
poison messages), runs the command, does something unkind to it (kills a child, stops it,
kills the supervisor) and asserts that the table is exactly what the messages define: nothing
lost, whatever the crash.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from scan_traffic import (
    build_workload,
    leftover_messages,
    publish_all,
)
from supervisor_harness import RunningSupervisor, pid_alive

from supervisor.cpu_busy import usable_cpus
from testkit.table import count_dead_letters, read_table
from testkit.waiting import wait_until

pytestmark = pytest.mark.emulator

# A small in-flight budget keeps a 20,000-message drain going for several seconds even on a
# fast machine, so that a kill or a stop really lands mid-stream instead of after the work is
# done. Since group commit a round trip takes ~10-20 ms, not ~100 ms: 200 a decoder drained
# the backlog in about a second and a kill sometimes found nothing in flight; 50 keeps it
# going for several seconds.
THROTTLED = ("--max-in-flight", "50")


@pytest.fixture
def run(pubsub_target, tmp_path):
    """Start supervisors on this test's subscription; clean up whatever is left at the end."""
    started: list[RunningSupervisor] = []

    def start(*extra: str, workers: int = 2) -> RunningSupervisor:
        log_path = tmp_path / f"supervisor-{len(started)}.log"
        supervisor = RunningSupervisor(
            pubsub_target, tmp_path / "scans.db", log_path, *extra, workers=workers
        )
        started.append(supervisor)
        return supervisor

    yield start
    for supervisor in started:
        supervisor.kill_tree()


def table_complete(db_path, workload) -> bool:
    try:
        return read_table(str(db_path)) == workload.expected and (
            count_dead_letters(str(db_path)) == workload.poison
        )
    except Exception:
        return False  # not created yet


def test_stores_newest_per_key_dead_letters_poison_and_acks_everything(
    pubsub_target, run, tmp_path
):
    workload = build_workload(messages=4000, keys=600, poison=15)
    publish_all(pubsub_target.project, pubsub_target.topic, workload.payloads)
    supervisor = run()
    wait_until(lambda: table_complete(tmp_path / "scans.db", workload), 60, "the full table")
    wait_until(
        lambda: (
            supervisor.metrics().get("miniscan_messages_acked_total", 0) >= len(workload.payloads)
        ),
        30,
        "every message acked",
    )
    metrics = supervisor.metrics()
    assert metrics['miniscan_messages_dead_lettered_total{reason="invalid_json"}'] == 15
    assert supervisor.http_status("/healthz") == 200
    assert supervisor.http_status("/readyz") == 200
    assert metrics['miniscan_children_alive{role="decoder"}'] == 2
    assert supervisor.stop() == 0
    assert leftover_messages(pubsub_target) == 0
    assert "Traceback" not in supervisor.log()


def test_decoders_run_miniscan_whatever_the_working_directory_holds(
    pubsub_target, run, tmp_path, monkeypatch
):
    """Run from a folder whose packages are named like miniscan's (another checkout, a
    user's project), the decoders still run miniscan: on Python 3.11 their fork server
    imported from the working directory first (`supervisor.start_methods`)."""
    imported = tmp_path / "imported-from-the-working-directory"
    for package in ("broker", "contracts", "store", "supervisor", "workers"):
        (tmp_path / "cwd" / package).mkdir(parents=True)
        (tmp_path / "cwd" / package / "__init__.py").write_text(
            f"open({str(imported)!r}, 'a').write({package!r} + '\\n')\n"
            "raise ImportError('a folder in the working directory, not miniscan')\n"
        )
    monkeypatch.chdir(tmp_path / "cwd")
    workload = build_workload(messages=500, keys=100, poison=2)
    publish_all(pubsub_target.project, pubsub_target.topic, workload.payloads)
    supervisor = run()
    wait_until(lambda: table_complete(tmp_path / "scans.db", workload), 60, "the full table")
    assert supervisor.stop() == 0
    assert not imported.exists(), f"imported from the working directory: {imported.read_text()}"


def test_more_decoders_than_cpus_drain_exactly_and_all_pull_once_caught_up(
    pubsub_target, run, tmp_path
):
    """While a backlog keeps the CPUs busy, only some decoders pull (`supervisor.
    puller_count`); the table is exact either way, and a caught-up tree has all of them
    waiting on long polls again."""
    workers = max(4, min(usable_cpus() + 2, 8))  # more than the CPUs where that stays small
    workload = build_workload(messages=6000, keys=900, poison=3)
    publish_all(pubsub_target.project, pubsub_target.topic, workload.payloads)
    supervisor = run(workers=workers)
    seen = set()

    def complete() -> bool:
        seen.add(supervisor.metrics().get("miniscan_decoders_pulling"))
        return table_complete(tmp_path / "scans.db", workload)

    wait_until(complete, 90, "the full table", every=0.05)
    wait_until(lambda: supervisor.metrics().get("miniscan_decoders_pulling") == workers,
               10, "every decoder pulling once caught up")  # fmt: skip
    assert seen - {None} <= set(range(1, workers + 1)), seen
    assert supervisor.stop() == 0
    assert leftover_messages(pubsub_target) == 0


def test_decoder_killed_under_load_is_restarted_and_nothing_is_lost(pubsub_target, run, tmp_path):
    workload = build_workload(messages=20000, keys=3000, poison=5)
    publish_all(pubsub_target.project, pubsub_target.topic, workload.payloads)
    supervisor = run(*THROTTLED)
    wait_until(lambda: supervisor.metrics().get("miniscan_messages_pulled_total", 0) > 1000,
               60, "traffic flowing")  # fmt: skip
    victim = supervisor.child_pid("decoder-0")
    killed_at = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: supervisor.child_pid("decoder-0", nth=2), 30, "decoder-0 restarted")
    wait_until(lambda: table_complete(tmp_path / "scans.db", workload), 90, "the full table")
    recovery = time.monotonic() - killed_at
    assert supervisor.metrics()['miniscan_child_restarts_total{role="decoder"}'] == 1
    assert supervisor.stop() == 0
    # The killed decoder's messages come back when their short lease (10 s) runs out.
    assert recovery < 60, f"recovery took {recovery:.0f}s"


def test_writer_killed_under_load_nacks_and_resumes(pubsub_target, run, tmp_path):
    workload = build_workload(messages=20000, keys=3000, poison=5)
    publish_all(pubsub_target.project, pubsub_target.topic, workload.payloads)
    # A 200 ms linger keeps every decoder holding messages while the writer batches them:
    # with pure group commit the pipeline is often empty between two pulls, and a kill
    # landing then leaves nothing to nack.
    supervisor = run("--max-in-flight", "200", "--batch-timeout", "200")
    wait_until(lambda: supervisor.metrics().get("miniscan_messages_stored_total", 0) > 1000,
               60, "commits happening")  # fmt: skip
    os.kill(supervisor.child_pid("writer"), signal.SIGKILL)
    wait_until(lambda: supervisor.child_pid("writer", nth=2), 30, "writer restarted")
    wait_until(lambda: table_complete(tmp_path / "scans.db", workload), 90, "the full table")
    metrics = supervisor.metrics()
    assert metrics['miniscan_child_restarts_total{role="writer"}'] == 1
    assert metrics["miniscan_messages_nacked_total"] > 0, "in-flight messages were not nacked"
    assert supervisor.stop() == 0


def test_crash_storm_stops_the_tree_with_a_named_child(pubsub_target, run):
    supervisor = run("--restart-max", "2", "--restart-window", "60")
    for nth in (1, 2, 3):
        pid = wait_until(lambda n=nth: supervisor.child_pid("writer", nth=n), 30, f"writer #{nth}")
        wait_until(lambda: "writer" in supervisor.log(), 5, "log")
        os.kill(pid, signal.SIGKILL)
    assert supervisor.wait(timeout=60) == 4
    log = supervisor.log()
    storm_line = next(line for line in log.splitlines() if "crashed 3 times" in line)
    assert "writer" in storm_line and "last error: killed by SIGKILL" in storm_line


def test_supervisor_killed_leaves_no_orphans(pubsub_target, run):
    supervisor = run()
    wait_until(lambda: len(supervisor.all_child_pids()) == 3, 30, "three children")
    wait_until(lambda: supervisor.metrics().get('miniscan_children_alive{role="decoder"}') == 2,
               30, "children up")  # fmt: skip
    children = supervisor.all_child_pids()
    supervisor.process.kill()
    supervisor.process.wait()
    wait_until(lambda: not any(pid_alive(pid) for pid in children), 15, "children to exit")


def test_stalled_decoder_is_detected_killed_and_replaced(pubsub_target, run, tmp_path):
    workload = build_workload(messages=6000, keys=1000)
    supervisor = run("--child-timeout", "4", *THROTTLED)
    wait_until(lambda: supervisor.child_pid("decoder-1"), 30, "decoders")
    wait_until(lambda: supervisor.metrics().get('miniscan_children_alive{role="decoder"}') == 2,
               30, "children up")  # fmt: skip
    publish_all(pubsub_target.project, pubsub_target.topic, workload.payloads)
    wait_until(lambda: supervisor.metrics().get("miniscan_messages_pulled_total", 0) > 500,
               60, "traffic flowing")  # fmt: skip
    os.kill(supervisor.child_pid("decoder-1"), signal.SIGSTOP)  # alive, but stuck
    wait_until(lambda: "decoder-1 stalled" in supervisor.log(), 20, "stall detected")
    wait_until(lambda: supervisor.child_pid("decoder-1", nth=2), 30, "decoder-1 replaced")
    wait_until(lambda: table_complete(tmp_path / "scans.db", workload), 90, "the full table")
    assert supervisor.stop() == 0


def test_sigterm_mid_stream_exits_zero_and_a_restart_finishes_the_job(pubsub_target, run, tmp_path):
    workload = build_workload(messages=20000, keys=4000, poison=3)
    publish_all(pubsub_target.project, pubsub_target.topic, workload.payloads)
    first = run(*THROTTLED, "--shutdown-timeout", "20")
    wait_until(lambda: first.metrics().get("miniscan_messages_stored_total", 0) > 500,
               60, "commits happening")  # fmt: skip
    stopped_at = time.monotonic()
    first.signal(signal.SIGTERM)
    assert first.wait(timeout=30) == 0
    assert time.monotonic() - stopped_at < 20
    assert not table_complete(tmp_path / "scans.db", workload), "stopped too late to prove much"
    second = run()
    # Nacked on the way out, so the rest comes back at once, not after the ack deadline.
    wait_until(lambda: table_complete(tmp_path / "scans.db", workload), 60, "the full table")
    assert second.stop() == 0


def test_second_ctrl_c_forces_the_stop_and_loses_nothing(pubsub_target, run, tmp_path):
    workload = build_workload(messages=20000, keys=4000)
    publish_all(pubsub_target.project, pubsub_target.topic, workload.payloads)
    first = run("--max-in-flight", "500")
    wait_until(lambda: first.metrics().get("miniscan_messages_stored_total", 0) > 500,
               60, "commits happening")  # fmt: skip
    # A frozen writer makes the graceful stop hang, as a wedged disk would.
    os.kill(first.child_pid("writer"), signal.SIGSTOP)
    first.signal(signal.SIGINT)
    wait_until(lambda: "stopping gracefully" in first.log(), 10, "the graceful stop")
    first.signal(signal.SIGINT)
    assert first.wait(timeout=30) == 5
    assert "forcing the stop" in first.log()
    second = run()
    wait_until(lambda: table_complete(tmp_path / "scans.db", workload), 90, "the full table")
    assert second.stop() == 0


def test_shutdown_timeout_bounds_a_stuck_stop(pubsub_target, run):
    supervisor = run("--shutdown-timeout", "2")
    wait_until(lambda: supervisor.metrics().get('miniscan_children_alive{role="decoder"}') == 2,
               30, "children up")  # fmt: skip
    os.kill(supervisor.child_pid("writer"), signal.SIGSTOP)
    started = time.monotonic()
    supervisor.signal(signal.SIGTERM)
    assert supervisor.wait(timeout=30) == 5
    assert time.monotonic() - started < 2 + 3 + 5  # timeout + kill grace + slack
    assert "shutdown timeout (2s) ran out" in supervisor.log()


def test_in_flight_stays_within_the_backpressure_bound(pubsub_target, run, tmp_path):
    workload = build_workload(messages=10000, keys=2000)
    publish_all(pubsub_target.project, pubsub_target.topic, workload.payloads)
    supervisor = run("--max-in-flight", "200", "--batch-size", "100")
    peak = 0.0

    def done() -> bool:
        nonlocal peak
        peak = max(peak, supervisor.metrics().get('miniscan_queue_depth{queue="in_flight"}', 0))
        return table_complete(tmp_path / "scans.db", workload)

    wait_until(done, 90, "the full table", every=0.05)
    assert 0 < peak <= 2 * 200
    assert supervisor.stop() == 0
