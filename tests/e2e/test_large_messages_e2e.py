"""Hundreds of multi-MiB messages are ordinary (issue 12): before, a pull of a few of them
crashed the decoders ("Received message larger than max") until the tree gave up, and with
that lifted the tree grew to 1 GiB with the backlog. Now every message is stored or
dead-lettered, and each process's memory stays within what its byte budget allows."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from scan_traffic import publish_all
from supervisor_harness import RunningSupervisor

from testkit.waiting import wait_until

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from e2e_procs import TreeSampler
from large_messages import large_payload

from scanner.generate import scan_payloads
from store.sqlite.reader import open_reader

# About 20 s: in the bounded slow step of .ci/run (make test-faults), so that `make test`
# stays under 10 minutes on 2 cores.
pytestmark = [pytest.mark.emulator, pytest.mark.long_fault]

MIB = 1024 * 1024


def counts(db_path) -> tuple[int, int]:
    try:
        conn = open_reader(str(db_path))
    except Exception:
        return 0, 0
    try:
        return (conn.execute("SELECT count(*) FROM scans").fetchone()[0],
                conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0])  # fmt: skip
    finally:
        conn.close()


def test_hundreds_of_multi_mib_messages_are_stored_or_dead_lettered_in_bounded_memory(
    pubsub_target, tmp_path
):
    large = [large_payload(i) for i in range(200)]  # 100 of 0.9 MiB stored, 100 of 2 MiB not
    normal = list(scan_payloads(seed=3, count=1000, ips="172.16.0.0/12"))
    payloads = [p for pair in zip(normal[:200], large, strict=True) for p in pair] + normal[200:]
    published = publish_all(pubsub_target.project, pubsub_target.topic, payloads)
    db = tmp_path / "scans.db"
    supervisor = RunningSupervisor(pubsub_target, db, tmp_path / "supervisor.log")
    sampler = TreeSampler(supervisor.process.pid).start()
    try:
        wait_until(
            lambda: supervisor.metrics().get("miniscan_messages_acked_total", 0) >= published,
            180, "every message acked",
        )  # fmt: skip
        assert supervisor.stop() == 0
    finally:
        sampler.stop()
        supervisor.kill_tree()
    scans, letters = counts(db)
    assert letters == 100  # the 2 MiB responses: too_large, kept with their whole payload
    distinct_normal = len({p for p in normal})
    assert scans >= 100 and scans + letters <= published and scans <= 100 + distinct_normal
    figures = {f.pid: f for f in sampler.figures()}
    names = dict(supervisor.spawned())
    by_role = {name: figures[pid].peak_rss_kib * 1024 for name, pid in names.items()
               if pid in figures}  # fmt: skip
    # Each decoder holds at most 8 MiB of payload plus one message, in about three forms
    # (received, decoded, pickled) over a ~70 MiB interpreter with gRPC: well under 250 MiB.
    # Unbounded, a decoder pulled ~10 MiB responses back to back and held every one.
    for name, peak in by_role.items():
        assert peak < 250 * MIB, f"{name} peaked at {peak / MIB:.0f} MiB"
    assert sampler.peak_tree_rss_kib * 1024 < 700 * MIB
    assert "Traceback" not in supervisor.log()
