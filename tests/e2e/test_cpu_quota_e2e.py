"""A supervisor in a container limited to one CPU (issue 27): cgroup v2 files laid out in a
temporary folder (`--cgroup-root`) say the quota is one CPU and that the cgroup uses all of
it, on a machine with more. Under a backlog the tree steers one puller, per quota CPU, not
one per host CPU, and never adds pullers because the host looks idle; caught up, all pull."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from scan_traffic import build_workload, leftover_messages, publish_all
from supervisor_harness import RunningSupervisor

from testkit.table import count_dead_letters, read_table
from testkit.waiting import wait_until

pytestmark = pytest.mark.emulator

WORKERS = 4
OVERUSE = 4  # CPU-seconds of usage written per second of a one-CPU quota


class QuotaInUse:
    """Writes the cgroup's cpu.stat as if its processes used all of the one-CPU quota and
    were throttled: its usage grows by OVERUSE CPU-seconds a second. Written whole (a
    rename), so a reader never sees half a file.

    Why more than one CPU-second a second: this thread is itself delayed on a loaded
    machine, and a steer that read the file twice across such a delay saw the quota as
    under 60% busy and let a second decoder pull (seen once in four runs with other tests
    running). Over-reporting reads as "busy" unless the writes stall for most of a steer
    interval."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "cpu.stat"
        self.stop = threading.Event()
        self.started = time.monotonic()
        self.write()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def write(self) -> None:
        used_usec = int((time.monotonic() - self.started) * 1e6 * OVERUSE)
        partial = self.path.with_suffix(".partial")
        partial.write_text(f"usage_usec {used_usec}\nuser_usec {used_usec}\nsystem_usec 0\n")
        os.replace(partial, self.path)

    def run(self) -> None:
        while not self.stop.wait(0.01):
            self.write()

    def __enter__(self) -> QuotaInUse:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(5)


def test_under_a_one_cpu_quota_one_decoder_pulls_a_backlog(pubsub_target, tmp_path):
    if (os.cpu_count() or 1) < 2:
        pytest.skip("needs a host with more CPUs than the one-CPU quota to tell them apart")
    cgroup = tmp_path / "cgroup"
    cgroup.mkdir()
    (cgroup / "cpu.max").write_text("100000 100000\n")  # one CPU
    (cgroup / "memory.max").write_text("max\n")
    workload = build_workload(messages=6000, keys=900)
    publish_all(pubsub_target.project, pubsub_target.topic, workload.payloads)
    db_path = tmp_path / "scans.db"
    seen: set[float | None] = set()
    with QuotaInUse(cgroup):
        supervisor = RunningSupervisor(pubsub_target, db_path, tmp_path / "supervisor.log",
                                       "--cgroup-root", str(cgroup), "--max-in-flight", "100",
                                       workers=WORKERS)  # fmt: skip
        try:

            def drained() -> bool:
                seen.add(supervisor.metrics().get("miniscan_decoders_pulling"))
                try:
                    return read_table(str(db_path)) == workload.expected
                except Exception:
                    return False  # not created yet

            wait_until(drained, 90, "the backlog stored", every=0.05)
            wait_until(
                lambda: supervisor.metrics().get("miniscan_decoders_pulling") == WORKERS,
                10, "every decoder pulling once caught up",
            )  # fmt: skip
            assert supervisor.stop() == 0, supervisor.log()[-3000:]
        finally:
            supervisor.kill_tree()
    # One puller while the backlog lasted (the quota's one CPU, fully used); all four once
    # caught up; never the host's CPU count, nor more because the host looked idle.
    assert 1 in seen and seen - {None} <= {1, WORKERS}, seen
    assert count_dead_letters(str(db_path)) == 0
    assert leftover_messages(pubsub_target) == 0
